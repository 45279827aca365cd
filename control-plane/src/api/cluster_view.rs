//! Read views of the cluster: the current config version and the fleet.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::{DataPlaneRow, DpStatus, refused_newer};
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
    /// Its last traffic report (sent every 10 s on its config stream);
    /// null before the first, or from a data plane that sends none.
    stats: Option<DataPlaneStats>,
}

/// A data plane's traffic, as it last reported it. Counts answers to
/// requests that matched a route.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DataPlaneStats {
    /// Answers since the data plane started.
    requests: u64,
    /// Of those, 5xx answers (the proxy's own or the upstream's).
    errors: u64,
    /// Answers in the report's interval.
    interval_requests: u64,
    /// The share of 5xx answers in the interval (0 to 1); null when the
    /// interval had no answers.
    error_rate: Option<f64>,
    /// The 99th percentile of request durations in the interval, in ms, as
    /// the upper bound of the latency bucket holding it (buckets from 1 ms
    /// to 30 s, about x2.5 apart; 30000 also means more); null when no
    /// request ended in the interval.
    p99_ms: Option<f64>,
    /// The interval's length, in ms.
    interval_ms: u64,
    /// When the control plane received the report.
    reported_at: DateTime<Utc>,
}

impl DataPlaneStats {
    fn of(row: &DataPlaneRow) -> Option<Self> {
        let (s, reported_at) = (&row.stats.as_ref()?.0, row.stats_at?);
        #[allow(clippy::cast_precision_loss)]
        let error_rate = (s.interval_requests > 0)
            .then(|| s.interval_errors as f64 / s.interval_requests as f64);
        Some(DataPlaneStats {
            requests: s.requests,
            errors: s.errors,
            interval_requests: s.interval_requests,
            error_rate: error_rate.map(|r| r.min(1.0)),
            p99_ms: (s.p99_ms > 0.0).then_some(s.p99_ms),
            interval_ms: s.interval_ms,
            reported_at,
        })
    }
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
            let stats = DataPlaneStats::of(&r);
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
                stats,
            }
        })
        .collect();
    Ok(Json(DataPlanes {
        current_version: current,
        items,
    }))
}
