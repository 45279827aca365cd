//! The fleet table: one row per data plane, written by the cluster service
//! as streams open, ACK, NACK and close, and with the traffic counters
//! each data plane reports.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use turnpike_proto as proto;
use uuid::Uuid;

use super::Store;
use crate::Error;

/// A data plane is shown as connected only while its stream's control plane
/// keeps refreshing `last_seen`; this covers a control plane that died
/// without marking its streams closed.
pub const STALE_AFTER_SECS: f64 = 30.0;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DataPlaneRow {
    pub node_id: String,
    pub hostname: String,
    pub software_version: String,
    pub labels: Json<BTreeMap<String, String>>,
    pub connected: bool,
    pub connected_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub config_version: i64,
    pub config_hash: String,
    pub last_error: Option<String>,
    pub last_error_version: Option<i64>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Its last traffic report and when it arrived; `None` before the first.
    pub stats: Option<Json<ReportedStats>>,
    pub stats_at: Option<DateTime<Utc>>,
}

/// A data plane's last `Stats` message as `data_planes.stats` keeps it.
/// Missing fields read as 0, so rows written by another version still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportedStats {
    /// Answers since the data plane started.
    pub requests: u64,
    /// Of those, 5xx.
    pub errors: u64,
    /// Answers and 5xx answers in the last interval.
    pub interval_requests: u64,
    pub interval_errors: u64,
    /// p99 over the last interval (a latency bucket's bound), 0 when no
    /// request ended in it.
    pub p99_ms: f64,
    pub interval_ms: u64,
}

impl From<&proto::Stats> for ReportedStats {
    fn from(s: &proto::Stats) -> Self {
        ReportedStats {
            requests: s.requests,
            errors: s.errors,
            interval_requests: s.interval_requests,
            interval_errors: s.interval_errors,
            // JSON has no NaN or infinity.
            p99_ms: if s.p99_ms.is_finite() && s.p99_ms > 0.0 {
                s.p99_ms
            } else {
                0.0
            },
            interval_ms: s.interval_ms,
        }
    }
}

/// A data plane's state as the fleet view and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpStatus {
    Synced,
    Behind,
    Error,
    Disconnected,
}

impl DpStatus {
    pub const ALL: [DpStatus; 4] = [
        DpStatus::Synced,
        DpStatus::Behind,
        DpStatus::Error,
        DpStatus::Disconnected,
    ];

    /// `connected` as the fleet queries compute it (the stream's control
    /// plane refreshed it lately); `applied` is the acknowledged version,
    /// `current` the newest one.
    pub fn of(connected: bool, applied: u64, error_version: Option<i64>, current: u64) -> DpStatus {
        if !connected {
            DpStatus::Disconnected
        } else if refused_newer(applied, error_version) {
            DpStatus::Error
        } else if applied >= current {
            DpStatus::Synced
        } else {
            DpStatus::Behind
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DpStatus::Synced => "synced",
            DpStatus::Behind => "behind",
            DpStatus::Error => "error",
            DpStatus::Disconnected => "disconnected",
        }
    }
}

/// Its last NACK is newer than the version it runs.
pub fn refused_newer(applied: u64, error_version: Option<i64>) -> bool {
    error_version.is_some_and(|v| v.max(0) as u64 > applied)
}

/// What a data plane said in its Hello.
pub struct HelloInfo<'a> {
    pub node_id: &'a str,
    pub hostname: &'a str,
    pub software_version: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub cached_version: u64,
    pub cached_hash: &'a str,
}

impl Store {
    pub async fn dp_hello(&self, session: Uuid, h: &HelloInfo<'_>) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO data_planes (node_id, hostname, software_version, labels, session_id, connected,
                 connected_at, last_seen, config_version, config_hash)
             VALUES ($1, $2, $3, $4, $5, true, now(), now(), $6, $7)
             ON CONFLICT (node_id) DO UPDATE SET hostname = EXCLUDED.hostname,
                 software_version = EXCLUDED.software_version, labels = EXCLUDED.labels,
                 session_id = EXCLUDED.session_id, connected = true, connected_at = now(), last_seen = now(),
                 config_version = EXCLUDED.config_version, config_hash = EXCLUDED.config_hash",
        )
        .bind(h.node_id)
        .bind(h.hostname)
        .bind(h.software_version)
        .bind(Json(h.labels))
        .bind(session)
        .bind(h.cached_version as i64)
        .bind(h.cached_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn dp_ack(&self, session: Uuid, version: u64, hash: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE data_planes SET config_version = $2, config_hash = $3, last_seen = now(),
                 last_error = NULL, last_error_version = NULL, last_error_at = NULL
             WHERE session_id = $1",
        )
        .bind(session)
        .bind(version as i64)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn dp_nack(&self, session: Uuid, version: u64, error: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE data_planes SET last_error = $3, last_error_version = $2, last_error_at = now(),
                 last_seen = now()
             WHERE session_id = $1",
        )
        .bind(session)
        .bind(version as i64)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a traffic report (one UPDATE per report); it also shows the
    /// data plane alive.
    pub async fn dp_stats(&self, session: Uuid, stats: &proto::Stats) -> Result<(), Error> {
        sqlx::query(
            "UPDATE data_planes SET stats = $2, stats_at = now(), last_seen = now()
             WHERE session_id = $1",
        )
        .bind(session)
        .bind(Json(ReportedStats::from(stats)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a stream closed, unless a newer stream of the same node already
    /// took its place.
    pub async fn dp_disconnect(&self, session: Uuid) -> Result<(), Error> {
        sqlx::query(
            "UPDATE data_planes SET connected = false, last_seen = now() WHERE session_id = $1",
        )
        .bind(session)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Refreshes `last_seen` of the streams this process holds.
    pub async fn dp_heartbeat(&self, sessions: &[Uuid]) -> Result<(), Error> {
        sqlx::query(
            "UPDATE data_planes SET last_seen = now() WHERE session_id = ANY($1) AND connected",
        )
        .bind(sessions)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn data_planes(&self) -> Result<Vec<DataPlaneRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT node_id, hostname, software_version, labels,
                 connected AND last_seen > now() - make_interval(secs => $1) AS connected,
                 connected_at, last_seen, config_version, config_hash,
                 last_error, last_error_version, last_error_at, stats, stats_at
             FROM data_planes ORDER BY node_id",
        )
        .bind(STALE_AFTER_SECS)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every data plane's status against the newest version, in one query
    /// (for `/metrics`; the fleet view reads the same columns).
    pub async fn data_plane_statuses(&self) -> Result<Vec<DpStatus>, Error> {
        let rows: Vec<(bool, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT connected AND last_seen > now() - make_interval(secs => $1),
                 config_version, last_error_version,
                 (SELECT coalesce(max(version), 0) FROM config_versions)
             FROM data_planes",
        )
        .bind(STALE_AFTER_SECS)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(connected, applied, error_version, current)| {
                DpStatus::of(
                    connected,
                    applied.max(0) as u64,
                    error_version,
                    current.max(0) as u64,
                )
            })
            .collect())
    }

    /// Deletes the rows of data planes not seen for longer than `after`,
    /// and returns how many went. A row that still looks connected is kept
    /// until it is also stale, so a short `after` never drops a live stream
    /// whose heartbeat is merely due. Idempotent: every control plane may run
    /// it.
    pub async fn expire_data_planes(&self, after: Duration) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM data_planes
             WHERE last_seen < now() - make_interval(secs => $1)
               AND (NOT connected OR last_seen < now() - make_interval(secs => $2))",
        )
        .bind(after.as_secs_f64())
        .bind(STALE_AFTER_SECS)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
