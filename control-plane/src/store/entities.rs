//! Entity rows: the validated spec as JSONB plus the columns Postgres must
//! enforce. Generic over the entity kind, so every entity gets the same
//! lookup-by-id-or-name, paging and conflict handling.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use turnpike_model::{CertificateSpec, ConsumerSpec, PluginSpec, RouteSpec, UpstreamSpec};
use uuid::Uuid;

use super::{Store, WriteTx};
use crate::Error;
use crate::error::{FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, pg_code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Upstream,
    Route,
    Consumer,
    Plugin,
    Certificate,
}

impl EntityKind {
    pub fn singular(self) -> &'static str {
        match self {
            EntityKind::Upstream => "upstream",
            EntityKind::Route => "route",
            EntityKind::Consumer => "consumer",
            EntityKind::Plugin => "plugin",
            EntityKind::Certificate => "certificate",
        }
    }

    /// Table names come from this closed set only, which is what makes the
    /// `AssertSqlSafe` below sound.
    pub(crate) fn table(self) -> &'static str {
        match self {
            EntityKind::Upstream => "upstreams",
            EntityKind::Route => "routes",
            EntityKind::Consumer => "consumers",
            EntityKind::Plugin => "plugins",
            EntityKind::Certificate => "certificates",
        }
    }

    /// The unique column a key that is not a UUID is looked up by. Plugins
    /// and certificates have none: they are found by id only.
    pub(crate) fn key_column(self) -> Option<&'static str> {
        match self {
            EntityKind::Upstream | EntityKind::Route => Some("name"),
            EntityKind::Consumer => Some("username"),
            EntityKind::Plugin | EntityKind::Certificate => None,
        }
    }

    /// The text column written from [`EntitySpec::name`]: unique for the
    /// named kinds, plain for plugins (their scope index uses it).
    fn label_column(self) -> Option<&'static str> {
        match self {
            EntityKind::Plugin => Some("name"),
            other => other.key_column(),
        }
    }

    /// Reference columns beside the spec, in the order [`Refs`] binds them.
    fn ref_columns(self) -> &'static [&'static str] {
        match self {
            EntityKind::Upstream => &["client_certificate_id"],
            EntityKind::Route => &["upstream_id"],
            EntityKind::Plugin => &["route_id", "consumer_id"],
            _ => &[],
        }
    }
}

/// The reference columns of a row, resolved from its spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs {
    pub upstream: Option<Uuid>,
    pub route: Option<Uuid>,
    pub consumer: Option<Uuid>,
    /// An upstream's client certificate.
    pub certificate: Option<Uuid>,
}

/// A spec type the store can keep.
pub trait EntitySpec: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    const KIND: EntityKind;
    /// The unique key (name, username), or a label for kinds without one
    /// (a plugin's name, a certificate's first SNI) used in logs and 409s.
    fn name(&self) -> &str;
    fn tags(&self) -> &[String];
    /// SNIs, kept unique across certificates in a side table.
    fn snis(&self) -> &[String] {
        &[]
    }
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

