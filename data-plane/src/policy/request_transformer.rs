//! `request-transformer` (rewrite phase, 800): edits the request before it
//! goes upstream, as Kong's: headers, query parameters and top-level fields
//! of a JSON body. Each kind runs `remove`, then `rename`, then `replace`
//! (only what is there), then `add` (only what is not); within one
//! operation, names in the config's (sorted) order.
//!
//! - Headers: by name, every value; a rename moves all values and replaces
//!   whatever the new name had. Headers the gateway manages
//!   (`turnpike_model::plugin::request_transformer::RESERVED_HEADERS`:
//!   hop-by-hop, `Content-Length`, `Host`, `X-Consumer-*`) are refused at
//!   compile (the control plane refuses them too).
//! - Query: parameters compared by their decoded name; untouched ones keep
//!   their exact text, new names and values are form-encoded (a space as
//!   `+`); a `?` with nothing left goes away.
//! - JSON: only a body whose `Content-Type` is JSON (`application/json`,
//!   `+json`) and that is a JSON object; fields keep their order, added ones
//!   go last. Any other body, invalid JSON included, goes on untouched. The
//!   body is read whole (policy/mod.rs, "Bodies") only when there are JSON
//!   operations and the request is JSON.
//!
//! [`HeaderOps`] and [`JsonOps`] serve `response-transformer` too.

use std::collections::BTreeMap;

use http::header::Entry;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use turnpike_model::plugin::request_transformer::{RESERVED_HEADERS, RequestTransformerConfig};

use super::body::{BodyError, BodyRewrite, Json, is_json};
use super::{Flow, Phase, Policy, Rejection, RequestCtx};

pub struct RequestTransformer {
    headers: HeaderOps,
    query: QueryOps,
    json: Option<JsonOps>,
}

impl RequestTransformer {
    pub fn new(c: RequestTransformerConfig) -> Result<RequestTransformer, String> {
        Ok(RequestTransformer {
            headers: HeaderOps::new(
                &c.remove.headers,
                &c.rename.headers,
                &c.replace.headers,
                &c.add.headers,
            )?,
            query: QueryOps {
                remove: c.remove.querystring,
                rename: c.rename.querystring.into_iter().collect(),
                replace: c.replace.querystring.into_iter().collect(),
                add: c.add.querystring.into_iter().collect(),
            },
            json: JsonOps::new(&c.remove.json, &c.rename.json, &c.replace.json, &c.add.json),
        })
    }
}

impl Policy for RequestTransformer {
    fn name(&self) -> &'static str {
        "request-transformer"
    }

    fn phase(&self) -> Phase {
        Phase::Rewrite
    }

    fn priority(&self) -> u16 {
        800
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        self.headers.apply(&mut ctx.parts.headers);
        if self.query.is_empty() {
            return Flow::Continue;
        }
        let Some(query) = self.query.apply(ctx.parts.uri.query()) else {
            return Flow::Continue;
        };
        match with_query(&ctx.parts.uri, &query) {
            Some(uri) => {
                ctx.parts.uri = uri;
                Flow::Continue
            }
            None => Flow::Reject(Rejection::new(
                StatusCode::BAD_REQUEST,
                "the query string could not be rewritten",
            )),
        }
    }

    fn request_body(&self) -> Option<&dyn BodyRewrite> {
        self.json.as_ref().map(|j| j as &dyn BodyRewrite)
    }
}

/// The URI with its query replaced (none when `query` is empty).
fn with_query(uri: &Uri, query: &str) -> Option<Uri> {
    let pq = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(format!("header {name} is managed by the gateway"));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
    Ok((header_name(name)?, value))
}

/// Header edits, compiled.
pub(super) struct HeaderOps {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    replace: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOps {
    pub(super) fn new(
        remove: &[String],
        rename: &BTreeMap<String, String>,
        replace: &BTreeMap<String, String>,
        add: &BTreeMap<String, String>,
    ) -> Result<HeaderOps, String> {
        Ok(HeaderOps {
            remove: remove
                .iter()
                .map(|n| header_name(n))
                .collect::<Result<_, _>>()?,
            rename: rename
                .iter()
                .map(|(a, b)| Ok((header_name(a)?, header_name(b)?)))
                .collect::<Result<_, String>>()?,
            replace: replace
                .iter()
                .map(|(n, v)| header(n, v))
                .collect::<Result<_, _>>()?,
            add: add
                .iter()
                .map(|(n, v)| header(n, v))
                .collect::<Result<_, _>>()?,
        })
    }

