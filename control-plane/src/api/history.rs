//! Whole-config endpoints: the version history, diffs between versions,
//! rollback, and export/import of the declarative document.
//!
//! Rollback and import replace the whole config in one write transaction
//! (one new version); when the result would equal the current content they
//! create no version at all, so re-applying the same file is a no-op.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use turnpike_model::declarative::{Document, Format};
use turnpike_model::{ConfigDiff, ModelError, Snapshot, ValidationErrors};

use super::Actor;
use super::entities::{commit, insert_version};
use super::import;
use super::input::{DEFAULT_LIMIT, JsonObject, MAX_LIMIT, parse_spec};
use crate::store::Change;
use crate::store::history::{StoredVersion, VersionEntry};
use crate::{AppState, Error};

/// Largest import body: a whole config is much larger than one entity.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

const YAML_TYPES: [&str; 4] = [
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

/// The routes of this module, nested under `/api/v1` by `api::router`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/config/versions", get(list_versions))
        .route("/config/versions/{version}", get(get_version))
        .route("/config/diff", get(diff))
        .route("/config/rollback", post(rollback))
        .route("/config/export", get(export))
        .route(
            "/config/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
}

type RawQuery = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query parameters, refusing any not in `allowed`: a misspelt
/// parameter silently ignored would answer a different question.
fn query(raw: RawQuery, allowed: &[&str]) -> Result<HashMap<String, String>, Error> {
    let q = raw
        .map(|Query(q)| q)
        .map_err(|e| Error::BadRequest(e.body_text()))?;
    let mut errors = ValidationErrors::default();
    let mut unknown: Vec<&String> = q
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    unknown.sort();
    for key in unknown {
        errors.push(key.as_str(), "is not a known query parameter");
    }
    errors.into_result()?;
    Ok(q)
}

/// A version number from a query or path parameter.
fn version_param(field: &str, raw: Option<&str>, errors: &mut ValidationErrors) -> Option<u64> {
    match raw.map(str::parse::<u64>) {
        Some(Ok(v)) if v > 0 => Some(v),
        None => {
            errors.push(field, "is required: a config version number");
            None
        }
        Some(_) => {
            errors.push(
                field,
                "must be a config version number (a positive integer)",
            );
            None
        }
    }
}

/// `GET /config/versions?limit=&before=`: newest first.
async fn list_versions(State(state): State<AppState>, raw: RawQuery) -> Result<Response, Error> {
    let q = query(raw, &["limit", "before"])?;
    let mut errors = ValidationErrors::default();
    let limit = match q.get("limit").map(|s| s.parse::<u32>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push("limit", format!("must be an integer from 1 to {MAX_LIMIT}"));
            DEFAULT_LIMIT
        }
    };
    let before = match q.get("before").map(String::as_str) {
        None => None,
        raw => version_param("before", raw, &mut errors),
    };
    errors.into_result()?;
    Ok(Json(state.store.list_versions(limit, before).await?).into_response())
}

#[derive(Serialize)]
struct VersionDetail {
    #[serde(flatten)]
    entry: VersionEntry,
    config: Document,
}

