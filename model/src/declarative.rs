//! The declarative config file (API.md "Declarative file"): the whole config
//! as one YAML or JSON document, what `GET /api/v1/config/export` answers,
//! `POST /api/v1/config/import` and `turnpike config` take.
//!
//! Entities are identified by name here: routes name their upstream,
//! plugins their consumer (by username), and an import keeps the id of
//! every entity that already exists (see `declarative_snapshot.rs`), so
//! exporting and importing the same config changes nothing. Certificates
//! have no name, so they carry their `id` (as in Kong's decK files), which
//! an upstream's `tls.client_certificate` refers to.
//!
//! Secrets: a document may carry them in clear (`key`, `password`, a
//! certificate `key`, a JWT `secret`); an export never does. It shows what
//! is stored instead: `key_digest` and `password_hash` (only digests are
//! stored), and the SHA-256 of certificate keys and JWT secrets
//! (`key_sha256`, `secret_sha256`), which on import stand for the current
//! secret with that digest.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    CertificateSpec, ConsumerSpec, CredentialKind, ModelError, PluginSpec, RouteSpec, UpstreamSpec,
    ValidationErrors,
};

/// The only format version so far.
pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub format_version: String,
    #[serde(default)]
    pub upstreams: Vec<UpstreamSpec>,
    /// `upstream` holds the upstream's name.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    #[serde(default)]
    pub consumers: Vec<ConsumerEntry>,
    /// Global plugins, and plugins scoped to a consumer only (route plugins
    /// live in their route).
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
    #[serde(default)]
    pub certificates: Vec<CertificateEntry>,
}

/// A certificate and its id. Without one, an import keeps the id of the
/// current certificate with the same first SNI (or, without SNIs, the same
/// PEM), else makes one; exports always write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(flatten)]
    pub spec: CertificateSpec,
}

/// A route with the plugins scoped to it (`route` left out; `consumer` by
/// username).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    #[serde(flatten)]
    pub spec: RouteSpec,
    #[serde(default)]
    pub plugins: Vec<PluginSpec>,
}

