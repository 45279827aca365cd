//! CRUD for entities, generic over the kind: every entity gets the same
//! create / list / get / replace / patch / delete behaviour.

use std::future::Future;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use turnpike_model::{RouteSpec, UpstreamSpec};
use uuid::Uuid;

use super::Actor;
use super::input::{JsonObject, ListParams, RawListParams, parse_spec};
use crate::store::{Change, EntityKind, EntitySpec, Refs, Stored, WriteTx};
use crate::{AppState, Error};

pub const VERSION_HEADER: &str = "x-turnpike-config-version";

/// What the admin API adds to a stored spec: canonical form, validation,
/// the resolution of references, and how the object is shown.
pub trait ApiEntity: EntitySpec + Clone + utoipa::PartialSchema {
    /// Fields the API shows but derives itself: accepted back in a body and
    /// ignored, like `created_at`.
    const DERIVED: &'static [&'static str] = &[];
    /// Normalizes and validates; no I/O. `existing` is the stored spec on
    /// PUT and PATCH (a write-only secret may be kept from it).
    fn check(&mut self, existing: Option<&Self>) -> Result<(), Error>;
    /// Resolves references inside the write transaction; returns the
    /// values of the reference columns (a route's upstream id).
    fn resolve(&mut self, tx: &mut WriteTx) -> impl Future<Output = Result<Refs, Error>> + Send;
    /// The object as the API shows it, and as its ETag covers it.
    fn view(stored: &Stored<Self>) -> Value {
        serde_json::to_value(stored).unwrap_or_default()
    }
}

impl ApiEntity for UpstreamSpec {
    fn check(&mut self, _existing: Option<&Self>) -> Result<(), Error> {
        self.validate()?;
        if let Some(ca) = self.tls.as_ref().and_then(|t| t.ca.as_deref()) {
            crate::pki::check_ca(ca).map_err(|msg| Error::field("tls.ca", msg))?;
        }
        Ok(())
    }

    /// The client certificate must exist; its reference column makes
    /// deleting it a 409 while this upstream presents it.
    async fn resolve(&mut self, tx: &mut WriteTx) -> Result<Refs, Error> {
        let Some(id) = self.tls.as_ref().and_then(|t| t.client_certificate) else {
            return Ok(Refs::default());
        };
        tx.resolve(EntityKind::Certificate, &id.to_string())
            .await?
            .ok_or_else(|| {
                Error::field(
                    "tls.client_certificate",
                    format!("no certificate with id '{id}'"),
                )
            })?;
        Ok(Refs {
            certificate: Some(id),
            ..Refs::default()
        })
    }
}

impl ApiEntity for RouteSpec {
    fn check(&mut self, _existing: Option<&Self>) -> Result<(), Error> {
        self.normalize();
        let mut errors = self.validate().err().unwrap_or_default();
        if self.name == "match" {
            // `/routes/match` is the route matcher, so it could not be read
            // or changed by that name.
            errors.push("name", "'match' is reserved (GET /api/v1/routes/match)");
        }
        Ok(errors.into_result()?)
    }

    async fn resolve(&mut self, tx: &mut WriteTx) -> Result<Refs, Error> {
        let id = tx.resolve_upstream(&self.upstream).await?.ok_or_else(|| {
            Error::field(
                "upstream",
                format!("no upstream with id or name '{}'", self.upstream),
            )
        })?;
        // Stored by id, so renaming the upstream never breaks the route.
        self.upstream = id.to_string();
        Ok(Refs {
            upstream: Some(id),
            ..Refs::default()
        })
    }
}

/// Fields the server owns: accepted in a body (so a GET result can be sent
/// back as is) but never taken from it.
const READ_ONLY: [&str; 2] = ["created_at", "updated_at"];

/// Takes `id` out of a body; it must be a UUID, and match `expected` if set.
pub(super) fn take_id(
    body: &mut serde_json::Map<String, Value>,
    expected: Option<Uuid>,
    derived: &[&str],
) -> Result<Option<Uuid>, Error> {
    for f in READ_ONLY.iter().chain(derived) {
        body.remove(*f);
    }
    let Some(raw) = body.remove("id") else {
        return Ok(None);
    };
    let id = raw
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Error::field("id", "must be a UUID"))?;
    match expected {
        Some(e) if e != id => Err(Error::field(
            "id",
            "does not match the object being changed",
        )),
        _ => Ok(Some(id)),
    }
}

pub(super) fn written(status: StatusCode, view: &Value, version: u64) -> Response {
    let mut resp = with_etag(status, view);
    insert_version(resp.headers_mut(), version);
    resp
}

/// A strong validator for the object as the API shows it: any change to
/// it (spec or timestamps) changes the tag.
fn etag(view: &Value) -> String {
    let json = serde_json::to_vec(view).unwrap_or_default();
    format!("\"{}\"", hex::encode(&Sha256::digest(&json)[..12]))
}

pub(super) fn with_etag(status: StatusCode, view: &Value) -> Response {
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(view)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Honours `If-Match` (RFC 9110 §13.1.1): `*` or one of the listed tags
/// must match the current object, else 412 and nothing changes.
pub(super) fn check_if_match(headers: &HeaderMap, current: &Value) -> Result<(), Error> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value
        .to_str()
        .map_err(|_| Error::BadRequest("If-Match is not valid ASCII".into()))?;
    let tag = etag(current);
    let matches = value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == tag);
    if matches {
        Ok(())
    } else {
        Err(Error::PreconditionFailed)
    }
}

