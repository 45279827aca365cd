use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::*;
use crate::policy::CompiledConsumers;

fn transformer(config: serde_json::Value) -> RequestTransformer {
    RequestTransformer::new(serde_json::from_value(config).unwrap()).unwrap()
}

/// Runs the head hook on a request to `uri` with `headers`.
fn run(
    t: &RequestTransformer,
    uri: &str,
    headers: &[(&'static str, &str)],
) -> http::request::Parts {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.uri = uri.parse().unwrap();
    for (k, v) in headers {
        parts.headers.append(*k, HeaderValue::from_str(v).unwrap());
    }
    let consumers = CompiledConsumers::default();
    let mut ctx = RequestCtx {
        parts: &mut parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers: &consumers,
        consumer: None,
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    assert!(matches!(t.on_request(&mut ctx), Flow::Continue));
    parts
}

fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[test]
fn headers_remove_rename_replace_add_in_that_order() {
    let t = transformer(json!({
        "remove": {"headers": ["x-debug", "x-gone"]},
        "rename": {"headers": {"x-old": "x-new", "x-gone": "x-never"}},
        "replace": {"headers": {"x-new": "replaced", "user-agent": "turnpike", "x-missing": "no"}},
        "add": {"headers": {"x-env": "prod", "user-agent": "not added", "x-gone": "back"}}
    }));
    let parts = run(
        &t,
        "/a",
        &[
            ("x-debug", "1"),
            ("x-old", "a"),
            ("x-old", "b"),
            ("x-new", "was here"),
            ("user-agent", "curl"),
            ("x-gone", "1"),
        ],
    );
    let h = &parts.headers;
    assert!(h.get("x-debug").is_none());
    assert!(h.get("x-old").is_none());
    // Renamed (both values, the old x-new replaced), then replaced.
    assert_eq!(values(h, "x-new"), ["replaced"]);
    assert_eq!(values(h, "user-agent"), ["turnpike"]);
    assert!(h.get("x-missing").is_none(), "replace only what is there");
    assert_eq!(values(h, "x-env"), ["prod"]);
    // Removed first, so add (only what is absent) puts it back.
    assert_eq!(values(h, "x-gone"), ["back"]);
    assert!(h.get("x-never").is_none());

    let t = transformer(json!({"rename": {"headers": {"x-old": "x-new"}}}));
    let parts = run(&t, "/", &[("x-old", "a"), ("x-old", "b")]);
    assert_eq!(values(&parts.headers, "x-new"), ["a", "b"]);
}

#[test]
fn query_parameters() {
    let t = transformer(json!({
        "remove": {"querystring": ["debug"]},
        "rename": {"querystring": {"q": "search", "page size": "limit"}},
        "replace": {"querystring": {"lang": "en"}},
        "add": {"querystring": {"src": "gw & co", "lang": "not added"}}
    }));
    let parts = run(
        &t,
        "/s?q=a%20b&debug=1&lang=fr&page+size=10&keep=%7Ex&debug",
        &[],
    );
    assert_eq!(parts.uri.path(), "/s");
    assert_eq!(
        parts.uri.query(),
        Some("search=a%20b&lang=en&limit=10&keep=%7Ex&src=gw+%26+co")
    );

    // Nothing to do: the query is left exactly as sent.
    let t = transformer(json!({"remove": {"querystring": ["debug"]}}));
    let parts = run(&t, "/s?keep=%7e&x", &[]);
    assert_eq!(parts.uri.query(), Some("keep=%7e&x"));
    // Everything removed: no `?` left.
    let t = transformer(json!({"remove": {"querystring": ["a"]}}));
    let parts = run(&t, "/p?a=1&a=2", &[]);
    assert_eq!(parts.uri.to_string(), "/p");
    // Added to a request without a query.
    let t = transformer(json!({"add": {"querystring": {"v": "2"}}}));
    assert_eq!(run(&t, "/p", &[]).uri.to_string(), "/p?v=2");
}

#[test]
fn json_fields_of_json_bodies_only() {
    let t = transformer(json!({
        "remove": {"json": ["password"]},
        "rename": {"json": {"user": "username"}},
        "replace": {"json": {"role": "guest"}},
        "add": {"json": {"tenant": "acme", "role": "admin", "tags": [1, {"a": null}]}}
    }));
    assert!(t.headers.remove.is_empty());
    let body = t.request_body().expect("JSON operations");
    let mut h = HeaderMap::new();
    assert!(!body.wants(&h), "no Content-Type");
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    assert!(!body.wants(&h));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    assert!(body.wants(&h));
    let out = body
        .rewrite(
            &mut h,
            br#"{"user":"ana","password":"x","role":"admin","n":1.5,"s":"\u00e9\"<"}"#,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"username":"ana","role":"guest","n":1.5,"s":"é\"<","tags":[1,{"a":null}],"tenant":"acme"}"#
    );
    // Invalid JSON, or JSON that is not an object: untouched.
    assert_eq!(body.rewrite(&mut h, b"{\"user\":").unwrap(), None);
    assert_eq!(body.rewrite(&mut h, b"[1]").unwrap(), None);
    // Header and query operations only: bodies are never read.
    let t = transformer(json!({"add": {"headers": {"x-a": "1"}}}));
    assert!(t.request_body().is_none());
}

#[test]
fn gateway_headers_are_refused_at_compile() {
    for config in [
        json!({"add": {"headers": {"Host": "evil"}}}),
        json!({"replace": {"headers": {"x-consumer-id": "1"}}}),
        json!({"rename": {"headers": {"x-api-key": "X-Consumer-Username"}}}),
        json!({"rename": {"headers": {"content-length": "x-a"}}}),
        json!({"remove": {"headers": ["upgrade"]}}),
    ] {
        let c = serde_json::from_value(config.clone()).unwrap();
        let e = RequestTransformer::new(c).err();
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("managed by the gateway")),
            "{config}: {e:?}"
        );
    }
    // A value the control plane would have refused.
    let c = serde_json::from_value(json!({"add": {"headers": {"x-a": "line\nbreak"}}})).unwrap();
    assert!(RequestTransformer::new(c).is_err());
}
