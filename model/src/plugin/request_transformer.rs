//! `request-transformer`: edits the request before it goes upstream:
//! headers, query string and top-level JSON body fields. Operations run in
//! the order remove, rename, replace (only what exists), add (only what
//! does not exist), as in Kong. Headers the gateway manages
//! ([`RESERVED_HEADERS`]) cannot be named in any operation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Schema, check_header_name, check_header_value};
use crate::ValidationErrors;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformerConfig {
    #[serde(default)]
    pub remove: Names,
    #[serde(default)]
    pub rename: Renames,
    #[serde(default)]
    pub replace: Values,
    #[serde(default)]
    pub add: Values,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub querystring: Vec<String>,
    #[serde(default)]
    pub json: Vec<String>,
}

/// Old name → new name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renames {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub querystring: BTreeMap<String, String>,
    #[serde(default)]
    pub json: BTreeMap<String, String>,
}

/// Name → value; JSON body values may be any JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub querystring: BTreeMap<String, String>,
    #[serde(default)]
    pub json: BTreeMap<String, Value>,
}

impl Schema for RequestTransformerConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        check_names(
            "remove.headers",
            &self.remove.headers,
            errors,
            check_transformable,
        );
        check_names(
            "remove.querystring",
            &self.remove.querystring,
            errors,
            check_plain_name,
        );
        check_names("remove.json", &self.remove.json, errors, check_plain_name);
        for (section, map) in [
            ("rename.headers", &self.rename.headers),
            ("rename.querystring", &self.rename.querystring),
            ("rename.json", &self.rename.json),
        ] {
            let check = if section == "rename.headers" {
                check_transformable
            } else {
                check_plain_name
            };
            for (from, to) in map {
                check(&format!("{section}.{from}"), from, errors);
                check(&format!("{section}.{from}"), to, errors);
            }
        }
        for (op, v) in [("replace", &self.replace), ("add", &self.add)] {
            check_values(op, v, errors);
        }
    }
}

pub(crate) fn check_values(op: &str, v: &Values, errors: &mut ValidationErrors) {
    for (name, value) in &v.headers {
        let field = format!("{op}.headers.{name}");
        check_transformable(&field, name, errors);
        check_header_value(&field, value, errors);
    }
    for name in v.querystring.keys() {
        check_plain_name(&format!("{op}.querystring.{name}"), name, errors);
    }
    for name in v.json.keys() {
        check_plain_name(&format!("{op}.json.{name}"), name, errors);
    }
}

/// Headers the transformers never touch: hop-by-hop ones, the framing the
/// data plane computes (`Content-Length`), `Host` (set for the target), and
/// the consumer headers only authentication sets.
pub const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "x-consumer-id",
    "x-consumer-username",
];

/// A header name a transformer may remove, rename, replace or add.
pub(crate) fn check_transformable(field: &str, name: &str, errors: &mut ValidationErrors) {
    check_header_name(field, name, errors);
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        errors.push(
            field,
            "is managed by the gateway (hop-by-hop, Content-Length, Host, X-Consumer-*)",
        );
    }
}

pub(crate) fn check_names(
    field: &str,
    names: &[String],
    errors: &mut ValidationErrors,
    check: fn(&str, &str, &mut ValidationErrors),
) {
    for (i, n) in names.iter().enumerate() {
        check(&format!("{field}[{i}]"), n, errors);
    }
}

/// Query parameter and JSON field names: 1 to 256 characters, no control
/// characters.
pub(crate) fn check_plain_name(field: &str, name: &str, errors: &mut ValidationErrors) {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        errors.push(field, "must be 1 to 256 characters, no control characters");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        let empty = json!({"headers": {}, "querystring": {}, "json": {}});
        assert_eq!(
            check("request-transformer", json!({})).unwrap(),
            json!({"remove": {"headers": [], "querystring": [], "json": []}, "rename": empty, "replace": empty, "add": empty})
        );
        let c = check(
            "request-transformer",
            json!({"add": {"headers": {"x-env": "prod"}, "json": {"n": [1, 2]}}, "remove": {"querystring": ["debug"]}}),
        )
        .unwrap();
        assert_eq!(c["add"]["json"]["n"], json!([1, 2]));
        assert_eq!(
            check(
                "request-transformer",
                json!({"add": {"headers": {"bad name": "v", "x-ok": "line\nbreak"}}, "rename": {"headers": {"a": "b c"}}, "remove": {"json": [""]}})
            ),
            Err(vec![
                "config.remove.json[0]".into(),
                "config.rename.headers.a".into(),
                "config.add.headers.bad name".into(),
                "config.add.headers.x-ok".into()
            ])
        );
        assert_eq!(
            check("request-transformer", json!({"add": {"body": {}}})),
            Err(vec!["config.add.body".into()])
        );
        assert_eq!(
            check(
                "request-transformer",
                json!({"add": {"headers": {"Host": "x"}}, "rename": {"headers": {"a": "connection", "Content-Length": "b"}}, "remove": {"headers": ["x-consumer-id"]}})
            ),
            Err(vec![
                "config.remove.headers[0]".into(),
                "config.rename.headers.Content-Length".into(),
                "config.rename.headers.a".into(),
                "config.add.headers.Host".into()
            ])
        );
    }
}
