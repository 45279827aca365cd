//! Request input: JSON bodies parsed with field paths, list parameters. Every
//! malformed input becomes a 4xx problem, never a 5xx.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, Query, Request};
use axum::http::header;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::Error;

/// Largest admin API body (a large import will want more; per route then).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A JSON object body.
pub struct JsonObject(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || v.to_ascii_lowercase().ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => Error::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            },
            other => Error::BadRequest(other.body_text()),
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(Error::BadRequest("the body must be a JSON object".into())),
            Err(e) => Err(Error::BadRequest(format!("malformed JSON: {e}"))),
        }
    }
}

/// Deserializes a spec, naming the failing field.
pub fn parse_spec<T: DeserializeOwned>(mut value: Value) -> Result<T, Error> {
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        Error::field(field, e.into_inner().to_string())
    })
}

/// JSON does not tell `5` from `5.0`, and JSON Schema calls both integers;
/// serde would refuse `5.0` for an integer field, so integral floats become
/// integers before deserializing.
fn integral_floats_to_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListParams {
    limit: Option<String>,
    after: Option<String>,
    tags: Option<String>,
}

pub struct ListParams {
    pub limit: u32,
    pub after: Option<Uuid>,
    pub tags: Vec<String>,
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

impl ListParams {
    pub fn parse(raw: Result<Query<RawListParams>, QueryRejection>) -> Result<ListParams, Error> {
        let Query(raw) = raw.map_err(|e| Error::BadRequest(e.body_text()))?;
        let limit = match raw.limit {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Error::field(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let after = match raw.after.as_deref() {
            None | Some("") => None,
            // Cursors are the hyphenated ids this API hands out, nothing else.
            Some(s) => Some(
                Some(s)
                    .filter(|s| s.len() == 36)
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| Error::field("after", "not a cursor from a previous page"))?,
            ),
        };
        let tags: Vec<String> = raw
            .tags
            .map(|t| {
                t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if tags.iter().any(|t| t.contains('\0')) {
            return Err(Error::field("tags", "must not contain NUL characters"));
        }
        Ok(ListParams { limit, after, tags })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integral_floats_are_integers() {
        let mut v = json!({"a": 5.0, "b": [1.0, 2.5], "c": {"d": -3.0}, "e": 1e300});
        integral_floats_to_integers(&mut v);
        assert_eq!(
            v,
            json!({"a": 5, "b": [1, 2.5], "c": {"d": -3}, "e": 1e300})
        );
    }
}
