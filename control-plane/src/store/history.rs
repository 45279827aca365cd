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
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use turnpike_model::{
    CertificateSpec, ConsumerSpec, CredentialSpec, PluginSpec, RouteSpec, Snapshot, UpstreamSpec,
};
use turnpike_proto as proto;
use uuid::Uuid;

use super::{EntityKind, Refs, Store, WriteTx};
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
    // `decode`, not `TryFrom`: that one is the data plane's, which refuses
    // what it cannot enforce yet.
    let snapshot = Snapshot::decode(proto::Snapshot {
        version: version as u64,
        hash: hash.clone(),
        config: Some(config),
        secrets: None,
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

/// Rows of one table (trusted name), by id.
async fn current<S: serde::de::DeserializeOwned + Send + Unpin + 'static>(
    tx: &mut WriteTx,
    table: &str,
) -> Result<HashMap<Uuid, S>, Error> {
    let sql = format!("SELECT id, spec FROM {table}");
    let rows: Vec<(Uuid, Json<S>)> = sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|(id, s)| (id, s.0)).collect())
}

/// The ids of `current` absent from `wanted`, and of those present in both
/// with another spec.
fn gone_and_changed<S: PartialEq>(
    current: &HashMap<Uuid, S>,
    wanted: &HashMap<Uuid, &S>,
) -> (Vec<Uuid>, Vec<Uuid>) {
    let gone = current
        .keys()
        .filter(|id| !wanted.contains_key(id))
        .copied()
        .collect();
    let changed = current
        .iter()
        .filter(|(id, s)| wanted.get(id).is_some_and(|w| *w != *s))
        .map(|(id, _)| *id)
        .collect();
    (gone, changed)
}

