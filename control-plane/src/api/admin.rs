//! Admin tokens (`/api/v1/tokens`) and the audit log (`/api/v1/audit-log`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Actor;
use super::input::{DEFAULT_LIMIT, JsonObject, MAX_LIMIT, parse_spec};
use crate::store::{AuditEntry, TokenInfo};
use crate::{AppState, Error, secret};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: Role,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Admin,
    ReadOnly,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// The create answer is the only place the token itself ever appears.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    info: TokenInfo,
    token: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    JsonObject(body): JsonObject,
) -> Result<Response, Error> {
    let new: NewToken = parse_spec(Value::Object(body))?;
    let mut errors = turnpike_model::ValidationErrors::default();
    turnpike_model::check_name("name", &new.name, &mut errors);
    errors.into_result()?;
    let token = secret::generate(if matches!(new.role, Role::Admin) {
        "tpa_"
    } else {
        "tpr_"
    });
    let info = state
        .store
        .create_token(
            &new.name,
            &secret::digest(&token),
            new.role.as_str(),
            &actor.name,
        )
        .await?;
    tracing::info!(actor = %actor.name, token = %info.name, role = %info.role, "admin token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { info, token })).into_response())
}

#[derive(Serialize)]
pub struct Items<T> {
    items: Vec<T>,
    next: Option<String>,
}

pub async fn list_tokens(State(state): State<AppState>) -> Result<Response, Error> {
    let items = state.store.list_tokens().await?;
    Ok(Json(Items { items, next: None }).into_response())
}

pub async fn get_token(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<TokenInfo>, Error> {
    Ok(Json(state.store.get_token(&key).await?))
}

pub async fn delete_token(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
) -> Result<StatusCode, Error> {
    state.store.delete_token(&key, &actor.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    limit: Option<String>,
    after: Option<String>,
    entity: Option<String>,
}

/// Newest first; `next` is the cursor for older entries.
pub async fn audit_log(
    State(state): State<AppState>,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Items<AuditEntry>>, Error> {
    let Query(p) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let limit = match p.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Error::field("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))
            })?,
    };
    let after = match p.after.as_deref() {
        None | Some("") => None,
        Some(s) if !s.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(Error::field("after", "not a cursor from a previous page"));
        }
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| Error::field("after", "not a cursor from a previous page"))?,
        ),
    };
    let mut items = state
        .store
        .audit_log(
            limit + 1,
            after,
            p.entity.as_deref().filter(|e| !e.is_empty()),
        )
        .await?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(Items { items, next }))
}
