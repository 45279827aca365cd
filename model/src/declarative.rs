//! The declarative config file (API.md "Declarative file"): the whole config
//! as one YAML or JSON document, what `GET /api/v1/config/export` answers,
//! `POST /api/v1/config/import` and `turnpike config` take.
//!
//! Entities are identified by name here, never by id: routes name their
//! upstream, and an import keeps the id of every entity whose name already
//! exists ([`Document::to_snapshot`]), so exporting and importing the same
//! config changes nothing.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{ModelError, Route, RouteSpec, Snapshot, Upstream, UpstreamSpec, ValidationErrors};

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
    pub routes: Vec<RouteSpec>,
    /// Not entities yet: only the empty list is accepted.
    #[serde(default)]
    pub consumers: Vec<Value>,
    /// Global plugins; not entities yet: only the empty list is accepted.
    #[serde(default)]
    pub plugins: Vec<Value>,
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

const TOP_LEVEL: [&str; 5] = [
    "format_version",
    "upstreams",
    "routes",
    "consumers",
    "plugins",
];

impl Document {
    /// The document of a snapshot, in canonical form: entities sorted by
    /// name, every field written out, routes naming their upstream.
    pub fn from_snapshot(s: &Snapshot) -> Document {
        let names: HashMap<String, &str> = s
            .upstreams
            .iter()
            .map(|u| (u.id.to_string(), u.spec.name.as_str()))
            .collect();
        let mut upstreams: Vec<UpstreamSpec> = s.upstreams.iter().map(|u| u.spec.clone()).collect();
        upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        let mut routes: Vec<RouteSpec> = s
            .routes
            .iter()
            .map(|r| {
                let mut spec = r.spec.clone();
                // A validated snapshot has no dangling reference; if one
                // slipped through, the id is the most honest thing to show.
                if let Some(name) = names.get(&spec.upstream) {
                    spec.upstream = (*name).to_owned();
                }
                spec
            })
            .collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        Document {
            format_version: FORMAT_VERSION.to_owned(),
            upstreams,
            routes,
            consumers: Vec::new(),
            plugins: Vec::new(),
        }
    }

