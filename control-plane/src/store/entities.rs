//! Entity rows: the validated spec as JSONB plus the columns Postgres must
//! enforce. Generic over the entity kind, so every entity gets the same
//! lookup-by-id-or-name, paging and conflict handling.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use turnpike_model::{RouteSpec, UpstreamSpec};
use uuid::Uuid;

use super::{Store, WriteTx};
use crate::Error;
use crate::error::{FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, pg_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Upstream,
    Route,
}

impl EntityKind {
    pub fn singular(self) -> &'static str {
        match self {
            EntityKind::Upstream => "upstream",
            EntityKind::Route => "route",
        }
    }

    /// Table names come from this closed set only, which is what makes the
    /// `AssertSqlSafe` below sound.
    fn table(self) -> &'static str {
        match self {
            EntityKind::Upstream => "upstreams",
            EntityKind::Route => "routes",
        }
    }
}

/// A spec type the store can keep.
pub trait EntitySpec: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    const KIND: EntityKind;
    fn name(&self) -> &str;
    fn tags(&self) -> &[String];
}

impl EntitySpec for UpstreamSpec {
    const KIND: EntityKind = EntityKind::Upstream;
    fn name(&self) -> &str {
        &self.name
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
}

impl EntitySpec for RouteSpec {
    const KIND: EntityKind = EntityKind::Route;
    fn name(&self) -> &str {
        &self.name
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// An entity as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Stored<S> {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: S,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct ListPage<S> {
    pub items: Vec<Stored<S>>,
    /// Cursor for the next page (`?after=`), or null on the last page.
    pub next: Option<String>,
}

type Row<S> = (Uuid, Json<S>, DateTime<Utc>, DateTime<Utc>);

fn from_row<S>((id, spec, created_at, updated_at): Row<S>) -> Stored<S> {
    Stored {
        id,
        spec: spec.0,
        created_at,
        updated_at,
    }
}

/// `WHERE` clause for a key that is either an id or a name.
fn key_clause(key: &str) -> (&'static str, KeyBind) {
    match Uuid::parse_str(key) {
        Ok(id) => ("id = $1", KeyBind::Id(id)),
        Err(_) => ("name = $1", KeyBind::Name(key.to_owned())),
    }
}

enum KeyBind {
    Id(Uuid),
    Name(String),
}

macro_rules! bind_key {
    ($q:expr, $k:expr) => {
        match $k {
            KeyBind::Id(id) => $q.bind(id),
            KeyBind::Name(n) => $q.bind(n),
        }
    };
}

impl Store {
    pub async fn get<S: EntitySpec>(&self, key: &str) -> Result<Stored<S>, Error> {
        let (clause, k) = key_clause(key);
        let sql = format!(
            "SELECT id, spec, created_at, updated_at FROM {} WHERE {clause}",
            S::KIND.table()
        );
        let q = sqlx::query_as::<_, Row<S>>(AssertSqlSafe(sql));
        bind_key!(q, k)
            .fetch_optional(&self.pool)
            .await?
            .map(from_row)
            .ok_or_else(|| Error::NotFound {
                kind: S::KIND.singular(),
                key: key.to_owned(),
            })
    }

    /// One page in id order (ids are UUIDv7, so that is creation order).
    /// `tags` keeps entities that carry all of them.
    pub async fn list<S: EntitySpec>(
        &self,
        limit: u32,
        after: Option<Uuid>,
        tags: &[String],
    ) -> Result<ListPage<S>, Error> {
        let sql = format!(
            "SELECT id, spec, created_at, updated_at FROM {}
             WHERE ($1::uuid IS NULL OR id > $1) AND tags @> $2
             ORDER BY id LIMIT $3",
            S::KIND.table()
        );
        let mut rows = sqlx::query_as::<_, Row<S>>(AssertSqlSafe(sql))
            .bind(after)
            .bind(tags)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.0.to_string())
        } else {
            None
        };
        Ok(ListPage {
            items: rows.into_iter().map(from_row).collect(),
            next,
        })
    }
}

