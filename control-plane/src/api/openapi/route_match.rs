//! `GET /api/v1/routes/match` in the OpenAPI document: its parameters and
//! answer (`api::route_match`). The patterns are supersets of what the
//! handler accepts, so a value the document forbids is always refused.

use serde_json::{Value, json};

use super::paths::{errors, ok, op};
use crate::api::route_match::MAX_HEADERS;

pub(super) fn path(paths: &mut serde_json::Map<String, Value>) {
    let mut get = op(
        "match-route",
        "routes",
        "Which route a request would hit in the current config, and which it shadows",
        ok(
            "200",
            "The winning route, and the other matches best first",
            "RouteMatch",
            errors(&["400", "401", "503"]),
            false,
        ),
    );
    get["responses"]["404"] = json!({
        "description": "No route matches the request",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    });
    get["description"] = json!(
        "Runs the data plane's matcher over the current config version. The precedence rule: \
         priority, then host (exact > longer wildcard > none), then path (exact > longer prefix > \
         regex > none), then more method/header conditions, then the older route."
    );
    get["parameters"] = json!([
        {"name": "path", "in": "query", "required": true,
         "description": "the request path as the router sees it (the proxy normalises paths first), without query",
         "schema": {"type": "string", "pattern": "^/[^?#]*$", "examples": ["/users/7"]}},
        {"name": "method", "in": "query",
         "description": "case-sensitive, as on the wire",
         "schema": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "default": "GET"}},
        {"name": "host", "in": "query",
         "description": "the Host header (or HTTP/2 authority); port and case are ignored; absent: no host",
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9._~!$&'()*+,;=:\\[\\]%-]*$", "examples": ["api.example.com"]}},
        {"name": "header", "in": "query", "style": "form", "explode": true,
         "description": "a request header as name:value; repeat for more",
         "schema": {"type": "array", "maxItems": MAX_HEADERS,
                    "items": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+:.*$", "examples": ["x-version: 2"]}}}
    ]);
    paths.insert("/api/v1/routes/match".into(), json!({"get": get}));
}

pub(super) fn schemas(out: &mut Value) {
    let mut matched = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "name", "upstream", "priority", "host", "path", "matched_path", "conditions"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "upstream": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "name"],
                "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}}
            },
            "priority": {"type": "integer"},
            "host": {"description": "the host pattern that matched; null: the route has no hosts", "type": ["string", "null"]},
            "path": {"description": "the path pattern that matched; null: the route has no paths", "type": ["string", "null"]},
            "matched_path": {"type": "string", "description": "the part of the request path the pattern matched (what strip_path removes)"},
            "conditions": {"type": "integer", "minimum": 0, "description": "the route's method and header conditions, counted"}
        }
    });
    out["MatchedRoute"] = matched.clone();
    matched["properties"]["lost_on"] = json!({
        "type": "string",
        "enum": ["priority", "host", "path", "conditions", "age"],
        "description": "the first step of the precedence rule on which the winner beats this route"
    });
    matched["required"]
        .as_array_mut()
        .expect("array")
        .push(json!("lost_on"));
    out["ShadowedRoute"] = matched;
    out["RouteMatch"] = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "route", "shadowed"],
        "properties": {
            "version": {"type": "integer", "minimum": 1, "description": "the config version that answered"},
            "route": {"$ref": "#/components/schemas/MatchedRoute"},
            "shadowed": {"type": "array", "items": {"$ref": "#/components/schemas/ShadowedRoute"},
                         "description": "other routes the request matches, best first"}
        }
    });
}
