//! Admin tokens and the audit log: who may change the config, and who did.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Change, Store};
use crate::Error;
use crate::error::{UNIQUE_VIOLATION, pg_code};

/// An admin token as the API shows it: never the token, never its digest.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub entity_name: Option<String>,
    pub version: Option<i64>,
    pub summary: String,
}

impl Store {
    pub async fn create_token(
        &self,
        name: &str,
        digest: &str,
        role: &str,
        actor: &str,
    ) -> Result<TokenInfo, Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query_as::<_, TokenInfo>(
            "INSERT INTO admin_tokens (id, name, token_hash, role) VALUES ($1, $2, $3, $4)
             RETURNING id, name, role, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(digest)
        .bind(role)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match pg_code(&e).as_deref() {
            Some(UNIQUE_VIOLATION) => {
                Error::Conflict(format!("a token named '{name}' already exists"))
            }
            _ => e.into(),
        })?;
        insert_audit(&mut tx, &token_change(actor, "create", &row), None).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        Ok(
            sqlx::query_as("SELECT id, name, role, created_at FROM admin_tokens ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn get_token(&self, key: &str) -> Result<TokenInfo, Error> {
        let id = Uuid::parse_str(key).ok();
        sqlx::query_as(
            "SELECT id, name, role, created_at FROM admin_tokens WHERE id = $1 OR name = $2",
        )
        .bind(id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "token",
            key: key.to_owned(),
        })
    }

    /// Deletes a token; the last admin token cannot go, or nobody could
    /// administer the gateway any more.
    pub async fn delete_token(&self, key: &str, actor: &str) -> Result<(), Error> {
        let token = self.get_token(key).await?;
        let mut tx = self.pool.begin().await?;
        // Serializes concurrent deletes, so two of them cannot both see
        // "another admin is left".
        sqlx::query("LOCK TABLE admin_tokens IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let (admins,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM admin_tokens WHERE role = 'admin' AND id <> $1")
                .bind(token.id)
                .fetch_one(&mut *tx)
                .await?;
        if token.role == "admin" && admins == 0 {
            return Err(Error::Conflict(
                "the last admin token cannot be deleted".into(),
            ));
        }
        sqlx::query("DELETE FROM admin_tokens WHERE id = $1")
            .bind(token.id)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, &token_change(actor, "delete", &token), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Newest first; `before` is the id of the last entry of the previous
    /// page.
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
        entity: Option<&str>,
    ) -> Result<Vec<AuditEntry>, Error> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, entity, entity_id, entity_name, version, summary FROM audit_log
             WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR entity = $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(before)
        .bind(entity)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}

fn token_change<'a>(actor: &'a str, action: &'a str, token: &'a TokenInfo) -> Change<'a> {
    Change {
        actor,
        action,
        entity: "token",
        entity_id: Some(token.id.to_string()),
        entity_name: Some(&token.name),
    }
}

/// Records one change; `version` is the config version it produced, if any.
pub(super) async fn insert_audit(
    conn: &mut sqlx::PgConnection,
    change: &Change<'_>,
    version: Option<i64>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, entity, entity_id, entity_name, version, summary)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(change.actor)
    .bind(change.action)
    .bind(change.entity)
    .bind(change.entity_id.as_deref())
    .bind(change.entity_name)
    .bind(version)
    .bind(change.summary())
    .execute(conn)
    .await?;
    Ok(())
}
