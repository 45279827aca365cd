//! Config versions: the write transaction that draws them, the snapshot each
//! one stores, and reading them back.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::histogram::Histogram;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Transaction};
use turnpike_model::{Certificate, Consumer, Credential, Plugin, Route, Snapshot, Upstream};
use turnpike_proto as proto;
use uuid::Uuid;

use super::Store;
use crate::Error;
use crate::snapshot::Published;

/// Key of the advisory lock that serializes config writes. Taking it before
/// `nextval` makes versions commit in the order they are drawn, so a reader
/// that sees version N has seen every version below it.
const CONFIG_WRITE_LOCK: i64 = 0x7475_726e_7069_6b65; // "turnpike"

/// `NOTIFY` channel on which every commit announces its version (the
/// payload, in decimal) to the control planes sharing this database.
pub const CONFIG_CHANNEL: &str = "turnpike_config";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: u64,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// The last snapshot this control plane process built (for any
    /// version, on any write it served); null until it built one. A version
    /// written through another control plane is built there.
    pub last_build: Option<SnapshotBuild>,
}

/// The cost of one snapshot build, kept so operators (and
/// `bench/scale.sh`) can see what a write costs at their config's size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SnapshotBuild {
    /// The version the snapshot was built for.
    pub version: u64,
    /// Milliseconds to read every entity in the write transaction, validate
    /// the whole, convert, encode and hash it (not the entity changes before
    /// it, nor storing it).
    pub build_ms: f64,
    /// Encoded size of the snapshot's config: what a data plane that gets
    /// this version in full receives.
    pub snapshot_bytes: u64,
}

/// The last [`SnapshotBuild`] of this process, shared by its writers, and
/// the durations of all its builds (for `/metrics`).
#[derive(Debug, Clone)]
pub(super) struct LastBuild {
    last: Arc<Mutex<Option<SnapshotBuild>>>,
    durations: Histogram,
}

impl Default for LastBuild {
    fn default() -> Self {
        LastBuild {
            last: Arc::default(),
            durations: crate::metrics::build_histogram(),
        }
    }
}

impl LastBuild {
    /// Counts every build's duration; keeps `b` unless a newer version was
    /// recorded (writers build under the advisory lock but record after
    /// their commit, in either order).
    fn record(&self, b: SnapshotBuild) {
        self.durations.observe(b.build_ms / 1000.0);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|l| l.version < b.version) {
            *last = Some(b);
        }
    }

    pub(super) fn get(&self) -> Option<SnapshotBuild> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn durations(&self) -> Histogram {
        self.durations.clone()
    }
}

/// What a change was, for the version history and the audit log.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// Name of the admin token (or `system`).
    pub actor: &'a str,
    /// `create`, `replace`, `update`, `delete`, `rollback`, `import`, ...
    pub action: &'a str,
    /// `upstream`, `route`, ..., or `config` for whole-config changes.
    pub entity: &'a str,
    pub entity_id: Option<String>,
    pub entity_name: Option<&'a str>,
}

impl Change<'_> {
    pub fn summary(&self) -> String {
        match self.entity_name {
            Some(name) => format!("{} {} {name}", self.action, self.entity),
            None => format!("{} {}", self.action, self.entity),
        }
    }
}

/// One config change in progress. Dropping it without [`WriteTx::commit`]
/// rolls everything back and no version is recorded.
pub struct WriteTx {
    tx: Transaction<'static, Postgres>,
    last_build: LastBuild,
}

