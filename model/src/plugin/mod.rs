//! Plugins: a named policy with a config, global or scoped to a route, a
//! consumer, or both.
//!
//! Each plugin's config schema is a serde struct with `deny_unknown_fields`
//! in its own module; [`normalize_config`] parses a config with it, checks
//! what serde cannot, and writes it back with every default filled in, so
//! the stored (and hashed) config does not depend on how it was typed.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{ValidationErrors, check_tags};

pub mod access_log;
pub mod acl;
pub mod basic_auth;
pub mod cors;
pub mod ip_restriction;
pub mod json_xml;
pub mod jwt;
pub mod key_auth;
pub mod rate_limit;
pub mod request_size_limit;
pub mod request_transformer;
pub mod response_transformer;

/// Every plugin name the API accepts (API.md).
pub const NAMES: [&str; 12] = [
    "key-auth",
    "basic-auth",
    "jwt",
    "acl",
    "ip-restriction",
    "rate-limit",
    "request-size-limit",
    "cors",
    "request-transformer",
    "response-transformer",
    "json-xml",
    "access-log",
];

/// Plugins that identify the consumer: scoping one to a consumer is
/// meaningless (the consumer is not known before they run).
const AUTH: [&str; 3] = ["key-auth", "basic-auth", "jwt"];

/// What an operator writes for a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// One of the plugin names, e.g. `rate-limit`.
    #[cfg_attr(feature = "openapi", schema(example = "rate-limit"))]
    pub name: String,
    /// The plugin's config; missing keys take their defaults.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object, example = json!({"limit": 100, "per": "minute"})))]
    pub config: Value,
    /// The route's id or name on input; its id once stored. Null: any route.
    #[serde(default)]
    pub route: Option<String>,
    /// The consumer's id or username on input; its id once stored. Null:
    /// any consumer.
    #[serde(default)]
    pub consumer: Option<String>,
    #[serde(default = "enabled")]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn enabled() -> bool {
    true
}

impl PluginSpec {
    /// Fills in the config's defaults. A config that does not parse is
    /// left as written, for [`PluginSpec::validate`] to report.
    pub fn normalize(&mut self) {
        if let Ok(config) = normalize_config(&self.name, &self.config) {
            self.config = config;
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if !NAMES.contains(&self.name.as_str()) {
            errors.push(
                "name",
                format!("unknown plugin; expected one of {}", NAMES.join(", ")),
            );
        } else if let Err(e) = normalize_config(&self.name, &self.config) {
            errors.0.extend(e.0);
        }
        for (field, value) in [("route", &self.route), ("consumer", &self.consumer)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(field, "must not be empty; leave it out (null) for any");
            }
        }
        if self.consumer.is_some() && AUTH.contains(&self.name.as_str()) {
            errors.push(
                "consumer",
                "an authentication plugin identifies the consumer; it cannot be scoped to one",
            );
        }
        check_tags(&self.tags, &mut errors);
        errors.into_result()
    }
}

/// A plugin as stored and distributed; `route` and `consumer` hold ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plugin {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: PluginSpec,
}

/// One plugin's config schema: serde does the shape, `check` the rest
/// (field paths relative to the config) and may normalize.
trait Schema: DeserializeOwned + Serialize {
    fn check(&mut self, _errors: &mut ValidationErrors) {}
}

/// Parses `config` with the schema of plugin `name` and returns it with
/// every default written out. Errors are `config.<path>`.
pub fn normalize_config(name: &str, config: &Value) -> Result<Value, ValidationErrors> {
    match name {
        "key-auth" => normalized::<key_auth::KeyAuthConfig>(config),
        "basic-auth" => normalized::<basic_auth::BasicAuthConfig>(config),
        "jwt" => normalized::<jwt::JwtConfig>(config),
        "acl" => normalized::<acl::AclConfig>(config),
        "ip-restriction" => normalized::<ip_restriction::IpRestrictionConfig>(config),
        "rate-limit" => normalized::<rate_limit::RateLimitConfig>(config),
        "request-size-limit" => normalized::<request_size_limit::RequestSizeLimitConfig>(config),
        "cors" => normalized::<cors::CorsConfig>(config),
        "request-transformer" => {
            normalized::<request_transformer::RequestTransformerConfig>(config)
        }
        "response-transformer" => {
            normalized::<response_transformer::ResponseTransformerConfig>(config)
        }
        "json-xml" => normalized::<json_xml::JsonXmlConfig>(config),
        "access-log" => normalized::<access_log::AccessLogConfig>(config),
        _ => {
            let mut errors = ValidationErrors::default();
            errors.push("name", "unknown plugin");
            Err(errors)
        }
    }
}

