//! The config version history: listing and reading stored versions, and
//! replacing the whole config in one write (import, rollback).
//!
//! Retention: every version is kept. A snapshot is the prost encoding of
//! the config, a few hundred bytes per entity, so even a busy gateway grows
//! the table slowly; pruning (keep N versions or D days, never the current
//! one) can come when someone needs it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message;
use serde::Serialize;
use sqlx::types::Json;
use turnpike_model::{RouteSpec, Snapshot, UpstreamSpec};
use turnpike_proto as proto;
use uuid::Uuid;

use super::{EntityKind, Store, WriteTx};
use crate::Error;

/// One version as the history lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionEntry {
    pub version: u64,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub author: String,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct VersionPage {
    pub items: Vec<VersionEntry>,
    /// Cursor for the next (older) page (`?before=`), or null on the last.
    pub next: Option<String>,
}

/// A stored version with its decoded content.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub entry: VersionEntry,
    pub snapshot: Snapshot,
}

type VersionRow = (i64, String, DateTime<Utc>, String, String, Vec<u8>);

const NEWEST: &str = "SELECT version, hash, created_at, author, summary, snapshot
    FROM config_versions ORDER BY version DESC LIMIT 1";
const BY_VERSION: &str = "SELECT version, hash, created_at, author, summary, snapshot
    FROM config_versions WHERE version = $1";

/// Decodes a stored version. Stored snapshots were validated before they
/// were written, so a failure here means a corrupt row or a bug.
fn decode(
    (version, hash, created_at, author, summary, bytes): VersionRow,
) -> Result<StoredVersion, Error> {
    let broken = |e: String| Error::Internal(format!("stored config version {version}: {e}"));
    let config = proto::Config::decode(bytes.as_slice()).map_err(|e| broken(e.to_string()))?;
    let snapshot = Snapshot::try_from(proto::Snapshot {
        version: version as u64,
        hash: hash.clone(),
        config: Some(config),
    })
    .map_err(|e| broken(e.to_string()))?;
    Ok(StoredVersion {
        entry: VersionEntry {
            version: version as u64,
            hash,
            created_at,
            author,
            summary,
        },
        snapshot,
    })
}

fn not_found(version: u64) -> Error {
    Error::NotFound {
        kind: "config version",
        key: version.to_string(),
    }
}

impl Store {
    /// One page of the history, newest first; `before` is the cursor of the
    /// previous page (versions strictly below it).
    pub async fn list_versions(
        &self,
        limit: u32,
        before: Option<u64>,
    ) -> Result<VersionPage, Error> {
        // Versions above i64::MAX cannot exist; such a cursor means "from the top".
        let before = before.and_then(|b| i64::try_from(b).ok());
        let mut rows: Vec<(i64, String, DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT version, hash, created_at, author, summary FROM config_versions
             WHERE ($1::bigint IS NULL OR version < $1) ORDER BY version DESC LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.0.to_string())
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(
                |(version, hash, created_at, author, summary)| VersionEntry {
                    version: version as u64,
                    hash,
                    created_at,
                    author,
                    summary,
                },
            )
            .collect();
        Ok(VersionPage { items, next })
    }

    /// A stored version and its content; NotFound if there is no such
    /// version.
    pub async fn get_version(&self, version: u64) -> Result<StoredVersion, Error> {
        let v = i64::try_from(version).map_err(|_| not_found(version))?;
        let row: Option<VersionRow> = sqlx::query_as(BY_VERSION)
            .bind(v)
            .fetch_optional(&self.pool)
            .await?;
        decode(row.ok_or_else(|| not_found(version))?)
    }

    /// The newest version and its content.
    pub async fn newest_version(&self) -> Result<StoredVersion, Error> {
        let row: VersionRow = sqlx::query_as(NEWEST).fetch_one(&self.pool).await?;
        decode(row)
    }
}

/// Rows of one entity table, by id.
async fn current<S: serde::de::DeserializeOwned + Send + Unpin + 'static>(
    tx: &mut WriteTx,
    kind: EntityKind,
) -> Result<HashMap<Uuid, S>, Error> {
    let sql = match kind {
        EntityKind::Upstream => "SELECT id, spec FROM upstreams",
        EntityKind::Route => "SELECT id, spec FROM routes",
    };
    let rows: Vec<(Uuid, Json<S>)> = sqlx::query_as(sql).fetch_all(tx.conn()).await?;
    Ok(rows.into_iter().map(|(id, s)| (id, s.0)).collect())
}

