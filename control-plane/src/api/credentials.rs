//! A consumer's credentials, under `/api/v1/consumers/{consumer}/credentials`:
//! create, list, get, delete. There is no PUT or PATCH: rotating a secret
//! is creating the new credential, then deleting the old one.
//!
//! Secrets are sealed before they are stored (`seal`), never logged, and
//! never shown again: a read shows `key_prefix` (key-auth) or
//! `has_secret` instead. The create response of a key-auth credential is
//! the only place its key ever appears.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use turnpike_model::{ConsumerSpec, CredentialKind, CredentialSpec, ValidationErrors};
use uuid::Uuid;

use super::Actor;
use super::entities::{check_if_match, commit, insert_version, with_etag, written};
use super::input::{JsonObject, ListParams, RawListParams};
use crate::store::{Change, Stored};
use crate::{AppState, Error, pki, seal};

/// The routes of this module, nested under `/api/v1` by `api::router`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/consumers/{consumer}/credentials", get(list).post(create))
        .route(
            "/consumers/{consumer}/credentials/{id}",
            get(get_one).delete(delete),
        )
}

/// Fields a read shows that a body may carry back; ignored.
const SHOWN: [&str; 4] = ["created_at", "updated_at", "consumer", "has_secret"];

/// A credential as the API shows it: no secret, sealed or not.
pub fn view(stored: &Stored<CredentialSpec>) -> Value {
    let mut v = json!({
        "id": stored.id,
        "consumer": stored.spec.consumer,
        "type": stored.spec.kind.type_name(),
    });
    match &stored.spec.kind {
        CredentialKind::KeyAuth(k) => v["key_prefix"] = json!(k.key_prefix),
        CredentialKind::BasicAuth(b) => {
            v["username"] = json!(b.username);
            v["has_secret"] = json!(true);
        }
        CredentialKind::Jwt(j) => {
            v["key"] = json!(j.key);
            v["algorithm"] = json!(j.algorithm.as_str());
            if j.algorithm.is_hmac() {
                v["has_secret"] = json!(true);
            } else {
                v["public_key"] = json!(j.public_key);
            }
        }
    }
    v["created_at"] = json!(stored.created_at);
    v["updated_at"] = json!(stored.updated_at);
    v
}

/// Parses and checks a new credential (no I/O): the rules of its type, and
/// a JWT public key that parses and fits the algorithm.
fn parse(mut body: serde_json::Map<String, Value>) -> Result<CredentialKind, Error> {
    for f in SHOWN {
        body.remove(f);
    }
    if body.contains_key("id") {
        return Err(Error::field("id", "is assigned by the server"));
    }
    let kind = CredentialKind::from_value(Value::Object(body))?;
    kind.validate()?;
    let mut errors = ValidationErrors::default();
    if let CredentialKind::Jwt(j) = &kind {
        if j.secret_sha256.is_some() {
            // Only an import can point at a secret the config already has.
            errors.push("secret_sha256", "give the secret itself");
        }
        if let Some(pem) = &j.public_key
            && let Err(msg) = pki::check_jwt_public_key(pem, j.algorithm)
        {
            errors.push("public_key", msg);
        }
    }
    errors.into_result()?;
    Ok(kind)
}

async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(consumer): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, Error> {
    let mut kind = parse(body)?;
    // Argon2 is slow on purpose: hash before taking the write lock, off the
    // async threads.
    if matches!(kind, CredentialKind::BasicAuth(_)) {
        kind = tokio::task::spawn_blocking(move || seal::seal(&mut kind, "", None).map(|_| kind))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
    }
    let mut tx = state.store.begin_write().await?;
    let owner = tx.get_for_update::<ConsumerSpec>(&consumer).await?;
    let key = if matches!(kind, CredentialKind::KeyAuth(_)) {
        let pepper = tx.key_auth_pepper().await?;
        seal::seal(&mut kind, &pepper, None)?
    } else {
        None
    };
    let id = Uuid::now_v7();
    let spec = CredentialSpec {
        consumer: owner.id.to_string(),
        kind,
    };
    let stored = tx.put_credential(id, &spec).await?;
    let label = format!("{} of {}", spec.kind.label(), owner.spec.username);
    let change = Change {
        actor: &actor.name,
        action: "create",
        entity: "credential",
        entity_id: Some(id.to_string()),
        entity_name: Some(&label),
    };
    let version = commit(&state, tx, &change).await?;
    let mut shown = view(&stored);
    let mut resp = written(StatusCode::CREATED, &shown, version);
    if let Some(key) = key {
        // Shown once, here; not covered by the ETag (reads never show it).
        shown["key"] = json!(key);
        let headers = resp.headers().clone();
        resp = (StatusCode::CREATED, Json(shown)).into_response();
        resp.headers_mut().extend(headers);
    }
    let location = format!("/api/v1/consumers/{}/credentials/{id}", owner.id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn list(
    State(state): State<AppState>,
    Path(consumer): Path<String>,
    query: Result<Query<RawListParams>, QueryRejection>,
) -> Result<Response, Error> {
    let p = ListParams::parse(query)?;
    if !p.tags.is_empty() {
        return Err(Error::field("tags", "credentials have no tags"));
    }
    let owner = state.store.get::<ConsumerSpec>(&consumer).await?;
    let page = state
        .store
        .list_credentials(owner.id, p.limit, p.after)
        .await?;
    let items: Vec<Value> = page.items.iter().map(view).collect();
    Ok(Json(json!({"items": items, "next": page.next})).into_response())
}

async fn get_one(
    State(state): State<AppState>,
    Path((consumer, id)): Path<(String, String)>,
) -> Result<Response, Error> {
    let owner = state.store.get::<ConsumerSpec>(&consumer).await?;
    let stored = state.store.get_credential(owner.id, &id).await?;
    Ok(with_etag(StatusCode::OK, &view(&stored)))
}

async fn delete(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((consumer, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let owner = tx.get_for_update::<ConsumerSpec>(&consumer).await?;
    let existing = tx.credential_for_update(owner.id, &id).await?;
    check_if_match(&headers, &view(&existing))?;
    tx.delete_credential(existing.id).await?;
    let label = format!("{} of {}", existing.spec.kind.label(), owner.spec.username);
    let change = Change {
        actor: &actor.name,
        action: "delete",
        entity: "credential",
        entity_id: Some(existing.id.to_string()),
        entity_name: Some(&label),
    };
    let version = commit(&state, tx, &change).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    insert_version(resp.headers_mut(), version);
    Ok(resp)
}