/// `GET /config/versions/{v}`: the version and its content as a
/// declarative document.
async fn get_version(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, Error> {
    let mut errors = ValidationErrors::default();
    let v = version_param("version", Some(&raw), &mut errors);
    errors.into_result()?;
    let stored = state.store.get_version(v.unwrap_or_default()).await?;
    Ok(Json(VersionDetail {
        config: Document::from_snapshot(&stored.snapshot),
        entry: stored.entry,
    })
    .into_response())
}

/// `GET /config/diff?from=&to=`.
async fn diff(State(state): State<AppState>, raw: RawQuery) -> Result<Response, Error> {
    let q = query(raw, &["from", "to"])?;
    let mut errors = ValidationErrors::default();
    let from = version_param("from", q.get("from").map(String::as_str), &mut errors);
    let to = version_param("to", q.get("to").map(String::as_str), &mut errors);
    errors.into_result()?;
    let (from, to) = (from.unwrap_or_default(), to.unwrap_or_default());
    let a = state.store.get_version(from).await?;
    let b = state.store.get_version(to).await?;
    Ok(Json(a.snapshot.redacted().diff(&b.snapshot.redacted())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: u64,
}

#[derive(Serialize)]
struct Applied {
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
    version: u64,
    diff: ConfigDiff,
}

fn applied(dry_run: Option<bool>, version: u64, diff: ConfigDiff) -> Response {
    let mut resp = Json(Applied {
        dry_run,
        version,
        diff,
    })
    .into_response();
    // A dry run produced no version; the others name the one now current.
    if dry_run != Some(true) {
        insert_version(resp.headers_mut(), version);
    }
    resp
}

/// Replaces the config with `target` in one new version, unless it equals
/// the current content (then nothing is written). `dry_run` only computes.
/// `target` gets the current snapshot and the key-auth pepper. The diff
/// answered is redacted: it never shows a secret stored in clear.
async fn replace(
    state: &AppState,
    target: impl FnOnce(&Snapshot, &str) -> Result<Snapshot, Error>,
    dry_run: bool,
    change: Change<'_>,
) -> Result<(u64, ConfigDiff), Error> {
    // The current content is read under the write lock, so the diff we
    // answer is exactly what this write changes.
    let mut tx = state.store.begin_write().await?;
    let StoredVersion { entry, snapshot } = tx.current_snapshot().await?;
    let pepper = tx.key_auth_pepper().await?;
    let target = target(&snapshot, &pepper)?;
    let shown = snapshot.redacted().diff(&target.redacted());
    if dry_run || snapshot.diff(&target).is_empty() {
        return Ok((entry.version, shown));
    }
    tx.replace_all(&target).await?;
    let version = commit(state, tx, &change).await?;
    Ok((version, shown))
}

/// `POST /config/rollback {"version": V}`: a new version with V's content.
async fn rollback(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    JsonObject(body): JsonObject,
) -> Result<Response, Error> {
    let body: RollbackBody = parse_spec(serde_json::Value::Object(body))?;
    let old = state.store.get_version(body.version).await?;
    let label = format!("to version {}", body.version);
    let change = Change {
        actor: &actor.name,
        action: "rollback",
        entity: "config",
        entity_id: None,
        entity_name: Some(&label),
    };
    // Ids are part of V's content, so the target is V as stored.
    let (version, diff) = replace(&state, |_, _| Ok(old.snapshot.clone()), false, change).await?;
    Ok(applied(None, version, diff))
}

/// `GET /config/export`: JSON unless YAML is asked for, by `?format=yaml`
/// or `Accept: application/yaml`.
async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: RawQuery,
) -> Result<Response, Error> {
    let q = query(raw, &["format"])?;
    let format = match q.get("format").map(String::as_str) {
        Some("yaml") => Format::Yaml,
        Some("json") => Format::Json,
        Some(_) => return Err(Error::field("format", "must be yaml or json")),
        None => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if YAML_TYPES.iter().any(|t| accept.contains(t)) {
                Format::Yaml
            } else {
                Format::Json
            }
        }
    };
    let newest = state.store.newest_version().await?;
    let text = Document::from_snapshot(&newest.snapshot).render(format);
    let content_type = match format {
        Format::Yaml => "application/yaml",
        Format::Json => "application/json",
    };
    let mut resp = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        text,
    )
        .into_response();
    insert_version(resp.headers_mut(), newest.entry.version);
    Ok(resp)
}

/// `POST /config/import?dry_run=`: replaces the whole config with the
/// document in the body (JSON or YAML, by Content-Type).
async fn import(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    raw: RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let q = query(raw, &["dry_run"])?;
    let dry_run = match q.get("dry_run").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Error::field("dry_run", "must be true or false")),
    };
    let format = body_format(&headers)?;
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => Error::PayloadTooLarge {
            limit: MAX_IMPORT_BYTES,
        },
        other => Error::BadRequest(other.body_text()),
    })?;
    let doc = Document::parse(&body, format).map_err(|e| match e {
        ModelError::Invalid(errors) => Error::Validation(errors),
        ModelError::Syntax { .. } => Error::BadRequest(e.to_string()),
        other => Error::Internal(other.to_string()),
    })?;
    let change = Change {
        actor: &actor.name,
        action: "import",
        entity: "config",
        entity_id: None,
        entity_name: None,
    };
    let target = |cur: &Snapshot, pepper: &str| import::target(doc, cur, pepper);
    let (version, diff) = replace(&state, target, dry_run, change).await?;
    Ok(applied(Some(dry_run), version, diff))
}

/// JSON (`application/json`, `*+json`) or YAML, from the Content-Type.
fn body_format(headers: &HeaderMap) -> Result<Format, Error> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media == "application/json" || media.ends_with("+json") {
        Ok(Format::Json)
    } else if YAML_TYPES.contains(&media.as_str()) {
        Ok(Format::Yaml)
    } else {
        Err(Error::UnsupportedContentType {
            expected: "application/json or application/yaml",
        })
    }
}
