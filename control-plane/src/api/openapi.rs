//! The OpenAPI 3.1 document of the admin API, served at
//! `/api/v1/openapi.json`. Schemas come from the types themselves (utoipa
//! derives on the specs and views); operations are generated from the same
//! entity list the router uses, so a new entity is documented by the line
//! that routes it.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Value, json};
use turnpike_model::{
    ActiveHealthCheck, Algorithm, CertificateSpec, CircuitBreaker, ConsumerSpec, FieldError,
    HashOn, HealthChecks, PassiveHealthCheck, PluginSpec, RouteSpec, Target, Timeouts,
    UpstreamProtocol, UpstreamSpec, UpstreamTls,
};
use utoipa::openapi::{ComponentsBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::admin::{CreatedToken, NewToken, Role};
use super::cluster_view::{DataPlaneStats, DataPlaneView, DataPlanes};
use crate::store::{AuditEntry, SnapshotBuild, TokenInfo, VersionInfo};

mod paths;
mod route_match;
mod schemas;

/// Entities with full CRUD: (collection path, spec schema, object schema).
pub const ENTITIES: [(&str, &str, &str); 5] = [
    ("upstreams", "UpstreamSpec", "Upstream"),
    ("routes", "RouteSpec", "Route"),
    ("consumers", "ConsumerSpec", "Consumer"),
    ("plugins", "PluginSpec", "Plugin"),
    ("certificates", "CertificateSpec", "Certificate"),
];

pub async fn serve() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

fn schema<T: ToSchema + PartialSchema>() -> (String, RefOr<Schema>) {
    (T::name().into_owned(), T::schema())
}

/// The whole document.
pub fn document() -> Value {
    let mut components = ComponentsBuilder::new();
    for (name, s) in [
        schema::<UpstreamSpec>(),
        schema::<RouteSpec>(),
        schema::<ConsumerSpec>(),
        schema::<PluginSpec>(),
        schema::<CertificateSpec>(),
        schema::<Target>(),
        schema::<Timeouts>(),
        schema::<Algorithm>(),
        schema::<HashOn>(),
        schema::<HealthChecks>(),
        schema::<ActiveHealthCheck>(),
        schema::<PassiveHealthCheck>(),
        schema::<CircuitBreaker>(),
        schema::<UpstreamProtocol>(),
        schema::<UpstreamTls>(),
        schema::<FieldError>(),
        schema::<VersionInfo>(),
        schema::<SnapshotBuild>(),
        schema::<DataPlaneView>(),
        schema::<DataPlaneStats>(),
        schema::<DataPlanes>(),
        schema::<TokenInfo>(),
        schema::<NewToken>(),
        schema::<Role>(),
        schema::<CreatedToken>(),
        schema::<AuditEntry>(),
    ] {
        components = components.schema(name, s);
    }
    let mut schemas =
        serde_json::to_value(components.build()).expect("components serialize")["schemas"].take();
    for (_, spec, object) in ENTITIES {
        schemas[object] = object_schema(&schemas[spec]);
        patch_schema(&mut schemas, spec);
    }
    schemas::certificate_view(&mut schemas["Certificate"]);
    let extra = handwritten_schemas();
    for (k, v) in extra.as_object().expect("object") {
        schemas[k] = v.clone();
    }
    // A route of the declarative document also carries its plugins.
    let mut doc_route = schemas["RouteSpec"].clone();
    doc_route["properties"]["plugins"] = json!({"type": ["array", "null"], "items": {"type": "object"},
        "description": "plugins scoped to this route (name, config, consumer by username, enabled, tags)"});
    schemas["DocumentRoute"] = doc_route;

    let mut paths = serde_json::Map::new();
    for (collection, spec, object) in ENTITIES {
        paths::entity(&mut paths, collection, spec, object);
    }
    paths::other(&mut paths);
    route_match::path(&mut paths);
    paths::history(&mut paths);
    paths::credentials(&mut paths);

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Turnpike admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Configuration of the Turnpike gateway. Every write is one new config version \
                (X-Turnpike-Config-Version), streamed to the data planes. Errors are RFC 9457 problem+json.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "servers": [{"url": "/"}],
        "security": [{"adminToken": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "An admin or read-only token"}
            },
            "responses": problem_responses(),
        }
    })
}

/// Schemas of types that are shaped at the edge (generic wrappers, problem).
fn handwritten_schemas() -> Value {
    let mut out = json!({
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}
            }
        },
        "AuditLog": list_of("AuditEntry", "string"),
        "TokenList": list_of("TokenInfo", "null"),
    });
    for (_, _, object) in ENTITIES {
        out[format!("{object}List")] = list_of(object, "string");
    }
    schemas::history(&mut out);
    schemas::credentials(&mut out);
    route_match::schemas(&mut out);
    out
}

