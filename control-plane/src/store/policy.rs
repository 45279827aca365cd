//! Rows the generic entity code does not cover: credentials (nested under
//! their consumer, secrets sealed, the key-auth pepper) and the SNIs of
//! certificates (one row each, so an SNI belongs to one certificate).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use turnpike_model::{CredentialKind, CredentialSpec};
use uuid::Uuid;

use super::{ListPage, Store, Stored, WriteTx};
use crate::error::{UNIQUE_VIOLATION, pg_code};
use crate::{Error, seal};

/// Reads the pepper, creating it if there is none; the first writer wins.
async fn pepper(conn: &mut sqlx::PgConnection) -> Result<String, Error> {
    sqlx::query(
        "INSERT INTO cluster_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(seal::PEPPER_SETTING)
    .bind(seal::new_pepper())
    .execute(&mut *conn)
    .await?;
    let (pepper,): (String,) = sqlx::query_as("SELECT value FROM cluster_settings WHERE key = $1")
        .bind(seal::PEPPER_SETTING)
        .fetch_one(&mut *conn)
        .await?;
    Ok(pepper)
}

impl Store {
    /// The pepper, for the data planes (which digest presented keys with
    /// it); created at start so every snapshot sent carries it.
    pub async fn key_auth_pepper(&self) -> Result<String, Error> {
        let mut conn = self.pool().acquire().await?;
        pepper(&mut conn).await
    }
}

type Row = (Uuid, Json<CredentialSpec>, DateTime<Utc>, DateTime<Utc>);

fn stored((id, spec, created_at, updated_at): Row) -> Stored<CredentialSpec> {
    Stored {
        id,
        spec: spec.0,
        created_at,
        updated_at,
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        kind: "credential",
        key: id.to_owned(),
    }
}

impl Store {
    /// One page of a consumer's credentials, in creation order.
    pub async fn list_credentials(
        &self,
        consumer: Uuid,
        limit: u32,
        after: Option<Uuid>,
    ) -> Result<ListPage<CredentialSpec>, Error> {
        let mut rows: Vec<Row> = sqlx::query_as(
            "SELECT id, spec, created_at, updated_at FROM credentials
             WHERE consumer_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(consumer)
        .bind(after)
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
            items: rows.into_iter().map(stored).collect(),
            next,
        })
    }

    /// A credential of this consumer; another consumer's is not found.
    pub async fn get_credential(
        &self,
        consumer: Uuid,
        key: &str,
    ) -> Result<Stored<CredentialSpec>, Error> {
        let id = Uuid::parse_str(key).map_err(|_| not_found(key))?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, spec, created_at, updated_at FROM credentials WHERE id = $1 AND consumer_id = $2",
        )
        .bind(id)
        .bind(consumer)
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored).ok_or_else(|| not_found(key))
    }
}

impl WriteTx {
    /// The cluster's key-auth pepper, created on first use. Under the write
    /// lock, and `DO NOTHING` keeps the first one even if two clusters'
    /// control planes raced outside it.
    pub async fn key_auth_pepper(&mut self) -> Result<String, Error> {
        pepper(self.conn()).await
    }

    /// Inserts or replaces a sealed credential; 409 when its key (digest,
    /// basic-auth username, JWT key) is taken.
    pub async fn put_credential(
        &mut self,
        id: Uuid,
        spec: &CredentialSpec,
    ) -> Result<Stored<CredentialSpec>, Error> {
        let kind = &spec.kind;
        let lookup = kind
            .lookup()
            .ok_or_else(|| Error::Internal("storing an unsealed credential".into()))?;
        let consumer = Uuid::parse_str(&spec.consumer)
            .map_err(|_| Error::Internal(format!("credential {id}: consumer is not an id")))?;
        let row = sqlx::query_as::<_, Row>(
            "INSERT INTO credentials (id, consumer_id, type, lookup, spec, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, now(), now())
             ON CONFLICT (id) DO UPDATE SET consumer_id = EXCLUDED.consumer_id,
                 type = EXCLUDED.type, lookup = EXCLUDED.lookup, spec = EXCLUDED.spec,
                 updated_at = now()
             RETURNING id, spec, created_at, updated_at",
        )
        .bind(id)
        .bind(consumer)
        .bind(kind.type_name())
        .bind(lookup)
        .bind(Json(spec))
        .fetch_one(self.conn())
        .await;
        match row {
            Ok(row) => Ok(stored(row)),
            Err(e) if pg_code(&e).as_deref() == Some(UNIQUE_VIOLATION) => {
                Err(Error::Conflict(match kind {
                    // Never echo a key, even digested.
                    CredentialKind::KeyAuth(_) => "this key is already in use".to_owned(),
                    CredentialKind::BasicAuth(b) => format!(
                        "a basic-auth credential with username '{}' already exists",
                        b.username
                    ),
                    CredentialKind::Jwt(j) => {
                        format!("a jwt credential with key '{}' already exists", j.key)
                    }
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads and locks a credential of this consumer.
    pub async fn credential_for_update(
        &mut self,
        consumer: Uuid,
        key: &str,
    ) -> Result<Stored<CredentialSpec>, Error> {
        let id = Uuid::parse_str(key).map_err(|_| not_found(key))?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, spec, created_at, updated_at FROM credentials
             WHERE id = $1 AND consumer_id = $2 FOR UPDATE",
        )
        .bind(id)
        .bind(consumer)
        .fetch_optional(self.conn())
        .await?;
        row.map(stored).ok_or_else(|| not_found(key))
    }

    pub async fn delete_credential(&mut self, id: Uuid) -> Result<(), Error> {
        sqlx::query("DELETE FROM credentials WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Makes `snis` the SNIs of certificate `id`; 409 naming the first that
    /// another certificate holds. Config writes are serialized by the write
    /// lock, so checking first is race-free; the primary key stays the guard.
    pub(crate) async fn put_snis(&mut self, id: Uuid, snis: &[String]) -> Result<(), Error> {
        sqlx::query("DELETE FROM certificate_snis WHERE certificate_id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        let taken: Option<(String, Uuid)> = sqlx::query_as(
            "SELECT sni, certificate_id FROM certificate_snis WHERE sni = ANY($1) ORDER BY sni LIMIT 1",
        )
        .bind(snis)
        .fetch_optional(self.conn())
        .await?;
        if let Some((sni, other)) = taken {
            return Err(Error::Conflict(format!(
                "SNI '{sni}' is already served by certificate {other}"
            )));
        }
        sqlx::query(
            "INSERT INTO certificate_snis (sni, certificate_id) SELECT unnest($1::text[]), $2",
        )
        .bind(snis)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Frees the SNIs of these certificates for the rest of the
    /// transaction (whole-config replacement moves SNIs between them).
    pub(crate) async fn clear_snis(&mut self, ids: &[Uuid]) -> Result<(), Error> {
        sqlx::query("DELETE FROM certificate_snis WHERE certificate_id = ANY($1)")
            .bind(ids)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