fn normalized<C: Schema>(config: &Value) -> Result<Value, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    // `config: null` reads as "all defaults", like an absent config.
    let raw = match config {
        Value::Null => empty_object(),
        Value::Object(_) => config.clone(),
        // serde would read a struct from a list too; a config is an object.
        _ => {
            errors.push("config", "must be an object");
            return Err(errors);
        }
    };
    let mut parsed: C = match serde_path_to_error::deserialize(raw) {
        Ok(c) => c,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "config".to_owned()
            } else {
                format!("config.{path}")
            };
            errors.push(field, e.into_inner().to_string());
            return Err(errors);
        }
    };
    let mut local = ValidationErrors::default();
    parsed.check(&mut local);
    errors.extend_prefixed("config", local);
    errors.into_result()?;
    Ok(serde_json::to_value(&parsed).expect("plugin configs serialize to JSON"))
}

/// An HTTP header name: an RFC 9110 token, stored lowercase.
pub(crate) fn check_header_name(field: &str, name: &str, errors: &mut ValidationErrors) {
    let token = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        errors.push(field, "must be an HTTP header name");
    }
}

/// A header value: visible ASCII, spaces and tabs (no CR, LF or NUL).
pub(crate) fn check_header_value(field: &str, value: &str, errors: &mut ValidationErrors) {
    if value.len() > 8192
        || !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        errors.push(
            field,
            "must be at most 8192 visible ASCII characters, spaces or tabs",
        );
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::Value;

    /// The normalized config, or the failing fields.
    pub fn check(name: &str, config: Value) -> Result<Value, Vec<String>> {
        super::normalize_config(name, &config)
            .map_err(|e| e.0.into_iter().map(|e| e.field).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> PluginSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_unknown_names_and_scope_rules() {
        let mut p = spec(json!({"name": "key-auth"}));
        assert!(p.enabled && p.route.is_none() && p.consumer.is_none());
        p.normalize();
        assert_eq!(p.config["key_names"], json!(["apikey"]));
        assert!(p.validate().is_ok());

        let bad = spec(json!({"name": "magic", "route": " ", "tags": ["a b"]}));
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "route", "tags[0]"]);

        let scoped = spec(json!({"name": "jwt", "consumer": "alice"}));
        let fields: Vec<String> = scoped
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["consumer"]);
    }

    #[test]
    fn config_errors_carry_the_config_path() {
        let p = spec(json!({"name": "rate-limit", "config": {"limit": "many"}}));
        let e = p.validate().unwrap_err();
        assert_eq!(e.0[0].field, "config.limit");
        let p = spec(json!({"name": "cors", "config": [1]}));
        assert_eq!(p.validate().unwrap_err().0[0].field, "config");
    }

    #[test]
    fn every_name_has_a_schema_and_normalizing_is_idempotent() {
        for name in NAMES {
            // The minimal valid config of each plugin.
            let config = match name {
                "acl" => json!({"allow": ["a"]}),
                "ip-restriction" => json!({"allow": ["10.0.0.0/8"]}),
                "rate-limit" => json!({"limit": 5}),
                "json-xml" => json!({"request": "json_to_xml"}),
                _ => json!({}),
            };
            let once = normalize_config(name, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
            let twice = normalize_config(name, &once).unwrap();
            assert_eq!(once, twice, "{name}");
            // Keys come out sorted (serde_json without preserve_order), which
            // keeps `config_json` on the wire canonical.
            let text = serde_json::to_string(&once).unwrap();
            let keys: Vec<&String> = once.as_object().unwrap().keys().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "{name}: {text}");
        }
    }
}