fn id_ref(field: &str, owner: Uuid, raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw)
        .map_err(|_| Error::Internal(format!("{owner}: {field} '{raw}' is not an id")))
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
    /// Order matters: plugins reference routes and consumers, routes
    /// upstreams, upstreams their client certificate (all `RESTRICT`), and
    /// names, usernames, plugin scopes, credential keys and SNIs are
    /// unique. So: what goes and references others is deleted first
    /// (plugins, routes, credentials); then every unique value that moves
    /// is parked (a placeholder with a character names may not contain,
    /// SNIs of changed and departing certificates dropped); then everything
    /// is written, referenced kinds first; the consumers, upstreams and
    /// certificates that go are deleted last, in that order.
    pub async fn replace_all(&mut self, target: &Snapshot) -> Result<(), Error> {
        let upstreams: HashMap<Uuid, UpstreamSpec> = current(self, "upstreams").await?;
        let routes: HashMap<Uuid, RouteSpec> = current(self, "routes").await?;
        let consumers: HashMap<Uuid, ConsumerSpec> = current(self, "consumers").await?;
        let credentials: HashMap<Uuid, CredentialSpec> = current(self, "credentials").await?;
        let plugins: HashMap<Uuid, PluginSpec> = current(self, "plugins").await?;
        let certificates: HashMap<Uuid, CertificateSpec> = current(self, "certificates").await?;

        let want_u: HashMap<Uuid, &UpstreamSpec> =
            target.upstreams.iter().map(|u| (u.id, &u.spec)).collect();
        let want_r: HashMap<Uuid, &RouteSpec> =
            target.routes.iter().map(|r| (r.id, &r.spec)).collect();
        let want_c: HashMap<Uuid, &ConsumerSpec> =
            target.consumers.iter().map(|c| (c.id, &c.spec)).collect();
        let want_cr: HashMap<Uuid, &CredentialSpec> =
            target.credentials.iter().map(|c| (c.id, &c.spec)).collect();
        let want_p: HashMap<Uuid, &PluginSpec> =
            target.plugins.iter().map(|p| (p.id, &p.spec)).collect();
        let want_ce: HashMap<Uuid, &CertificateSpec> = target
            .certificates
            .iter()
            .map(|c| (c.id, &c.spec))
            .collect();

        let (gone_u, changed_u) = gone_and_changed(&upstreams, &want_u);
        let (gone_r, changed_r) = gone_and_changed(&routes, &want_r);
        let (gone_c, changed_c) = gone_and_changed(&consumers, &want_c);
        let (gone_cr, changed_cr) = gone_and_changed(&credentials, &want_cr);
        let (gone_p, changed_p) = gone_and_changed(&plugins, &want_p);
        let (gone_ce, changed_ce) = gone_and_changed(&certificates, &want_ce);

        for id in &gone_p {
            self.delete(EntityKind::Plugin, *id).await?;
        }
        for id in &gone_r {
            self.delete(EntityKind::Route, *id).await?;
        }
        for id in &gone_cr {
            self.delete_credential(*id).await?;
        }
        let unserved: Vec<Uuid> = gone_ce.iter().chain(&changed_ce).copied().collect();
        self.clear_snis(&unserved).await?;
        let parked_u: Vec<Uuid> = gone_u.iter().chain(&changed_u).copied().collect();
        let parked_c: Vec<Uuid> = gone_c.iter().chain(&changed_c).copied().collect();
        self.park("upstreams", "name", &parked_u).await?;
        self.park("routes", "name", &changed_r).await?;
        self.park("consumers", "username", &parked_c).await?;
        self.park("plugins", "name", &changed_p).await?;
        self.park("credentials", "lookup", &changed_cr).await?;

        let none = Refs::default();
        for c in target
            .certificates
            .iter()
            .filter(|c| certificates.get(&c.id) != Some(&c.spec))
        {
            self.upsert(c.id, &c.spec, &none).await?;
        }
        for u in target
            .upstreams
            .iter()
            .filter(|u| upstreams.get(&u.id) != Some(&u.spec))
        {
            let certificate = u.spec.tls.as_ref().and_then(|t| t.client_certificate);
            self.upsert(
                u.id,
                &u.spec,
                &Refs {
                    certificate,
                    ..none
                },
            )
            .await?;
        }
        for r in target
            .routes
            .iter()
            .filter(|r| routes.get(&r.id) != Some(&r.spec))
        {
            let upstream = Some(id_ref("upstream", r.id, &r.spec.upstream)?);
            self.upsert(r.id, &r.spec, &Refs { upstream, ..none })
                .await?;
        }
        for c in target
            .consumers
            .iter()
            .filter(|c| consumers.get(&c.id) != Some(&c.spec))
        {
            self.upsert(c.id, &c.spec, &none).await?;
        }
        for c in target
            .credentials
            .iter()
            .filter(|c| credentials.get(&c.id) != Some(&c.spec))
        {
            self.put_credential(c.id, &c.spec).await?;
        }
        for p in target
            .plugins
            .iter()
            .filter(|p| plugins.get(&p.id) != Some(&p.spec))
        {
            let refs = Refs {
                route: p
                    .spec
                    .route
                    .as_deref()
                    .map(|r| id_ref("route", p.id, r))
                    .transpose()?,
                consumer: p
                    .spec
                    .consumer
                    .as_deref()
                    .map(|c| id_ref("consumer", p.id, c))
                    .transpose()?,
                ..none
            };
            self.upsert(p.id, &p.spec, &refs).await?;
        }
        for id in gone_c {
            self.delete(EntityKind::Consumer, id).await?;
        }
        for id in gone_u {
            self.delete(EntityKind::Upstream, id).await?;
        }
        for id in gone_ce {
            self.delete(EntityKind::Certificate, id).await?;
        }
        Ok(())
    }

    /// Frees the unique `column` of `ids` in `table` (trusted names) for the
    /// rest of this transaction ('#' never appears in a name, username,
    /// plugin name or key digest).
    async fn park(&mut self, table: &str, column: &str, ids: &[Uuid]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql =
            format!("UPDATE {table} SET {column} = '#parked ' || id::text WHERE id = ANY($1)");
        sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
