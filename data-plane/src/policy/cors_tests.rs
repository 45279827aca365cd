use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;
use turnpike_model::{Plugin, PluginSpec, Snapshot};

use super::*;
use crate::policy::{CompiledConsumers, CompiledPolicies};

fn cors(config: serde_json::Value) -> Cors {
    Cors::new(serde_json::from_value(config).unwrap()).unwrap()
}

fn request(method: Method, headers: &[(&'static str, &str)]) -> http::request::Parts {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    for (k, v) in headers {
        parts.headers.append(*k, HeaderValue::from_str(v).unwrap());
    }
    parts
}

/// The policy's decision, and the headers it left for the answer.
fn run(c: &Cors, parts: &mut http::request::Parts) -> (Result<(), Rejection>, HeaderMap) {
    let consumers = CompiledConsumers::default();
    let mut ctx = RequestCtx {
        parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers: &consumers,
        consumer: None,
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    let flow = match c.on_request(&mut ctx) {
        Flow::Continue => Ok(()),
        Flow::Reject(r) => Err(r),
        _ => panic!("cors continues or answers"),
    };
    (flow, ctx.response_headers)
}

fn preflight(origin: &str) -> http::request::Parts {
    request(
        Method::OPTIONS,
        &[
            ("origin", origin),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-token, content-type"),
        ],
    )
}

fn vary(h: &HeaderMap) -> Vec<&str> {
    h.get_all(VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[test]
fn preflight_of_an_allowed_origin_is_answered() {
    let c = cors(json!({
        "origins": ["https://app.example.com", "http://other.example.com:8080"],
        "methods": ["GET", "PUT"],
        "credentials": true,
        "max_age_s": 600,
    }));
    let (flow, extra) = run(&c, &mut preflight("https://App.Example.com"));
    let r = flow.unwrap_err();
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(extra.is_empty());
    let h = &r.headers;
    assert_eq!(
        h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://App.Example.com",
        "echoed"
    );
    assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
    assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "x-token, content-type");
    assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
    assert_eq!(vary(h), ["Origin", "Access-Control-Request-Headers"]);
    assert!(
        run(&c, &mut preflight("http://other.example.com:8080"))
            .0
            .is_err_and(|r| r.status == StatusCode::NO_CONTENT)
    );
}

#[test]
fn preflight_of_another_origin_is_refused_without_cors_headers() {
    let c = cors(json!({"origins": ["https://app.example.com"]}));
    for origin in [
        "https://evil.example.com",
        "http://app.example.com",
        "null",
        "https://app.example.com.evil",
    ] {
        let r = run(&c, &mut preflight(origin)).0.unwrap_err();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
        assert!(r.headers.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}

#[test]
fn any_origin_answers_star_and_configured_headers() {
    let c = cors(json!({"headers": ["x-token"], "exposed_headers": ["x-total", "x-page"]}));
    let r = run(&c, &mut preflight("https://a.example")).0.unwrap_err();
    assert_eq!(r.headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(r.headers[ACCESS_CONTROL_ALLOW_HEADERS], "x-token");
    assert!(r.headers.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    assert!(r.headers.get(VARY).is_none());
    let (flow, extra) = run(
        &c,
        &mut request(Method::GET, &[("origin", "https://a.example")]),
    );
    assert!(flow.is_ok());
    assert_eq!(extra[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(extra[ACCESS_CONTROL_EXPOSE_HEADERS], "x-total, x-page");
}

#[test]
fn actual_requests_get_headers_only_for_allowed_origins() {
    let c = cors(json!({"origins": ["https://app.example.com:443"], "credentials": true}));
    let (flow, extra) = run(
        &c,
        &mut request(Method::POST, &[("origin", "https://app.example.com")]),
    );
    assert!(flow.is_ok());
    assert_eq!(
        extra[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert_eq!(extra[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert!(extra.get(ACCESS_CONTROL_EXPOSE_HEADERS).is_none());
    let (flow, extra) = run(
        &c,
        &mut request(Method::POST, &[("origin", "https://evil.example")]),
    );
    assert!(
        flow.is_ok(),
        "the browser, not the gateway, withholds the answer"
    );
    assert!(extra.is_empty());
    let (flow, extra) = run(&c, &mut request(Method::GET, &[]));
    assert!(flow.is_ok() && extra.is_empty());
    // OPTIONS without Access-Control-Request-Method is no preflight.
    let (flow, _) = run(
        &c,
        &mut request(Method::OPTIONS, &[("origin", "https://app.example.com")]),
    );
    assert!(flow.is_ok());
}

#[test]
fn preflight_continue_forwards_the_preflight() {
    let c = cors(json!({"origins": ["https://app.example.com"], "preflight_continue": true}));
    let (flow, extra) = run(&c, &mut preflight("https://app.example.com"));
    assert!(flow.is_ok());
    assert_eq!(
        extra[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
}

#[test]
fn vary_origin_joins_the_upstreams_vary() {
    let c = cors(json!({"origins": ["https://app.example.com"]}));
    let request = HeaderMap::new();
    let answer = |existing: &[&'static str]| {
        let mut headers = HeaderMap::new();
        for v in existing {
            headers.append(VARY, HeaderValue::from_static(v));
        }
        c.on_response(&mut ResponseCtx {
            status: StatusCode::OK,
            headers: &mut headers,
            request_headers: &request,
        });
        headers
    };
    assert_eq!(vary(&answer(&[])), ["Origin"]);
    assert_eq!(
        vary(&answer(&["Accept-Encoding"])),
        ["Accept-Encoding", "Origin"]
    );
    assert_eq!(
        vary(&answer(&["accept-encoding, ORIGIN"])),
        ["accept-encoding, ORIGIN"]
    );
    assert_eq!(vary(&answer(&["*"])), ["*"]);
    let any = cors(json!({}));
    let mut headers = HeaderMap::new();
    any.on_response(&mut ResponseCtx {
        status: StatusCode::OK,
        headers: &mut headers,
        request_headers: &request,
    });
    assert!(headers.is_empty());
}

/// The chain calls an access-phase policy that `responds` on the answer.
#[test]
fn the_chain_runs_cors_on_the_response() {
    let snapshot = Snapshot {
        plugins: vec![Plugin {
            id: uuid::Uuid::now_v7(),
            spec: PluginSpec {
                name: "cors".into(),
                config: json!({"origins": ["https://app.example.com"], "methods": ["GET"],
                    "headers": [], "exposed_headers": [], "credentials": false,
                    "max_age_s": null, "preflight_continue": false}),
                route: Some("route-a".into()),
                consumer: None,
                enabled: true,
                tags: vec![],
            },
        }],
        ..Snapshot::default()
    };
    let routes = HashMap::from([("route-a".to_owned(), 0), ("route-b".to_owned(), 1)]);
    let policies = CompiledPolicies::build(&snapshot, &routes, 2).unwrap();
    assert!(policies.has_response(0));
    assert!(!policies.has_response(1));
    let mut headers = HeaderMap::new();
    let request = HeaderMap::new();
    policies.run_response(
        0,
        None,
        &mut ResponseCtx {
            status: StatusCode::OK,
            headers: &mut headers,
            request_headers: &request,
        },
    );
    assert_eq!(vary(&headers), ["Origin"]);
}
