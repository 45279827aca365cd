//! Read views of the cluster: the current config version and the fleet.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{DpStatus, refused_newer};
use crate::{AppState, Error};

pub async fn config(
    State(state): State<AppState>,
) -> Result<Json<crate::store::VersionInfo>, Error> {
    Ok(Json(state.store.current_version().await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DataPlaneView {
    node_id: String,
    hostname: String,
    software_version: String,
    labels: BTreeMap<String, String>,
    connected: bool,
    /// When its current (or last) stream opened.
    connected_since: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    /// The version it acknowledged (or held at Hello).
    config_version: u64,
    config_hash: String,
    /// `synced`, `behind`, `error` or `disconnected`.
    #[schema(value_type = String)]
    status: &'static str,
    /// The reason of its last NACK, while that NACK is newer than what it
    /// runs; with the version refused and when.
    error: Option<String>,
    error_version: Option<u64>,
    error_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DataPlanes {
    current_version: u64,
    items: Vec<DataPlaneView>,
}

pub async fn data_planes(State(state): State<AppState>) -> Result<Json<DataPlanes>, Error> {
    let current = state.store.current_version().await?.version;
    let items = state
        .store
        .data_planes()
        .await?
        .into_iter()
        .map(|r| {
            let applied = r.config_version.max(0) as u64;
            let errored = refused_newer(applied, r.last_error_version);
            let status = DpStatus::of(r.connected, applied, r.last_error_version, current).as_str();
            DataPlaneView {
                node_id: r.node_id,
                hostname: r.hostname,
                software_version: r.software_version,
                labels: r.labels.0,
                connected: r.connected,
                connected_since: r.connected_at,
                last_seen: r.last_seen,
                config_version: applied,
                config_hash: r.config_hash,
                status,
                error: r.last_error.filter(|_| errored),
                error_version: r.last_error_version.filter(|_| errored).map(|v| v as u64),
                error_at: r.last_error_at.filter(|_| errored),
            }
        })
        .collect();
    Ok(Json(DataPlanes {
        current_version: current,
        items,
    }))
}
