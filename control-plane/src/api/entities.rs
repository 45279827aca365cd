//! CRUD for entities, generic over the kind: every entity gets the same
//! create / list / get / replace / patch / delete behaviour.

use std::future::Future;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use turnpike_model::{RouteSpec, UpstreamSpec};
use uuid::Uuid;

use super::Actor;
use super::input::{JsonObject, ListParams, RawListParams, parse_spec};
use crate::store::{EntityKind, EntitySpec, Stored, WriteTx};
use crate::{AppState, Error};

pub const VERSION_HEADER: &str = "x-turnpike-config-version";

/// What the admin API adds to a stored spec: canonical form, validation and
/// the resolution of references.
pub trait ApiEntity: EntitySpec + Clone {
    /// Normalizes and validates; no I/O.
    fn check(&mut self) -> Result<(), Error>;
    /// Resolves references inside the write transaction; returns the value
    /// of the reference column (a route's upstream id).
    fn resolve(
        &mut self,
        tx: &mut WriteTx,
    ) -> impl Future<Output = Result<Option<Uuid>, Error>> + Send;
}

impl ApiEntity for UpstreamSpec {
    fn check(&mut self) -> Result<(), Error> {
        Ok(self.validate()?)
    }

    async fn resolve(&mut self, _tx: &mut WriteTx) -> Result<Option<Uuid>, Error> {
        Ok(None)
    }
}

impl ApiEntity for RouteSpec {
    fn check(&mut self) -> Result<(), Error> {
        self.normalize();
        Ok(self.validate()?)
    }

    async fn resolve(&mut self, tx: &mut WriteTx) -> Result<Option<Uuid>, Error> {
        let id = tx.resolve_upstream(&self.upstream).await?.ok_or_else(|| {
            Error::field(
                "upstream",
                format!("no upstream with id or name '{}'", self.upstream),
            )
        })?;
        // Stored by id, so renaming the upstream never breaks the route.
        self.upstream = id.to_string();
        Ok(Some(id))
    }
}

/// Fields the server owns: accepted in a body (so a GET result can be sent
/// back as is) but never taken from it.
const READ_ONLY: [&str; 2] = ["created_at", "updated_at"];

/// Takes `id` out of a body; it must be a UUID, and match `expected` if set.
fn take_id(
    body: &mut serde_json::Map<String, Value>,
    expected: Option<Uuid>,
) -> Result<Option<Uuid>, Error> {
    for f in READ_ONLY {
        body.remove(f);
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

fn written<S: serde::Serialize>(status: StatusCode, stored: &Stored<S>, version: u64) -> Response {
    let mut resp = (status, Json(stored)).into_response();
    insert_version(resp.headers_mut(), version);
    resp
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
    let stored = tx.upsert(id, &spec, refs).await?;
    let summary = format!("{action} {} {}", S::KIND.singular(), spec.name());
    let published = tx.commit(&actor.name, &summary).await?;
    let version = published.version;
    state.publisher.publish(published);
    tracing::info!(actor = %actor.name, version, "{summary}");
    Ok((stored, version))
}

pub async fn create<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, Error> {
    let id = take_id(&mut body, None)?.unwrap_or_else(Uuid::now_v7);
    let mut spec: S = parse_spec(Value::Object(body))?;
    spec.check()?;
    let mut tx = state.store.begin_write().await?;
    if tx.get_for_update::<S>(&id.to_string()).await.is_ok() {
        return Err(Error::Conflict(format!(
            "a {} with id {id} already exists",
            S::KIND.singular()
        )));
    }
    let (stored, version) = save(&state, &actor, tx, id, spec, "create").await?;
    let mut resp = written(StatusCode::CREATED, &stored, version);
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
    Ok(Json(page).into_response())
}

pub async fn get<S: ApiEntity>(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, Error> {
    Ok(Json(state.store.get::<S>(&key).await?).into_response())
}

/// PUT: replaces the whole spec of an existing entity.
pub async fn replace<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let existing = tx.get_for_update::<S>(&key).await?;
    take_id(&mut body, Some(existing.id))?;
    let mut spec: S = parse_spec(Value::Object(body))?;
    spec.check()?;
    let (stored, version) = save(&state, &actor, tx, existing.id, spec, "replace").await?;
    Ok(written(StatusCode::OK, &stored, version))
}

/// PATCH: a JSON merge patch (RFC 7396) over the current spec.
pub async fn patch<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let existing = tx.get_for_update::<S>(&key).await?;
    take_id(&mut body, Some(existing.id))?;
    let mut merged =
        serde_json::to_value(&existing.spec).map_err(|e| Error::Internal(e.to_string()))?;
    merge_patch(&mut merged, Value::Object(body));
    let mut spec: S = parse_spec(merged)?;
    spec.check()?;
    let (stored, version) = save(&state, &actor, tx, existing.id, spec, "update").await?;
    Ok(written(StatusCode::OK, &stored, version))
}

pub async fn delete<S: ApiEntity>(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(key): Path<String>,
) -> Result<Response, Error> {
    let mut tx = state.store.begin_write().await?;
    let existing = tx.get_for_update::<S>(&key).await?;
    if S::KIND == EntityKind::Upstream {
        let users = tx.routes_using(existing.id).await?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "upstream '{}' is still used by route(s): {}",
                existing.spec.name(),
                users.join(", ")
            )));
        }
    }
    tx.delete(S::KIND, existing.id).await?;
    let summary = format!("delete {} {}", S::KIND.singular(), existing.spec.name());
    let published = tx.commit(&actor.name, &summary).await?;
    let version = published.version;
    state.publisher.publish(published);
    tracing::info!(actor = %actor.name, version, "{summary}");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    insert_version(resp.headers_mut(), version);
    Ok(resp)
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
