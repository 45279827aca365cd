use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use turnpike_model::{Plugin, PluginSpec};

use super::*;

fn plugin(name: &str, route: &str, config: serde_json::Value) -> Plugin {
    Plugin {
        id: Uuid::now_v7(),
        spec: PluginSpec {
            name: name.into(),
            config,
            route: Some(route.into()),
            consumer: None,
            enabled: true,
            tags: vec![],
        },
    }
}

/// Each rewrite that wants the body as the earlier ones left it.
fn rewrite<'a>(
    rewrites: impl Iterator<Item = &'a dyn BodyRewrite>,
    content_type: &'static str,
    body: &str,
) -> (String, HeaderMap) {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let mut body = body.as_bytes().to_vec();
    for r in rewrites {
        if r.wants(&h)
            && let Some(new) = r.rewrite(&mut h, &body).unwrap()
        {
            body = new;
        }
    }
    (String::from_utf8(body).unwrap(), h)
}

#[test]
fn body_rewrites_only_where_configured_and_in_chain_order() {
    let snapshot = Snapshot {
        plugins: vec![
            plugin(
                "json-xml",
                "a",
                json!({"request": "json_to_xml", "response": "xml_to_json"}),
            ),
            plugin(
                "request-transformer",
                "a",
                json!({"add": {"json": {"x": 1}}}),
            ),
            plugin(
                "response-transformer",
                "a",
                json!({"add": {"json": {"y": 2}}}),
            ),
            plugin(
                "request-transformer",
                "b",
                json!({"add": {"headers": {"x-b": "1"}}}),
            ),
        ],
        ..Snapshot::default()
    };
    let routes = HashMap::from([("a".into(), 0), ("b".into(), 1), ("c".into(), 2)]);
    let p = CompiledPolicies::build(&snapshot, &routes, 3).unwrap();
    assert!(p.rewrites_request_body(0) && p.rewrites_response_body(0));
    for route in [1, 2] {
        assert!(!p.rewrites_request_body(route) && !p.rewrites_response_body(route));
    }
    // Requests: the transformer's field (800), then the conversion (700).
    let (xml, h) = rewrite(
        p.request_bodies(0, None),
        "application/json",
        r#"{"a":"1"}"#,
    );
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><root><a>1</a><x>1</x></root>"#
    );
    assert_eq!(h[CONTENT_TYPE], "application/xml");
    // Responses: response-transformer (response phase) first; the XML it
    // does not want is then converted.
    let (json, h) = rewrite(
        p.response_bodies(0, None),
        "application/xml",
        "<r><a>1</a></r>",
    );
    assert_eq!(json, r#"{"a":"1"}"#);
    assert_eq!(h[CONTENT_TYPE], "application/json");
    let (json, _) = rewrite(
        p.response_bodies(0, None),
        "application/json",
        r#"{"a":"1"}"#,
    );
    assert_eq!(json, r#"{"a":"1","y":2}"#);
}