impl WriteTx {
    /// Reads an entity and locks its row until the transaction ends.
    pub async fn get_for_update<S: EntitySpec>(&mut self, key: &str) -> Result<Stored<S>, Error> {
        let (clause, k) = key_clause(key);
        let sql = format!(
            "SELECT id, spec, created_at, updated_at FROM {} WHERE {clause} FOR UPDATE",
            S::KIND.table()
        );
        let q = sqlx::query_as::<_, Row<S>>(AssertSqlSafe(sql));
        bind_key!(q, k)
            .fetch_optional(self.conn())
            .await?
            .map(from_row)
            .ok_or_else(|| Error::NotFound {
                kind: S::KIND.singular(),
                key: key.to_owned(),
            })
    }

    /// The id of the upstream with this id or name.
    pub async fn resolve_upstream(&mut self, key: &str) -> Result<Option<Uuid>, Error> {
        let (clause, k) = key_clause(key);
        let sql = format!("SELECT id FROM upstreams WHERE {clause}");
        let q = sqlx::query_as::<_, (Uuid,)>(AssertSqlSafe(sql));
        Ok(bind_key!(q, k)
            .fetch_optional(self.conn())
            .await?
            .map(|r| r.0))
    }

    /// Inserts or replaces the entity `id`. `upstream_id` is the reference
    /// column of routes (None for other kinds).
    pub async fn upsert<S: EntitySpec>(
        &mut self,
        id: Uuid,
        spec: &S,
        upstream_id: Option<Uuid>,
    ) -> Result<Stored<S>, Error> {
        let kind = S::KIND;
        let (extra_col, extra_val, extra_set) = match kind {
            EntityKind::Route => (
                ", upstream_id",
                ", $5",
                ", upstream_id = EXCLUDED.upstream_id",
            ),
            EntityKind::Upstream => ("", "", ""),
        };
        let sql = format!(
            "INSERT INTO {table} (id, name, spec, tags, created_at, updated_at{extra_col})
             VALUES ($1, $2, $3, $4, now(), now(){extra_val})
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, spec = EXCLUDED.spec,
                 tags = EXCLUDED.tags, updated_at = now(){extra_set}
             RETURNING id, spec, created_at, updated_at",
            table = kind.table()
        );
        let mut q = sqlx::query_as::<_, Row<S>>(AssertSqlSafe(sql))
            .bind(id)
            .bind(spec.name())
            .bind(Json(spec))
            .bind(spec.tags());
        if kind == EntityKind::Route {
            q = q.bind(upstream_id);
        }
        match q.fetch_one(self.conn()).await {
            Ok(row) => Ok(from_row(row)),
            Err(e) if pg_code(&e).as_deref() == Some(UNIQUE_VIOLATION) => {
                Err(Error::Conflict(format!(
                    "a{} {} named '{}' already exists",
                    if kind == EntityKind::Upstream {
                        "n"
                    } else {
                        ""
                    },
                    kind.singular(),
                    spec.name()
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&mut self, kind: EntityKind, id: Uuid) -> Result<(), Error> {
        let sql = format!("DELETE FROM {} WHERE id = $1", kind.table());
        match sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .execute(self.conn())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if pg_code(&e).as_deref() == Some(FOREIGN_KEY_VIOLATION) => {
                // The failed statement aborted the transaction; name the
                // referencing routes from a fresh read.
                Err(Error::Conflict(format!(
                    "{} {id} is still referenced by routes",
                    kind.singular()
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Names of the routes that use this upstream, for a helpful 409.
    pub async fn routes_using(&mut self, upstream: Uuid) -> Result<Vec<String>, Error> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM routes WHERE upstream_id = $1 ORDER BY name LIMIT 20")
                .bind(upstream)
                .fetch_all(self.conn())
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