/// What the API answers for an entity: its spec (as stored, so no field is
/// optional any more) plus id and timestamps. Built from the spec's schema
/// rather than `allOf` it, because the spec forbids unknown properties.
fn object_schema(spec: &Value) -> Value {
    let mut object = spec.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("additionalProperties");
        // Every field is answered, except the optional ones left out when
        // unset (`hash_on`, `tls`...): their schemas admit null.
        let props: Vec<String> = map
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .filter(|(_, s)| !admits_null(s))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut required: Vec<Value> = props.into_iter().map(Value::String).collect();
        required.extend(["id", "created_at", "updated_at"].map(|k| Value::String(k.to_owned())));
        map.insert("required".into(), Value::Array(required));
        if let Some(p) = map.get_mut("properties").and_then(Value::as_object_mut) {
            p.insert("id".into(), json!({"type": "string", "format": "uuid"}));
            p.insert(
                "created_at".into(),
                json!({"type": "string", "format": "date-time"}),
            );
            p.insert(
                "updated_at".into(),
                json!({"type": "string", "format": "date-time"}),
            );
        }
    }
    object
}

/// Whether a property's schema allows `null` (an `Option` field).
fn admits_null(schema: &Value) -> bool {
    let is_null = |v: &Value| v == "null" || v.get("type").is_some_and(|t| t == "null");
    schema
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x == "null"))
        || ["oneOf", "anyOf"].iter().any(|k| {
            schema
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(is_null))
        })
}

/// A JSON merge patch of a spec: any subset of its fields, `null` removing
/// one (it takes its default again), nested objects patched the same way
/// (RFC 7396). Adds `<Name>Patch` schemas for the nested objects it meets.
fn patch_schema(schemas: &mut Value, name: &str) -> String {
    let patch_name = format!("{name}Patch");
    if !schemas[&patch_name].is_null() {
        return patch_name;
    }
    let mut patch = schemas[name].clone();
    schemas[&patch_name] = json!({}); // reserve: nested types may recurse
    if let Some(map) = patch.as_object_mut() {
        map.remove("required");
        map.insert(
            "description".into(),
            json!(format!("RFC 7396 merge patch of {name}")),
        );
        if let Some(props) = map.get_mut("properties").and_then(Value::as_object_mut) {
            for prop in props.values_mut() {
                let nested =
                    referenced(prop).filter(|n| schemas[n.as_str()]["properties"].is_object());
                let inner = match nested {
                    Some(n) => {
                        json!({"$ref": format!("#/components/schemas/{}", patch_schema(schemas, &n))})
                    }
                    None => prop.take(),
                };
                *prop = json!({"anyOf": [inner, {"type": "null"}]});
            }
        }
    }
    schemas[&patch_name] = patch;
    patch_name
}

/// The component a property refers to, directly or through `allOf`.
fn referenced(prop: &Value) -> Option<String> {
    // A plain reference, an `allOf` wrapper, or an `Option`'s
    // `oneOf: [null, {$ref}]`.
    let in_list = |key: &str| {
        prop[key]
            .as_array()
            .and_then(|v| v.iter().find_map(|s| s["$ref"].as_str()))
    };
    let r = prop["$ref"]
        .as_str()
        .or_else(|| prop["allOf"][0]["$ref"].as_str())
        .or_else(|| in_list("oneOf"))
        .or_else(|| in_list("anyOf"))?;
    r.strip_prefix("#/components/schemas/").map(str::to_owned)
}

fn list_of(item: &str, cursor: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next": {"type": [cursor, "null"], "description": "cursor for the next page (`after=`), null on the last"}
        }
    })
}

fn problem_responses() -> Value {
    let mut out = serde_json::Map::new();
    for (code, text) in [
        ("400", "Invalid input; `errors` lists every failing field"),
        ("401", "Missing or invalid token"),
        ("403", "A read-only token tried to write"),
        ("404", "No such object"),
        ("409", "Name taken, or still referenced"),
        ("412", "If-Match does not match the current ETag"),
        ("413", "Body too large"),
        ("415", "Body is not JSON"),
        ("503", "Database unavailable"),
    ] {
        out.insert(
            code.to_owned(),
            json!({
                "description": text,
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_not_required_in_answers() {
        let doc = document();
        let required = &doc["components"]["schemas"]["Upstream"]["required"];
        let required: Vec<&str> = required
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(required.contains(&"name") && required.contains(&"health_checks"));
        for optional in ["hash_on", "tls", "circuit_breaker"] {
            assert!(!required.contains(&optional), "{optional}: {required:?}");
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let mut missing = Vec::new();
        for part in text.split("\"$ref\":\"").skip(1) {
            let r = &part[..part.find('"').unwrap()];
            let path: Vec<&str> = r.trim_start_matches("#/").split('/').collect();
            let mut node = &doc;
            for p in &path {
                node = &node[*p];
            }
            if node.is_null() {
                missing.push(r.to_owned());
            }
        }
        assert!(missing.is_empty(), "dangling refs: {missing:?}");
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["UpstreamSpec"]["additionalProperties"], false);
        assert!(schemas["Upstream"].get("additionalProperties").is_none());
        assert!(
            schemas["Route"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("id"))
        );
    }
}