pub fn insert_version(headers: &mut HeaderMap, version: u64) {
    headers.insert(VERSION_HEADER, HeaderValue::from(version));
}

/// Checks, resolves, stores and commits one entity; publishes the version.
async fn save<S: ApiEntity>(
    state: &AppState,
    actor: &Actor,
    mut tx: WriteTx,
    id: Uuid,
    mut spec: S,
    action: &str,
) -> Result<(Stored<S>, u64), Error> {
    let refs = spec.resolve(&mut tx).await?;
    let stored = tx.upsert(id, &spec, &refs).await?;
    let change = Change {
        actor: &actor.name,
        action,
        entity: S::KIND.singular(),
        entity_id: Some(id.to_string()),
        entity_name: Some(spec.name()),
    };
    let version = commit(state, tx, &change).await?;
    Ok((stored, version))
}

/// Commits a write, publishes the version it produced and logs it.
pub async fn commit(state: &AppState, tx: WriteTx, change: &Change<'_>) -> Result<u64, Error> {
    let published = tx.commit(change).await?;
    let version = published.version;
    state.publisher.publish(published);
    tracing::info!(actor = %change.actor, version, "{}", change.summary());
    Ok(version)
}

pub async fn create<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, Error> {
    let id = take_id(&mut body, None, S::DERIVED)?.unwrap_or_else(Uuid::now_v7);
    let mut spec: S = parse_spec(Value::Object(body))?;
    spec.check(None)?;
    let mut tx = state.store.begin_write().await?;
    if tx.get_for_update::<S>(&id.to_string()).await.is_ok() {
        return Err(Error::Conflict(format!(
            "a {} with id {id} already exists",
            S::KIND.singular()
        )));
    }
    let (stored, version) = save(&state, &actor, tx, id, spec, "create").await?;
    let mut resp = written(StatusCode::CREATED, &S::view(&stored), version);
    let location = format!("/api/v1/{}s/{}", S::KIND.singular(), stored.id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn list<S: ApiEntity>(
    State(state): State<AppState>,
    query: Result<Query<RawListParams>, QueryRejection>,
) -> Result<Response, Error> {
    let p = ListParams::parse(query)?;
    let page = state.store.list::<S>(p.limit, p.after, &p.tags).await?;
    let items: Vec<Value> = page.items.iter().map(S::view).collect();
    Ok(Json(serde_json::json!({"items": items, "next": page.next})).into_response())
}

pub async fn get<S: ApiEntity>(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, Error> {
    Ok(with_etag(
        StatusCode::OK,
        &S::view(&state.store.get::<S>(&key).await?),
    ))
}

/// PUT: replaces the whole spec of an existing entity.
pub async fn replace<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let existing = tx.get_for_update::<S>(&key).await?;
    take_id(&mut body, Some(existing.id), S::DERIVED)?;
    let mut spec: S = parse_spec(Value::Object(body))?;
    spec.check(Some(&existing.spec))?;
    // After validation: a malformed body is a 400 whatever the ETag says.
    check_if_match(&headers, &S::view(&existing))?;
    let (stored, version) = save(&state, &actor, tx, existing.id, spec, "replace").await?;
    Ok(written(StatusCode::OK, &S::view(&stored), version))
}

/// PATCH: a JSON merge patch (RFC 7396) over the current spec.
pub async fn patch<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let existing = tx.get_for_update::<S>(&key).await?;
    take_id(&mut body, Some(existing.id), S::DERIVED)?;
    refuse_unknown_removals::<S>(&body)?;
    let mut merged =
        serde_json::to_value(&existing.spec).map_err(|e| Error::Internal(e.to_string()))?;
    merge_patch(&mut merged, Value::Object(body));
    let mut spec: S = parse_spec(merged)?;
    spec.check(Some(&existing.spec))?;
    check_if_match(&headers, &S::view(&existing))?;
    let (stored, version) = save(&state, &actor, tx, existing.id, spec, "update").await?;
    Ok(written(StatusCode::OK, &S::view(&stored), version))
}

pub async fn delete<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let existing = tx.get_for_update::<S>(&key).await?;
    check_if_match(&headers, &S::view(&existing))?;
    let users = tx.users_of(S::KIND, existing.id).await?;
    if !users.is_empty() {
        return Err(Error::Conflict(format!(
            "{} '{}' is still used by {}",
            S::KIND.singular(),
            existing.spec.name(),
            users.join(", ")
        )));
    }
    tx.delete(S::KIND, existing.id).await?;
    let change = Change {
        actor: &actor.name,
        action: "delete",
        entity: S::KIND.singular(),
        entity_id: Some(existing.id.to_string()),
        entity_name: Some(existing.spec.name()),
    };
    let version = commit(&state, tx, &change).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    insert_version(resp.headers_mut(), version);
    Ok(resp)
}

/// A `null` for a field the entity does not have would vanish in the merge
/// and pass unnoticed; like any unknown field, it is refused.
fn refuse_unknown_removals<S: ApiEntity>(
    body: &serde_json::Map<String, Value>,
) -> Result<(), Error> {
    let schema = serde_json::to_value(S::schema()).unwrap_or_default();
    let known = schema["properties"].as_object();
    for (k, v) in body {
        if v.is_null() && !known.is_some_and(|p| p.contains_key(k)) {
            return Err(Error::field(k.as_str(), "unknown field"));
        }
    }
    Ok(())
}

/// RFC 7396: objects merge key by key, `null` removes, anything else
/// replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge_patch(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_patch;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        merge_patch(&mut doc, json!({"a": [1]}));
        assert_eq!(doc["a"], json!([1]));
    }
}