impl WriteTx {
    /// The newest stored version, read inside this transaction. Taken after
    /// the write lock, it is the config the tables hold.
    pub async fn current_snapshot(&mut self) -> Result<StoredVersion, Error> {
        let row: VersionRow = sqlx::query_as(NEWEST).fetch_one(self.conn()).await?;
        decode(row)
    }

    /// Makes the tables hold exactly the entities of `target` (ids and
    /// specs). Unchanged rows are not touched, so their `updated_at` stays;
    /// rows that stay keep their `created_at`.
    ///
    /// Order matters: routes reference upstreams (`ON DELETE RESTRICT`) and
    /// names are unique. Routes that go are deleted first; then rows whose
    /// name changes, and upstreams that go, get a placeholder name (with a
    /// character names may not contain), so a name can move from one id to
    /// another; then upstreams and routes are written; the upstreams that
    /// go are deleted last, when no route points at them any more.
    pub async fn replace_all(&mut self, target: &Snapshot) -> Result<(), Error> {
        let upstreams: HashMap<Uuid, UpstreamSpec> = current(self, EntityKind::Upstream).await?;
        let routes: HashMap<Uuid, RouteSpec> = current(self, EntityKind::Route).await?;
        let wanted_upstreams: HashMap<Uuid, &UpstreamSpec> =
            target.upstreams.iter().map(|u| (u.id, &u.spec)).collect();
        let wanted_routes: HashMap<Uuid, &RouteSpec> =
            target.routes.iter().map(|r| (r.id, &r.spec)).collect();

        for id in routes.keys().filter(|id| !wanted_routes.contains_key(id)) {
            self.delete(EntityKind::Route, *id).await?;
        }
        let doomed_upstreams: Vec<Uuid> = upstreams
            .keys()
            .filter(|id| !wanted_upstreams.contains_key(id))
            .copied()
            .collect();
        let renamed_upstreams = upstreams.iter().filter_map(|(id, s)| {
            wanted_upstreams
                .get(id)
                .filter(|w| w.name != s.name)
                .map(|_| *id)
        });
        let park: Vec<Uuid> = doomed_upstreams
            .iter()
            .copied()
            .chain(renamed_upstreams)
            .collect();
        self.park_names(EntityKind::Upstream, &park).await?;
        let renamed_routes: Vec<Uuid> = routes
            .iter()
            .filter_map(|(id, s)| {
                wanted_routes
                    .get(id)
                    .filter(|w| w.name != s.name)
                    .map(|_| *id)
            })
            .collect();
        self.park_names(EntityKind::Route, &renamed_routes).await?;

        for u in &target.upstreams {
            if upstreams.get(&u.id) != Some(&u.spec) {
                self.upsert(u.id, &u.spec, None).await?;
            }
        }
        for r in &target.routes {
            if routes.get(&r.id) != Some(&r.spec) {
                let upstream = Uuid::parse_str(&r.spec.upstream).map_err(|_| {
                    Error::Internal(format!(
                        "route {} refers to upstream '{}', not an id",
                        r.id, r.spec.upstream
                    ))
                })?;
                self.upsert(r.id, &r.spec, Some(upstream)).await?;
            }
        }
        for id in doomed_upstreams {
            self.delete(EntityKind::Upstream, id).await?;
        }
        Ok(())
    }

    /// Frees the names of `ids` for the rest of this transaction ('#' never
    /// appears in an entity name).
    async fn park_names(&mut self, kind: EntityKind, ids: &[Uuid]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = match kind {
            EntityKind::Upstream => {
                "UPDATE upstreams SET name = '#parked ' || id::text WHERE id = ANY($1)"
            }
            EntityKind::Route => {
                "UPDATE routes SET name = '#parked ' || id::text WHERE id = ANY($1)"
            }
        };
        sqlx::query(sql).bind(ids).execute(self.conn()).await?;
        Ok(())
    }
}
