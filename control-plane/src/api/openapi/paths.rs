//! The operations of the OpenAPI document: one builder per group of
//! endpoints, each answer and error tied to the schemas in `openapi.rs`.

use serde_json::{Value, json};

use crate::api::input::MAX_LIMIT;

pub(super) fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
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

pub(super) fn ok(
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

pub(super) fn op(id: &str, tag: &str, summary: &str, responses: Value) -> Value {
    json!({"operationId": id, "tags": [tag], "summary": summary, "responses": responses})
}

pub(super) fn entity(
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
        {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$"}, "description": "`next` of the previous page; empty for the first"},
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
    patch["requestBody"] = json_body(&format!("{spec}Patch"));
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

pub(super) fn other(paths: &mut serde_json::Map<String, Value>) {
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
        {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]*$"}},
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
        "/metrics".into(),
        json!({"get": {"operationId": "metrics", "tags": ["health"], "security": [],
            "summary": "Prometheus metrics: admin requests, config builds and pushes, the fleet",
            "responses": {"200": {"description": "OpenMetrics text", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}}),
    );
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({"get": {"operationId": "openapi", "tags": ["meta"], "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}}),
    );
}

/// Config history, diff, rollback, export and import (`api::history`).
pub(super) fn history(paths: &mut serde_json::Map<String, Value>) {
    let version = |name: &str, place: &str| json!({"name": name, "in": place, "required": true, "schema": {"type": "integer", "minimum": 1}});
    let mut list = op(
        "list-config-versions",
        "config",
        "Config versions, newest first",
        ok(
            "200",
            "A page",
            "VersionPage",
            errors(&["400", "401", "503"]),
            false,
        ),
    );
    list["parameters"] = json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
        {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "`next` of the previous page"}
    ]);
    paths.insert("/api/v1/config/versions".into(), json!({"get": list}));
    let mut get = op(
        "get-config-version",
        "config",
        "One version with its content",
        ok(
            "200",
            "The version",
            "VersionDetail",
            errors(&["400", "401", "404", "503"]),
            false,
        ),
    );
    get["parameters"] = json!([version("version", "path")]);
    paths.insert(
        "/api/v1/config/versions/{version}".into(),
        json!({"get": get}),
    );
    let mut diff = op(
        "diff-config",
        "config",
        "Entity-level diff between two versions",
        ok(
            "200",
            "The diff",
            "ConfigDiff",
            errors(&["400", "401", "404", "503"]),
            false,
        ),
    );
    diff["parameters"] = json!([version("from", "query"), version("to", "query")]);
    paths.insert("/api/v1/config/diff".into(), json!({"get": diff}));
    let mut rollback = op(
        "rollback-config",
        "config",
        "A new version with an old version's content",
        ok(
            "200",
            "Applied (no new version if nothing changes)",
            "Applied",
            errors(&["400", "401", "403", "404", "413", "415", "503"]),
            true,
        ),
    );
    rollback["requestBody"] = json_body("RollbackRequest");
    paths.insert("/api/v1/config/rollback".into(), json!({"post": rollback}));
    let mut export = op(
        "export-config",
        "config",
        "The current config as a declarative document",
        ok(
            "200",
            "The document",
            "Document",
            errors(&["400", "401", "503"]),
            false,
        ),
    );
    export["responses"]["200"]["content"]["application/yaml"] =
        json!({"schema": {"$ref": "#/components/schemas/Document"}});
    export["parameters"] = json!([{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "yaml"]}}]);
    paths.insert("/api/v1/config/export".into(), json!({"get": export}));
    let mut import = op(
        "import-config",
        "config",
        "Replace the whole config atomically (one version), or dry-run",
        ok(
            "200",
            "The diff, and the version now current",
            "Applied",
            errors(&["400", "401", "403", "413", "415", "503"]),
            true,
        ),
    );
    import["parameters"] = json!([{"name": "dry_run", "in": "query", "schema": {"type": "boolean", "default": false}}]);
    import["requestBody"] = json!({"required": true, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Document"}},
        "application/yaml": {"schema": {"$ref": "#/components/schemas/Document"}}
    }});
    paths.insert("/api/v1/config/import".into(), json!({"post": import}));
}

/// A consumer's credentials (`api::credentials`): no PUT or PATCH, a secret
/// is rotated by creating the new credential and deleting the old one.
pub(super) fn credentials(paths: &mut serde_json::Map<String, Value>) {
    let tag = "credentials";
    let consumer = json!({"name": "consumer", "in": "path", "required": true, "description": "the consumer's id or username", "schema": {"type": "string"}});
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let mut list = op(
        "list-credentials",
        tag,
        "A consumer's credentials (never their secrets)",
        ok(
            "200",
            "A page",
            "CredentialList",
            errors(&["400", "401", "404", "503"]),
            false,
        ),
    );
    list["parameters"] = json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100}},
        {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$"}}
    ]);
    let mut create = op(
        "create-credential",
        tag,
        "Add a credential; a key-auth key is in this response only",
        ok(
            "201",
            "Created",
            "Credential",
            errors(&["400", "401", "403", "404", "409", "413", "415", "503"]),
            true,
        ),
    );
    create["requestBody"] = json_body("CredentialInput");
    paths.insert(
        "/api/v1/consumers/{consumer}/credentials".into(),
        json!({"parameters": [consumer.clone()], "get": list, "post": create}),
    );
    let get = op(
        "get-credential",
        tag,
        "Read one credential",
        ok(
            "200",
            "The credential",
            "Credential",
            errors(&["401", "404", "503"]),
            false,
        ),
    );
    let mut responses = errors(&["401", "403", "404", "412", "503"]);
    responses.insert(
        "204".into(),
        json!({"description": "Deleted", "headers": {"X-Turnpike-Config-Version": {"schema": {"type": "integer"}}}}),
    );
    let mut delete = op(
        "delete-credential",
        tag,
        "Revoke a credential",
        Value::Object(responses),
    );
    delete["parameters"] = json!([{"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"}}]);
    paths.insert(
        "/api/v1/consumers/{consumer}/credentials/{id}".into(),
        json!({"parameters": [consumer, id], "get": get, "delete": delete}),
    );
}
