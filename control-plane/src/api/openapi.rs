//! The OpenAPI 3.1 document of the admin API, served at
//! `/api/v1/openapi.json`. Schemas come from the types themselves (utoipa
//! derives on the specs and views); operations are generated from the same
//! entity list the router uses, so a new entity is documented by the line
//! that routes it.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Value, json};
use turnpike_model::{Algorithm, FieldError, RouteSpec, Target, Timeouts, UpstreamSpec};
use utoipa::openapi::{ComponentsBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::admin::{CreatedToken, NewToken, Role};
use super::cluster_view::{DataPlaneView, DataPlanes};
use super::input::MAX_LIMIT;
use crate::store::{AuditEntry, TokenInfo, VersionInfo};

/// Entities with full CRUD: (collection path, spec schema, object schema).
pub const ENTITIES: [(&str, &str, &str); 2] = [
    ("upstreams", "UpstreamSpec", "Upstream"),
    ("routes", "RouteSpec", "Route"),
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
        schema::<Target>(),
        schema::<Timeouts>(),
        schema::<Algorithm>(),
        schema::<FieldError>(),
        schema::<VersionInfo>(),
        schema::<DataPlaneView>(),
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
    }
    let extra = handwritten_schemas();
    for (k, v) in extra.as_object().expect("object") {
        schemas[k] = v.clone();
    }

    let mut paths = serde_json::Map::new();
    for (collection, spec, object) in ENTITIES {
        entity_paths(&mut paths, collection, spec, object);
    }
    other_paths(&mut paths);

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
        "MergePatch": {"type": "object", "description": "RFC 7396 JSON merge patch of the spec"}
    });
    for (_, _, object) in ENTITIES {
        out[format!("{object}List")] = list_of(object, "string");
    }
    out
}

/// What the API answers for an entity: its spec (as stored, so no field is
/// optional any more) plus id and timestamps. Built from the spec's schema
/// rather than `allOf` it, because the spec forbids unknown properties.
fn object_schema(spec: &Value) -> Value {
    let mut object = spec.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("additionalProperties");
        let props: Vec<String> = map
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
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

fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            (*c).to_owned(),
            json!({"$ref": format!("#/components/responses/{c}")}),
        );
    }
    m
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok(
    code: &str,
    description: &str,
    schema: &str,
    mut errs: serde_json::Map<String, Value>,
    write: bool,
) -> Value {
    let mut resp = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    });
    if write {
        resp["headers"] = json!({
            "X-Turnpike-Config-Version": {"schema": {"type": "integer"}, "description": "the config version this write produced"},
            "ETag": {"schema": {"type": "string"}}
        });
    }
    errs.insert(code.to_owned(), resp);
    Value::Object(errs)
}

fn op(id: &str, tag: &str, summary: &str, responses: Value) -> Value {
    json!({"operationId": id, "tags": [tag], "summary": summary, "responses": responses})
}