impl Store {
    pub async fn begin_write(&self) -> Result<WriteTx, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CONFIG_WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx {
            tx,
            last_build: self.last_build.clone(),
        })
    }

    /// Records version 1 (the empty config) on a fresh database, and returns
    /// the newest version.
    pub async fn ensure_initial_version(&self) -> Result<Arc<Published>, Error> {
        let mut w = self.begin_write().await?;
        let newest = w.newest().await?;
        match newest {
            Some(p) => {
                w.tx.rollback().await?;
                Ok(p)
            }
            None => {
                w.commit(&Change {
                    actor: "system",
                    action: "initialize",
                    entity: "config",
                    entity_id: None,
                    entity_name: None,
                })
                .await
            }
        }
    }

    /// The newest version if it is above `held`, ready to publish; `None`
    /// when `held` is already the newest. Reads only the newest row: versions
    /// coalesce, as they do for a slow data plane.
    pub async fn published_after(&self, held: u64) -> Result<Option<Arc<Published>>, Error> {
        let row: Option<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT version, hash, snapshot FROM config_versions
             WHERE version > $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(i64::try_from(held).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await?;
        row.map(published).transpose()
    }

    pub async fn current_version(&self) -> Result<VersionInfo, Error> {
        let row: (i64, String, DateTime<Utc>) = sqlx::query_as(
            "SELECT version, hash, created_at FROM config_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(VersionInfo {
            version: row.0 as u64,
            hash: row.1,
            created_at: row.2,
            last_build: self.last_build.get(),
        })
    }
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    async fn newest(&mut self) -> Result<Option<Arc<Published>>, Error> {
        let row: Option<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT version, hash, snapshot FROM config_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(published).transpose()
    }

    /// Draws the next version, builds and checks the whole snapshot as it
    /// stands in this transaction, stores it with an audit record, and
    /// commits.
    pub async fn commit(mut self, change: &Change<'_>) -> Result<Arc<Published>, Error> {
        let summary = change.summary();
        let (version,): (i64,) = sqlx::query_as("SELECT nextval('config_version_seq')")
            .fetch_one(&mut *self.tx)
            .await?;
        let started = Instant::now();
        let snapshot = self.build_snapshot(version as u64).await?;
        // Every entity was validated on its way in; this catches what only
        // the whole can show, and guards against a bug publishing bad config.
        snapshot
            .validate()
            .map_err(|e| Error::Internal(format!("snapshot {version} failed validation: {e}")))?;
        let wire = snapshot.to_proto();
        let bytes = wire
            .config
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default();
        let build = SnapshotBuild {
            version: version as u64,
            build_ms: started.elapsed().as_micros() as f64 / 1000.0,
            snapshot_bytes: bytes.len() as u64,
        };
        sqlx::query(
            "INSERT INTO config_versions (version, hash, snapshot, author, summary) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version)
        .bind(&wire.hash)
        .bind(bytes)
        .bind(change.actor)
        .bind(&summary)
        .execute(&mut *self.tx)
        .await?;
        super::admin::insert_audit(&mut self.tx, change, Some(version)).await?;
        // Inside the transaction, so Postgres delivers it only if the version
        // commits, and after it is visible: a control plane that hears it and
        // reads `config_versions` finds it.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CONFIG_CHANNEL)
            .bind(version.to_string())
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        tracing::debug!(
            version,
            build_ms = build.build_ms,
            snapshot_bytes = build.snapshot_bytes,
            "snapshot built"
        );
        self.last_build.record(build);
        Ok(Published::new(wire))
    }

    async fn build_snapshot(&mut self, version: u64) -> Result<Snapshot, Error> {
        Ok(Snapshot {
            version,
            upstreams: rows(
                &mut self.tx,
                "SELECT id, spec FROM upstreams",
                |id, spec| Upstream { id, spec },
            )
            .await?,
            routes: rows(&mut self.tx, "SELECT id, spec FROM routes", |id, spec| {
                Route { id, spec }
            })
            .await?,
            consumers: rows(
                &mut self.tx,
                "SELECT id, spec FROM consumers",
                |id, spec| Consumer { id, spec },
            )
            .await?,
            credentials: rows(
                &mut self.tx,
                "SELECT id, spec FROM credentials",
                |id, spec| Credential { id, spec },
            )
            .await?,
            plugins: rows(&mut self.tx, "SELECT id, spec FROM plugins", |id, spec| {
                Plugin { id, spec }
            })
            .await?,
            certificates: rows(
                &mut self.tx,
                "SELECT id, spec FROM certificates",
                |id, spec| Certificate { id, spec },
            )
            .await?,
        }
        .canonical())
    }
}

/// A stored `config_versions` row as the publisher holds it.
fn published((version, hash, bytes): (i64, String, Vec<u8>)) -> Result<Arc<Published>, Error> {
    let config = proto::Config::decode(bytes.as_slice())
        .map_err(|e| Error::Internal(format!("stored snapshot {version} does not decode: {e}")))?;
    Ok(Published::new(proto::Snapshot {
        version: version as u64,
        hash,
        config: Some(config),
        secrets: None,
    }))
}

/// Every row of one entity table as its snapshot type.
async fn rows<S: DeserializeOwned + Send + Unpin + 'static, T>(
    conn: &mut PgConnection,
    sql: &'static str,
    make: impl Fn(Uuid, S) -> T,
) -> Result<Vec<T>, Error> {
    let rows: Vec<(Uuid, Json<S>)> = sqlx::query_as(sql).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, s)| make(id, s.0)).collect())
}