/// A consumer with its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerEntry {
    #[serde(flatten)]
    pub spec: ConsumerSpec,
    #[serde(default)]
    pub credentials: Vec<CredentialKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    fn label(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

const TOP_LEVEL: [&str; 6] = [
    "format_version",
    "upstreams",
    "routes",
    "consumers",
    "plugins",
    "certificates",
];

impl Document {
    /// Parses and validates a whole document, reporting every failing field
    /// with its path (`upstreams[2].targets[0].address`). Route hosts and
    /// methods come back normalized, plugin configs with their defaults.
    pub fn parse(text: &[u8], format: Format) -> Result<Document, ModelError> {
        let syntax = |message: String| ModelError::Syntax {
            format: format.label(),
            message,
        };
        let value: Value = match format {
            Format::Json => serde_json::from_slice(text).map_err(|e| syntax(e.to_string()))?,
            Format::Yaml => serde_yaml_ng::from_slice(text).map_err(|e| syntax(e.to_string()))?,
        };
        Ok(Document::from_value(value)?)
    }

    /// Checks a parsed document. Each entity is deserialized on its own, so
    /// one bad entity does not hide the errors of the others.
    pub fn from_value(value: Value) -> Result<Document, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Value::Object(mut top) = value else {
            errors.push(
                "",
                "the document must be a mapping with format_version, upstreams and routes",
            );
            return Err(errors);
        };
        for key in top.keys().filter(|k| !TOP_LEVEL.contains(&k.as_str())) {
            errors.push(
                key.clone(),
                format!("unknown field; expected one of {}", TOP_LEVEL.join(", ")),
            );
        }
        match top.get("format_version") {
            Some(Value::String(v)) if v == FORMAT_VERSION => {}
            // YAML users write `format_version: 1` as often as `"1"`.
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            None => errors.push("format_version", "is required; the current format is \"1\""),
            Some(_) => errors.push("format_version", "unsupported; the current format is \"1\""),
        }
        let upstreams = entities::<UpstreamSpec>(&mut top, "upstreams", "name", None, &mut errors);
        let routes =
            entities::<RouteSpec>(&mut top, "routes", "name", Some("plugins"), &mut errors);
        let consumers = entities::<ConsumerSpec>(
            &mut top,
            "consumers",
            "username",
            Some("credentials"),
            &mut errors,
        );
        let plugins = entities::<PluginSpec>(&mut top, "plugins", "name", None, &mut errors);
        // The id is taken out like a nested list: the spec has no `id`.
        let certificates =
            entities::<CertificateSpec>(&mut top, "certificates", "", Some("id"), &mut errors);
        let certificate_ids = checks::certificate_ids(&certificates, &mut errors);
        let mut routes: Vec<(Entry<RouteSpec>, Vec<Option<PluginSpec>>)> = routes
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                let prefix = format!("routes[{i}].plugins");
                let plugins = nested(r.nested.take(), &prefix, &mut errors, parse_entity);
                (r, plugins)
            })
            .collect();
        let consumers: Vec<(Entry<ConsumerSpec>, Vec<Option<CredentialKind>>)> = consumers
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let prefix = format!("consumers[{i}].credentials");
                let creds = nested(c.nested.take(), &prefix, &mut errors, parse_credential);
                (c, creds)
            })
            .collect();
        let whole = Whole {
            upstreams: &upstreams,
            routes: &routes,
            consumers: &consumers,
            plugins: &plugins,
            certificates: &certificates,
            certificate_ids: &certificate_ids,
        };
        whole.check(&mut errors);
        errors.into_result()?;
        // No errors: every entry parsed.
        Ok(Document {
            format_version: FORMAT_VERSION.to_owned(),
            upstreams: upstreams.into_iter().filter_map(|e| e.spec).collect(),
            routes: routes
                .drain(..)
                .filter_map(|(r, plugins)| {
                    Some(RouteEntry {
                        spec: r.spec?,
                        plugins: plugins.into_iter().flatten().collect(),
                    })
                })
                .collect(),
            consumers: consumers
                .into_iter()
                .filter_map(|(c, creds)| {
                    Some(ConsumerEntry {
                        spec: c.spec?,
                        credentials: creds.into_iter().flatten().collect(),
                    })
                })
                .collect(),
            plugins: plugins.into_iter().filter_map(|e| e.spec).collect(),
            certificates: certificates
                .into_iter()
                .zip(certificate_ids)
                .filter_map(|(e, id)| Some(CertificateEntry { id, spec: e.spec? }))
                .collect(),
        })
    }

    /// Deterministic text: the same document always gives the same bytes,
    /// ending with a newline.
    pub fn render(&self, format: Format) -> String {
        // Plain data with string keys: serialization cannot fail.
        let mut text = match format {
            Format::Json => serde_json::to_string_pretty(self).expect("document serializes"),
            Format::Yaml => serde_yaml_ng::to_string(self).expect("document serializes"),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// One list entry: its name as written, known even when the entry failed
/// to parse (so it still counts for duplicates and references), its spec
/// when it parsed, and the nested list taken out of it (route plugins,
/// consumer credentials).
struct Entry<S> {
    name: Option<String>,
    spec: Option<S>,
    nested: Option<Value>,
}

/// Deserializes the list `key` of `top` entity by entity; failures are
/// prefixed with `key[i]`. `nested` names a list to take out of each entry
/// before it is parsed.
fn entities<S: serde::de::DeserializeOwned + Check>(
    top: &mut serde_json::Map<String, Value>,
    key: &str,
    name_field: &str,
    nested: Option<&str>,
    errors: &mut ValidationErrors,
) -> Vec<Entry<S>> {
    let items = match top.remove(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(key, "must be a list");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, mut item) in items.into_iter().enumerate() {
        let inner = nested.and_then(|n| item.as_object_mut()?.remove(n));
        let name = item
            .get(name_field)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut local = ValidationErrors::default();
        let spec = parse_entity::<S>(item, &mut local);
        out.push(Entry {
            name,
            spec,
            nested: inner,
        });
        errors.extend_prefixed(&format!("{key}[{i}]"), local);
    }
    out
}

fn parse_entity<S: serde::de::DeserializeOwned + Check>(
    item: Value,
    errors: &mut ValidationErrors,
) -> Option<S> {
    match serde_path_to_error::deserialize::<_, S>(item) {
        Ok(mut spec) => {
            if let Err(e) = spec.check() {
                errors.0.extend(e.0);
            }
            Some(spec)
        }
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            errors.push(field, e.into_inner().to_string());
            None
        }
    }
}

fn parse_credential(item: Value, errors: &mut ValidationErrors) -> Option<CredentialKind> {
    match CredentialKind::from_value(item) {
        Ok(c) => {
            if let Err(e) = c.validate() {
                errors.0.extend(e.0);
            }
            Some(c)
        }
        Err(e) => {
            errors.0.extend(e.0);
            None
        }
    }
}

/// Parses a nested list (`routes[i].plugins`) with `parse`.
fn nested<T>(
    value: Option<Value>,
    prefix: &str,
    errors: &mut ValidationErrors,
    parse: impl Fn(Value, &mut ValidationErrors) -> Option<T>,
) -> Vec<Option<T>> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(j, item)| {
                let mut local = ValidationErrors::default();
                let parsed = parse(item, &mut local);
                errors.extend_prefixed(&format!("{prefix}[{j}]"), local);
                parsed
            })
            .collect(),
        Some(_) => {
            errors.push(prefix, "must be a list");
            Vec::new()
        }
    }
}

/// Per-entity normalization and validation, as the CRUD API does it, before
/// the checks across entities.
trait Check {
    fn check(&mut self) -> Result<(), ValidationErrors>;
}

impl Check for UpstreamSpec {
    fn check(&mut self) -> Result<(), ValidationErrors> {
        self.validate()
    }
}

impl Check for RouteSpec {
    fn check(&mut self) -> Result<(), ValidationErrors> {
        self.normalize();
        self.validate()
    }
}

impl Check for ConsumerSpec {
    fn check(&mut self) -> Result<(), ValidationErrors> {
        self.validate()
    }
}

impl Check for PluginSpec {
    fn check(&mut self) -> Result<(), ValidationErrors> {
        self.normalize();
        self.validate()
    }
}

impl Check for CertificateSpec {
    fn check(&mut self) -> Result<(), ValidationErrors> {
        self.normalize();
        self.validate()
    }
}

#[path = "declarative_checks.rs"]
mod checks;
use checks::Whole;

#[path = "declarative_snapshot.rs"]
mod snapshot;

#[cfg(test)]
#[path = "declarative_tests.rs"]
mod tests;
