//! `claims_to_headers`: claims of a verified token sent to the upstream as
//! request headers. Each header named in the config is removed from the
//! client's request first, whether or not a token comes, so a client
//! cannot send its own; a claim the token lacks (or `null`) sends nothing.
//! Strings go as they are, numbers and booleans as JSON text, arrays and
//! objects as compact JSON; a value that cannot be a header value (a
//! control character) is not sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// Header values computed once per verified token (and kept with it).
pub(super) type Forwarded = Arc<[(HeaderName, HeaderValue)]>;

#[derive(Default)]
pub(super) struct ClaimHeaders(Vec<(String, HeaderName)>);

impl ClaimHeaders {
    /// From the plugin's config (names checked by the control plane; an
    /// invalid one here is skipped).
    pub(super) fn new(map: &BTreeMap<String, String>) -> ClaimHeaders {
        ClaimHeaders(
            map.iter()
                .filter_map(|(claim, header)| {
                    let name = HeaderName::from_bytes(header.as_bytes()).ok()?;
                    Some((claim.clone(), name))
                })
                .collect(),
        )
    }

    /// Removes what the client sent in the configured headers.
    pub(super) fn strip(&self, headers: &mut HeaderMap) {
        for (_, name) in &self.0 {
            headers.remove(name);
        }
    }

    /// The headers the token's claims give.
    pub(super) fn values(&self, claims: &Map<String, Value>) -> Forwarded {
        self.0
            .iter()
            .filter_map(|(claim, name)| {
                let value = match claims.get(claim)? {
                    Value::Null => return None,
                    Value::String(s) => HeaderValue::from_str(s).ok()?,
                    other => HeaderValue::from_str(&other.to_string()).ok()?,
                };
                Some((name.clone(), value))
            })
            .collect()
    }
}

pub(super) fn apply(forwarded: &Forwarded, headers: &mut HeaderMap) {
    for (name, value) in forwarded.iter() {
        headers.insert(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn claims_become_headers_and_client_copies_go() {
        let config = BTreeMap::from([
            ("sub".to_owned(), "x-user".to_owned()),
            ("tier".to_owned(), "x-tier".to_owned()),
            ("roles".to_owned(), "x-roles".to_owned()),
            ("admin".to_owned(), "x-admin".to_owned()),
            ("missing".to_owned(), "x-missing".to_owned()),
            ("evil".to_owned(), "x-evil".to_owned()),
        ]);
        let h = ClaimHeaders::new(&config);
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("forged"));
        headers.insert("x-missing", HeaderValue::from_static("forged"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        h.strip(&mut headers);
        let claims = json!({"sub": "ann", "tier": 3, "roles": ["a", "b"], "admin": true,
                            "evil": "line\nbreak", "other": "x"});
        let forwarded = h.values(claims.as_object().unwrap());
        apply(&forwarded, &mut headers);
        assert_eq!(headers["x-user"], "ann");
        assert_eq!(headers["x-tier"], "3");
        assert_eq!(headers["x-roles"], r#"["a","b"]"#);
        assert_eq!(headers["x-admin"], "true");
        assert!(!headers.contains_key("x-missing"));
        assert!(!headers.contains_key("x-evil"));
        assert_eq!(headers["x-kept"], "1");
        assert_eq!(headers.len(), 5);
    }
}
