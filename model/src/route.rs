//! Routes: which requests go to which upstream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{HostPattern, PathPattern, ValidationErrors, check_name, check_tags};

/// What an operator writes for a route. A route with no hosts matches every
/// host, with no paths every path, with no methods every method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Unique; letters, digits, `.`, `_`, `~`, `-`; not a UUID.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "users-api",
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9._~-]+$"
        )
    )]
    pub name: String,
    /// Exact hosts or `*.example.com` wildcards; empty matches any host.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100, example = json!(["api.example.com"])))]
    pub hosts: Vec<String>,
    /// `/prefix`, `=/exact` or `~regex`; empty matches any path.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100, example = json!(["/users"])))]
    pub paths: Vec<String>,
    /// Header conditions: each named header must be present with one of the
    /// listed values (exact, case-sensitive; names are case-insensitive).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = json!({"x-version": ["2"]})))]
    pub headers: BTreeMap<String, Vec<String>>,
    /// HTTP methods; empty matches any method.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = json!(["GET", "POST"])))]
    pub methods: Vec<String>,
    /// Higher wins; ties are broken by the specificity rule (documented
    /// in docs/admin-api.md; `GET /api/v1/routes/match` shows it applied).
    #[serde(default)]
    pub priority: i32,
    /// The upstream's id or name on input; always its id once stored.
    #[cfg_attr(feature = "openapi", schema(example = "users", min_length = 1))]
    pub upstream: String,
    /// Remove the matched path prefix before forwarding.
    #[serde(default)]
    pub strip_path: bool,
    /// Forward the client's Host header instead of the target's address.
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

pub const MAX_HOSTS: usize = 100;
pub const MAX_PATHS: usize = 100;
pub const MAX_HEADERS: usize = 20;

impl RouteSpec {
    /// Brings case-insensitive parts to their canonical form, so that what is
    /// stored (and hashed) does not depend on how it was typed.
    pub fn normalize(&mut self) {
        for h in &mut self.hosts {
            h.make_ascii_lowercase();
            if h.ends_with('.') {
                h.pop();
            }
        }
        for m in &mut self.methods {
            m.make_ascii_uppercase();
        }
        if self
            .headers
            .keys()
            .any(|k| k.bytes().any(|b| b.is_ascii_uppercase()))
        {
            let headers = std::mem::take(&mut self.headers);
            for (name, values) in headers {
                self.headers
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .extend(values);
            }
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        check_name("name", &self.name, &mut errors);
        if self.hosts.len() > MAX_HOSTS {
            errors.push("hosts", format!("at most {MAX_HOSTS} hosts"));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if let Err(msg) = HostPattern::parse(h) {
                errors.push(format!("hosts[{i}]"), msg);
            }
        }
        if self.paths.len() > MAX_PATHS {
            errors.push("paths", format!("at most {MAX_PATHS} paths"));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if let Err(msg) = PathPattern::parse(p) {
                errors.push(format!("paths[{i}]"), msg);
            }
        }
        for (i, m) in self.methods.iter().enumerate() {
            let token = !m.is_empty() && m.len() <= 32 && m.bytes().all(|b| b.is_ascii_uppercase());
            if !token {
                errors.push(
                    format!("methods[{i}]"),
                    "must be an HTTP method such as GET",
                );
            }
        }
        if self.headers.len() > MAX_HEADERS {
            errors.push(
                "headers",
                format!("at most {MAX_HEADERS} header conditions"),
            );
        }
        for (name, values) in &self.headers {
            let field = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(&field, "is not a valid header name");
            } else if name == "host" {
                errors.push(&field, "match hosts with the `hosts` field");
            }
            if values.is_empty() || values.len() > 32 {
                errors.push(&field, "must list 1 to 32 values");
            }
            for (i, v) in values.iter().enumerate() {
                if v.is_empty()
                    || http::HeaderValue::from_str(v).is_err()
                    || v.bytes().any(|b| !(0x20..0x7f).contains(&b))
                {
                    errors.push(format!("{field}[{i}]"), "must be non-empty visible ASCII");
                }
            }
        }
        if self.upstream.trim().is_empty() {
            errors.push("upstream", "is required");
        }
        check_tags(&self.tags, &mut errors);
        errors.into_result()
    }
}

/// A route as stored and distributed; `spec.upstream` holds the upstream id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: RouteSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> RouteSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn normalizes_case() {
        let mut s = spec(serde_json::json!({
            "name": "r", "hosts": ["API.Example.com."], "methods": ["get"], "upstream": "u"
        }));
        s.normalize();
        assert_eq!(s.hosts, ["api.example.com"]);
        assert_eq!(s.methods, ["GET"]);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn reports_each_bad_field() {
        let s = spec(serde_json::json!({
            "name": "",
            "hosts": ["ok.example.com", "bad host"],
            "paths": ["/ok", "nope", "~("],
            "methods": ["G ET"],
            "upstream": " "
        }));
        let fields: Vec<String> = s
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "hosts[1]",
                "paths[1]",
                "paths[2]",
                "methods[0]",
                "upstream"
            ]
        );
    }

    #[test]
    fn header_conditions() {
        let mut s = spec(serde_json::json!({
            "name": "r", "upstream": "u", "headers": {"X-Version": ["2"], "x-version": ["3"]}
        }));
        s.normalize();
        assert_eq!(
            s.headers["x-version"],
            ["2", "3"].map(String::from).to_vec(),
            "names fold to lowercase"
        );
        assert!(s.validate().is_ok());
        let bad = spec(serde_json::json!({
            "name": "r", "upstream": "u",
            "headers": {"bad name": ["1"], "host": ["a"], "x-empty": [], "x-ctl": ["a\u{1}"]}
        }));
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "headers.bad name",
                "headers.host",
                "headers.x-ctl[0]",
                "headers.x-empty"
            ]
        );
    }

    #[test]
    fn upstream_is_required() {
        assert!(serde_json::from_value::<RouteSpec>(serde_json::json!({"name": "r"})).is_err());
    }
}