    /// Parses and validates a whole document, reporting every failing field
    /// with its path (`upstreams[2].targets[0].address`). Route hosts and
    /// methods come back normalized.
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
        for kind in ["consumers", "plugins"] {
            match top.get(kind) {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(Value::Array(_)) => errors.push(
                    kind,
                    format!("{kind} are not supported yet; leave the list empty"),
                ),
                Some(_) => errors.push(kind, "must be a list"),
            }
        }
        let upstreams = entities::<UpstreamSpec>(&mut top, "upstreams", &mut errors, |_, _| {});
        let routes = entities::<RouteSpec>(&mut top, "routes", &mut errors, route_plugins);
        check_whole(&upstreams, &routes, &mut errors);
        errors.into_result()?;
        // No errors: every entry parsed.
        Ok(Document {
            format_version: FORMAT_VERSION.to_owned(),
            upstreams: upstreams.into_iter().filter_map(|e| e.spec).collect(),
            routes: routes.into_iter().filter_map(|e| e.spec).collect(),
            consumers: Vec::new(),
            plugins: Vec::new(),
        })
    }

    /// The snapshot this document stands for, given the `current` one:
    /// entities whose name exists in `current` keep their id, new names get
    /// new ids. Expects a document that passed [`Document::parse`].
    pub fn to_snapshot(&self, current: &Snapshot) -> Snapshot {
        let upstream_ids: HashMap<&str, Uuid> = current
            .upstreams
            .iter()
            .map(|u| (u.spec.name.as_str(), u.id))
            .collect();
        let route_ids: HashMap<&str, Uuid> = current
            .routes
            .iter()
            .map(|r| (r.spec.name.as_str(), r.id))
            .collect();
        let upstreams: Vec<Upstream> = self
            .upstreams
            .iter()
            .map(|spec| Upstream {
                id: upstream_ids
                    .get(spec.name.as_str())
                    .copied()
                    .unwrap_or_else(Uuid::now_v7),
                spec: spec.clone(),
            })
            .collect();
        let by_name: HashMap<&str, Uuid> = upstreams
            .iter()
            .map(|u| (u.spec.name.as_str(), u.id))
            .collect();
        let routes = self
            .routes
            .iter()
            .map(|spec| {
                let mut spec = spec.clone();
                if let Some(id) = by_name.get(spec.upstream.as_str()) {
                    spec.upstream = id.to_string();
                }
                Route {
                    id: route_ids
                        .get(spec.name.as_str())
                        .copied()
                        .unwrap_or_else(Uuid::now_v7),
                    spec,
                }
            })
            .collect();
        Snapshot::new(current.version, upstreams, routes)
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
/// to parse (so it still counts for duplicates and references), and its
/// spec when it parsed.
struct Entry<S> {
    name: Option<String>,
    spec: Option<S>,
}

/// Deserializes the list `key` of `top` entity by entity, after `prepare`
/// had a look at each raw entry; failures are prefixed with `key[i]`.
fn entities<S: serde::de::DeserializeOwned + Check>(
    top: &mut serde_json::Map<String, Value>,
    key: &str,
    errors: &mut ValidationErrors,
    prepare: impl Fn(&mut Value, &mut ValidationErrors),
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
        let prefix = format!("{key}[{i}]");
        let mut local = ValidationErrors::default();
        prepare(&mut item, &mut local);
        let name = item.get("name").and_then(Value::as_str).map(str::to_owned);
        let spec = match serde_path_to_error::deserialize::<_, S>(item) {
            Ok(mut spec) => {
                if let Err(e) = spec.check() {
                    local.0.extend(e.0);
                }
                Some(spec)
            }
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                local.push(field, e.into_inner().to_string());
                None
            }
        };
        out.push(Entry { name, spec });
        errors.extend_prefixed(&prefix, local);
    }
    out
}

/// API.md's example puts plugins inside routes; until plugins exist, an
/// empty list there is accepted and anything else is refused clearly.
fn route_plugins(item: &mut Value, errors: &mut ValidationErrors) {
    let Some(obj) = item.as_object_mut() else {
        return;
    };
    match obj.remove("plugins") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => errors.push(
            "plugins",
            "plugins are not supported yet; leave the list empty",
        ),
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

/// Checks across entities: unique names per kind, and routes naming an
/// upstream of this document.
fn check_whole(
    upstreams: &[Entry<UpstreamSpec>],
    routes: &[Entry<RouteSpec>],
    errors: &mut ValidationErrors,
) {
    let upstream_names = unique_names("upstreams", upstreams, errors);
    unique_names("routes", routes, errors);
    for (i, r) in routes.iter().enumerate() {
        let Some(r) = &r.spec else { continue };
        // An empty reference was reported by the route's own validation.
        if !r.upstream.trim().is_empty() && !upstream_names.contains_key(r.upstream.as_str()) {
            errors.push(
                format!("routes[{i}].upstream"),
                format!("no upstream named '{}' in this document", r.upstream),
            );
        }
    }
}

/// Reports every name used twice in `kind`; returns each name's first index.
fn unique_names<'a, S>(
    kind: &str,
    entries: &'a [Entry<S>],
    errors: &mut ValidationErrors,
) -> HashMap<&'a str, usize> {
    let mut first = HashMap::new();
    let names = entries.iter().enumerate();
    for (i, name) in names.filter_map(|(i, e)| Some((i, e.name.as_deref()?))) {
        if let Some(j) = first.get(name) {
            errors.push(
                format!("{kind}[{i}].name"),
                format!("duplicate name '{name}' (also {kind}[{j}])"),
            );
        } else {
            first.insert(name, i);
        }
    }
    first
}

#[cfg(test)]
#[path = "declarative_tests.rs"]
mod tests;