impl EntitySpec for ConsumerSpec {
    const KIND: EntityKind = EntityKind::Consumer;
    fn name(&self) -> &str {
        &self.username
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
}

impl EntitySpec for PluginSpec {
    const KIND: EntityKind = EntityKind::Plugin;
    fn name(&self) -> &str {
        &self.name
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
}

impl EntitySpec for CertificateSpec {
    const KIND: EntityKind = EntityKind::Certificate;
    fn name(&self) -> &str {
        self.label()
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
    fn snis(&self) -> &[String] {
        &self.snis
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

/// `WHERE` clause for a key that is either an id or the kind's unique
/// column (trusted text: it comes from [`EntityKind::key_column`]). A kind
/// without one is found by id only: None for any other key.
fn key_clause(kind: EntityKind, key: &str) -> Option<(String, KeyBind)> {
    match (Uuid::parse_str(key), kind.key_column()) {
        (Ok(id), _) => Some(("id = $1".to_owned(), KeyBind::Id(id))),
        (Err(_), Some(column)) => Some((format!("{column} = $1"), KeyBind::Name(key.to_owned()))),
        (Err(_), None) => None,
    }
}

fn not_found(kind: EntityKind, key: &str) -> Error {
    Error::NotFound {
        kind: kind.singular(),
        key: key.to_owned(),
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
        let (clause, k) = key_clause(S::KIND, key).ok_or_else(|| not_found(S::KIND, key))?;
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
        let (clause, k) = key_clause(S::KIND, key).ok_or_else(|| not_found(S::KIND, key))?;
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
        self.resolve(EntityKind::Upstream, key).await
    }

    /// The id of the entity of `kind` with this id or unique key.
    pub async fn resolve(&mut self, kind: EntityKind, key: &str) -> Result<Option<Uuid>, Error> {
        let Some((clause, k)) = key_clause(kind, key) else {
            return Ok(None);
        };
        let sql = format!("SELECT id FROM {} WHERE {clause}", kind.table());
        let q = sqlx::query_as::<_, (Uuid,)>(AssertSqlSafe(sql));
        Ok(bind_key!(q, k)
            .fetch_optional(self.conn())
            .await?
            .map(|r| r.0))
    }

    /// Inserts or replaces the entity `id`, with its reference columns.
    pub async fn upsert<S: EntitySpec>(
        &mut self,
        id: Uuid,
        spec: &S,
        refs: &Refs,
    ) -> Result<Stored<S>, Error> {
        let kind = S::KIND;
        let mut columns = vec!["id", "spec", "tags"];
        columns.extend(kind.label_column());
        columns.extend(kind.ref_columns());
        let values: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let updates: Vec<String> = columns[1..]
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        // Column names come from the closed lists above.
        let sql = format!(
            "INSERT INTO {table} ({columns}, created_at, updated_at)
             VALUES ({values}, now(), now())
             ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()
             RETURNING id, spec, created_at, updated_at",
            table = kind.table(),
            columns = columns.join(", "),
            values = values.join(", "),
            updates = updates.join(", "),
        );
        let mut q = sqlx::query_as::<_, Row<S>>(AssertSqlSafe(sql))
            .bind(id)
            .bind(Json(spec))
            .bind(spec.tags());
        if kind.label_column().is_some() {
            q = q.bind(spec.name());
        }
        for column in kind.ref_columns() {
            q = q.bind(match *column {
                "upstream_id" => refs.upstream,
                "route_id" => refs.route,
                "client_certificate_id" => refs.certificate,
                _ => refs.consumer,
            });
        }
        let stored = match q.fetch_one(self.conn()).await {
            Ok(row) => from_row(row),
            Err(e) if pg_code(&e).as_deref() == Some(UNIQUE_VIOLATION) => {
                return Err(unique_conflict(kind, spec.name(), refs));
            }
            Err(e) => return Err(e.into()),
        };
        if kind == EntityKind::Certificate {
            self.put_snis(id, spec.snis()).await?;
        }
        Ok(stored)
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
                // The API names the users first (`users_of`); this is the
                // database's guard for anything that slips past it.
                Err(Error::Conflict(format!(
                    "{} {id} is still referenced by other entities",
                    kind.singular()
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What still refers to entity `id` of `kind` and blocks its deletion
    /// (`route users-api`, `plugin rate-limit <id>`), for a helpful 409.
    /// Credentials do not block: they go with their consumer.
    pub async fn users_of(&mut self, kind: EntityKind, id: Uuid) -> Result<Vec<String>, Error> {
        let sql = match kind {
            EntityKind::Upstream => {
                "SELECT 'route ' || name FROM routes WHERE upstream_id = $1 ORDER BY name LIMIT 20"
            }
            EntityKind::Route => {
                "SELECT 'plugin ' || name || ' ' || id FROM plugins WHERE route_id = $1
                 ORDER BY name, id LIMIT 20"
            }
            EntityKind::Consumer => {
                "SELECT 'plugin ' || name || ' ' || id FROM plugins WHERE consumer_id = $1
                 ORDER BY name, id LIMIT 20"
            }
            EntityKind::Certificate => {
                "SELECT 'upstream ' || name FROM upstreams WHERE client_certificate_id = $1
                 ORDER BY name LIMIT 20"
            }
            EntityKind::Plugin => return Ok(Vec::new()),
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql).bind(id).fetch_all(self.conn()).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

/// The 409 for a unique violation: each kind has one unique key (SNIs are
/// checked on their own, see `put_snis`).
fn unique_conflict(kind: EntityKind, name: &str, refs: &Refs) -> Error {
    Error::Conflict(match kind {
        EntityKind::Plugin => {
            let scope = match (refs.route, refs.consumer) {
                (None, None) => "globally".to_owned(),
                (Some(r), None) => format!("on route {r}"),
                (None, Some(c)) => format!("for consumer {c}"),
                (Some(r), Some(c)) => format!("on route {r} for consumer {c}"),
            };
            format!("a '{name}' plugin already exists {scope}; at most one per scope")
        }
        EntityKind::Consumer => format!("a consumer with username '{name}' already exists"),
        EntityKind::Upstream => format!("an upstream named '{name}' already exists"),
        _ => format!("a {} named '{name}' already exists", kind.singular()),
    })
}