    pub(super) fn apply(&self, h: &mut HeaderMap) {
        for name in &self.remove {
            h.remove(name);
        }
        for (from, to) in &self.rename {
            if let Entry::Occupied(e) = h.entry(from) {
                let values: Vec<HeaderValue> = e.remove_entry_mult().1.collect();
                h.remove(to);
                for v in values {
                    h.append(to.clone(), v);
                }
            }
        }
        for (name, value) in &self.replace {
            if h.contains_key(name) {
                h.insert(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.add {
            if !h.contains_key(name) {
                h.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Query parameter edits, by decoded name.
struct QueryOps {
    remove: Vec<String>,
    rename: Vec<(String, String)>,
    replace: Vec<(String, String)>,
    add: Vec<(String, String)>,
}

/// One `name=value` of a query: its text as sent, its decoded name.
struct Param {
    raw: String,
    name: String,
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl QueryOps {
    fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.replace.is_empty()
            && self.add.is_empty()
    }

    /// The new query, or `None` when nothing changed.
    fn apply(&self, query: Option<&str>) -> Option<String> {
        let mut params: Vec<Param> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| Param {
                raw: p.to_owned(),
                name: form_urlencoded::parse(p.as_bytes())
                    .next()
                    .map_or_else(String::new, |(n, _)| n.into_owned()),
            })
            .collect();
        let before = params.len();
        let mut changed = false;
        params.retain(|p| !self.remove.contains(&p.name));
        changed |= params.len() != before;
        for (from, to) in &self.rename {
            if params.iter().any(|p| &p.name == from) {
                params.retain(|p| &p.name != to);
                for p in params.iter_mut().filter(|p| &p.name == from) {
                    let value = p.raw.split_once('=').map(|(_, v)| v);
                    p.raw = match value {
                        Some(v) => format!("{}={v}", encode(to)),
                        None => encode(to),
                    };
                    p.name.clone_from(to);
                }
                changed = true;
            }
        }
        for (name, value) in &self.replace {
            for p in params.iter_mut().filter(|p| &p.name == name) {
                p.raw = format!("{}={}", encode(name), encode(value));
                changed = true;
            }
        }
        for (name, value) in &self.add {
            if !params.iter().any(|p| &p.name == name) {
                params.push(Param {
                    raw: format!("{}={}", encode(name), encode(value)),
                    name: name.clone(),
                });
                changed = true;
            }
        }
        changed.then(|| {
            params
                .iter()
                .map(|p| p.raw.as_str())
                .collect::<Vec<_>>()
                .join("&")
        })
    }
}

/// Edits of a JSON body's top-level fields.
pub(super) struct JsonOps {
    remove: Vec<String>,
    rename: Vec<(String, String)>,
    replace: Vec<(String, Json)>,
    add: Vec<(String, Json)>,
}

impl JsonOps {
    /// `None` when there is nothing to do to bodies.
    pub(super) fn new(
        remove: &[String],
        rename: &BTreeMap<String, String>,
        replace: &BTreeMap<String, serde_json::Value>,
        add: &BTreeMap<String, serde_json::Value>,
    ) -> Option<JsonOps> {
        let ops = JsonOps {
            remove: remove.to_vec(),
            rename: rename.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
            replace: replace.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
            add: add.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
        };
        let empty = ops.remove.is_empty()
            && ops.rename.is_empty()
            && ops.replace.is_empty()
            && ops.add.is_empty();
        (!empty).then_some(ops)
    }

    /// Applies the edits; whether anything changed.
    fn apply(&self, fields: &mut Vec<(String, Json)>) -> bool {
        let before = fields.len();
        fields.retain(|(k, _)| !self.remove.contains(k));
        let mut changed = fields.len() != before;
        for (from, to) in &self.rename {
            if fields.iter().any(|(k, _)| k == from) {
                fields.retain(|(k, _)| k != to);
                for (k, _) in fields.iter_mut().filter(|(k, _)| k == from) {
                    k.clone_from(to);
                }
                changed = true;
            }
        }
        for (name, value) in &self.replace {
            for (_, v) in fields.iter_mut().filter(|(k, _)| k == name) {
                *v = value.clone();
                changed = true;
            }
        }
        for (name, value) in &self.add {
            if !fields.iter().any(|(k, _)| k == name) {
                fields.push((name.clone(), value.clone()));
                changed = true;
            }
        }
        changed
    }
}

impl BodyRewrite for JsonOps {
    fn wants(&self, headers: &HeaderMap) -> bool {
        is_json(headers)
    }

    fn rewrite(&self, _: &mut HeaderMap, body: &[u8]) -> Result<Option<Vec<u8>>, BodyError> {
        // Not an object (or not JSON at all): not ours to judge.
        let Ok(Json::Object(mut fields)) = Json::parse(body) else {
            return Ok(None);
        };
        if !self.apply(&mut fields) {
            return Ok(None);
        }
        Ok(Some(Json::Object(fields).to_vec()))
    }
}

#[cfg(test)]
#[path = "request_transformer_tests.rs"]
mod tests;