fn entity_paths(
    paths: &mut serde_json::Map<String, Value>,
    collection: &str,
    spec: &str,
    object: &str,
) {
    let key = json!({"name": "key", "in": "path", "required": true, "description": "id or name", "schema": {"type": "string"}});
    let if_match = json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"},
        "description": "ETag from a previous read; the write fails with 412 if the object changed since"});
    let list_params = json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}},
        {"name": "after", "in": "query", "schema": {"type": "string", "format": "uuid"}, "description": "`next` of the previous page"},
        {"name": "tags", "in": "query", "schema": {"type": "string"}, "description": "comma-separated; objects carrying all of them"}
    ]);

    let mut list = op(
        &format!("list-{collection}"),
        collection,
        &format!("List {collection}"),
        ok(
            "200",
            "A page",
            &format!("{object}List"),
            errors(&["400", "401", "503"]),
            false,
        ),
    );
    list["parameters"] = list_params;
    let mut create = op(
        &format!("create-{collection}"),
        collection,
        &format!("Create one of {collection}"),
        ok(
            "201",
            "Created",
            object,
            errors(&["400", "401", "403", "409", "413", "415", "503"]),
            true,
        ),
    );
    create["requestBody"] = json_body(spec);
    paths.insert(
        format!("/api/v1/{collection}"),
        json!({"get": list, "post": create}),
    );

    let get = op(
        &format!("get-{collection}"),
        collection,
        "Read one by id or name",
        ok(
            "200",
            "The object",
            object,
            errors(&["401", "404", "503"]),
            false,
        ),
    );
    let mut put = op(
        &format!("replace-{collection}"),
        collection,
        "Replace the whole spec",
        ok(
            "200",
            "Replaced",
            object,
            errors(&[
                "400", "401", "403", "404", "409", "412", "413", "415", "503",
            ]),
            true,
        ),
    );
    put["requestBody"] = json_body(spec);
    put["parameters"] = json!([if_match]);
    let mut patch = op(
        &format!("update-{collection}"),
        collection,
        "Merge-patch the spec (RFC 7396)",
        ok(
            "200",
            "Updated",
            object,
            errors(&[
                "400", "401", "403", "404", "409", "412", "413", "415", "503",
            ]),
            true,
        ),
    );
    patch["requestBody"] = json_body("MergePatch");
    patch["parameters"] = json!([if_match]);
    let mut responses = errors(&["401", "403", "404", "409", "412", "503"]);
    responses.insert(
        "204".into(),
        json!({"description": "Deleted", "headers": {"X-Turnpike-Config-Version": {"schema": {"type": "integer"}}}}),
    );
    let mut delete = op(
        &format!("delete-{collection}"),
        collection,
        "Delete",
        Value::Object(responses),
    );
    delete["parameters"] = json!([if_match]);
    paths.insert(
        format!("/api/v1/{collection}/{{key}}"),
        json!({"parameters": [key], "get": get, "put": put, "patch": patch, "delete": delete}),
    );
}

fn other_paths(paths: &mut serde_json::Map<String, Value>) {
    paths.insert(
        "/api/v1/config".into(),
        json!({"get": op("get-config", "config", "The current config version", ok("200", "Current version", "VersionInfo", errors(&["401", "503"]), false))}),
    );
    paths.insert(
        "/api/v1/data-planes".into(),
        json!({"get": op("list-data-planes", "cluster", "The fleet: each data plane and the version it runs", ok("200", "The fleet", "DataPlanes", errors(&["401", "503"]), false))}),
    );
    let mut create = op(
        "create-token",
        "tokens",
        "Create an admin token (shown once)",
        ok(
            "201",
            "Created; `token` is shown only here",
            "CreatedToken",
            errors(&["400", "401", "403", "409", "413", "415", "503"]),
            false,
        ),
    );
    create["requestBody"] = json_body("NewToken");
    paths.insert(
        "/api/v1/tokens".into(),
        json!({"get": op("list-tokens", "tokens", "List admin tokens (never the tokens themselves)", ok("200", "Tokens", "TokenList", errors(&["401", "503"]), false)), "post": create}),
    );
    let mut responses = errors(&["401", "403", "404", "409", "503"]);
    responses.insert("204".into(), json!({"description": "Deleted"}));
    paths.insert(
        "/api/v1/tokens/{key}".into(),
        json!({
            "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "id or name"}],
            "get": op("get-token", "tokens", "Read a token's name and role", ok("200", "Token", "TokenInfo", errors(&["401", "404", "503"]), false)),
            "delete": op("delete-token", "tokens", "Revoke a token (not the last admin one)", Value::Object(responses))
        }),
    );
    let mut audit = op(
        "audit-log",
        "audit",
        "Who changed what, newest first",
        ok(
            "200",
            "A page",
            "AuditLog",
            errors(&["400", "401", "503"]),
            false,
        ),
    );
    audit["parameters"] = json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
        {"name": "entity", "in": "query", "schema": {"type": "string"}, "description": "upstream, route, token, config, ..."}
    ]);
    paths.insert("/api/v1/audit-log".into(), json!({"get": audit}));
    for (path, id, text) in [
        ("/healthz", "healthz", "The process is alive"),
        ("/readyz", "readyz", "Postgres is reachable"),
    ] {
        paths.insert(
            path.into(),
            json!({"get": {"operationId": id, "tags": ["health"], "summary": text, "security": [],
                "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "503": {"description": "Not ready", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}),
        );
    }
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({"get": {"operationId": "openapi", "tags": ["meta"], "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
