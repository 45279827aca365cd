//! Access and limit policies end to end, through a real control plane and
//! data plane: basic-auth (good, wrong, missing credentials; the password
//! hidden from the upstream), ip-restriction (the test's own 127.0.0.1
//! denied, then allowed by a config change), request-size-limit (413 over
//! the route's limit, declared or streamed; 200 under it) and cors
//! (preflights answered by the gateway with an empty 204 and never
//! forwarded, allowed origins on actual answers and on the refusals of the
//! policies after cors, other origins refused at preflight).

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::raw::{RawConn, Read};
use turnpike_tests::{
    Answer, ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
};

async fn created(cp: &ControlPlane, path: &str, body: serde_json::Value) -> u64 {
    let a = cp.api(Method::POST, path, Some(body)).await;
    assert_status(&a, StatusCode::CREATED);
    a.version()
}

const PASSWORD: &str = "correct horse battery staple";
const APP: &str = "https://app.example.com";

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

struct Client {
    http: Http,
    proxy: String,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Answer {
        let url = format!("{}{path}", self.proxy);
        self.http.send(method, &url, headers, body).await.unwrap()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, headers, None).await
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_ip_restriction_size_limit_and_cors() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = CountingUpstream::start().await;
    created(
        &cp,
        "/upstreams",
        json!({"name": "u", "targets": [{"address": up.addr}]}),
    )
    .await;
    for name in ["basic", "ip", "small", "cors"] {
        created(
            &cp,
            "/routes",
            json!({"name": name, "paths": [format!("/{name}")], "upstream": "u"}),
        )
        .await;
    }
    created(&cp, "/consumers", json!({"username": "alice"})).await;
    created(
        &cp,
        "/consumers/alice/credentials",
        json!({"type": "basic-auth", "username": "alice", "password": PASSWORD}),
    )
    .await;
    let mut v = 0;
    for (route, name, config) in [
        (
            "basic",
            "basic-auth",
            json!({"hide_credentials": true, "realm": "shop"}),
        ),
        ("cors", "basic-auth", json!({})),
        ("ip", "ip-restriction", json!({"deny": ["127.0.0.1/32"]})),
        ("small", "request-size-limit", json!({"max_bytes": 1024})),
        (
            "cors",
            "cors",
            json!({"origins": [APP], "credentials": true, "exposed_headers": ["x-total"], "max_age_s": 600}),
        ),
    ] {
        v = created(
            &cp,
            "/plugins",
            json!({"name": name, "route": route, "config": config}),
        )
        .await;
    }
    let ip_plugin = cp.api(Method::GET, "/plugins?limit=100", None).await.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ip-restriction")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    dp.wait_for_version(v).await;
    let c = Client {
        http: Http::default(),
        proxy: dp.proxy.clone(),
    };
    let good = basic(&format!("alice:{PASSWORD}"));

    // basic-auth: missing → 401 with the realm; wrong → 401; good → the
    // upstream learns the consumer and never sees the password.
    let none = c.get("/basic/none", &[]).await;
    assert_status(&none, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&none, "www-authenticate"),
        Some("Basic realm=\"shop\"")
    );
    let wrong = c
        .get(
            "/basic/wrong",
            &[("authorization", &basic("alice:wrong-password"))],
        )
        .await;
    assert_status(&wrong, StatusCode::UNAUTHORIZED);
    assert!(wrong.json()["message"].is_string());
    assert!(up.matching("/basic/").is_empty());
    for i in 0..3 {
        // The first hashes, the others come from the data plane's cache.
        let path = format!("/basic/ok{i}");
        assert_status(
            &c.get(&path, &[("authorization", &good)]).await,
            StatusCode::OK,
        );
        let seen = &up.matching(&path)[0];
        assert_eq!(seen.header("x-consumer-username"), Some("alice"));
        assert_eq!(seen.header("authorization"), None, "hide_credentials");
    }

    // ip-restriction: the test connects from 127.0.0.1, which is denied...
    let denied = c.get("/ip/a", &[]).await;
    assert_status(&denied, StatusCode::FORBIDDEN);
    assert_eq!(denied.json()["message"], "your IP address is not allowed");
    // ...and an X-Forwarded-For from an untrusted peer changes nothing.
    assert_status(
        &c.get("/ip/b", &[("x-forwarded-for", "203.0.113.9")]).await,
        StatusCode::FORBIDDEN,
    );
    assert!(up.matching("/ip/").is_empty());
    let patched = cp
        .api(
            Method::PATCH,
            &format!("/plugins/{ip_plugin}"),
            Some(json!({"config": {"deny": [], "allow": ["127.0.0.0/8"]}})),
        )
        .await;
    assert_status(&patched, StatusCode::OK);
    dp.wait_for_version(patched.version()).await;
    assert_status(&c.get("/ip/c", &[]).await, StatusCode::OK);
    assert_eq!(up.matching("/ip/").len(), 1);

    // request-size-limit: 1,024 bytes on /small (the data plane has none).
    let big = json!("x".repeat(2000));
    let over = c
        .send(Method::POST, "/small/big", &[], Some(big.clone()))
        .await;
    assert_status(&over, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(up.matching("/small/big").is_empty());
    let under = c
        .send(
            Method::POST,
            "/small/fits",
            &[],
            Some(json!("x".repeat(500))),
        )
        .await;
    assert_status(&under, StatusCode::OK);
    assert_eq!(up.matching("/small/fits")[0].body.len(), 502);
    // Another route keeps no limit.
    assert_status(
        &c.send(Method::POST, "/ip/big", &[], Some(big)).await,
        StatusCode::OK,
    );
    // Streamed (chunked) past the limit: 413 too.
    let addr = dp.proxy.trim_start_matches("http://");
    let mut raw = RawConn::connect(addr).await;
    let chunk = "y".repeat(800);
    let req = format!(
        "POST /small/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    raw.send(req.as_bytes()).await;
    match raw.read().await {
        Read::Response(r) => assert_eq!(r.status, 413),
        Read::Closed => panic!("no answer to a streamed body over the limit"),
    }

    // cors: a preflight is answered by the gateway, before basic-auth asks
    // for credentials (browsers send none), and never reaches the upstream.
    let preflight = c
        .send(
            Method::OPTIONS,
            "/cors/items",
            &[
                ("origin", APP),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
            None,
        )
        .await;
    assert_status(&preflight, StatusCode::NO_CONTENT);
    assert!(preflight.body.is_empty());
    assert_eq!(header(&preflight, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&preflight, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(header(&preflight, "access-control-allow-methods").is_some_and(|m| m.contains("PUT")));
    assert_eq!(
        header(&preflight, "access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(header(&preflight, "access-control-max-age"), Some("600"));
    assert!(up.requests().iter().all(|r| r.method != "OPTIONS"));
    // Another origin: 403, no CORS headers.
    let other = c
        .send(
            Method::OPTIONS,
            "/cors/items",
            &[
                ("origin", "https://evil.example.com"),
                ("access-control-request-method", "GET"),
            ],
            None,
        )
        .await;
    assert_status(&other, StatusCode::FORBIDDEN);
    assert!(header(&other, "access-control-allow-origin").is_none());
    // The actual request: ACAO on the upstream's answer, Vary: Origin...
    let actual = c
        .get("/cors/items", &[("origin", APP), ("authorization", &good)])
        .await;
    assert_status(&actual, StatusCode::OK);
    assert_eq!(header(&actual, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&actual, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        header(&actual, "access-control-expose-headers"),
        Some("x-total")
    );
    assert!(
        actual
            .headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    );
    // ...and on basic-auth's refusal, so the page can read its 401.
    let refused = c.get("/cors/items", &[("origin", APP)]).await;
    assert_status(&refused, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&refused, "access-control-allow-origin"), Some(APP));
    assert_eq!(up.matching("/cors/").len(), 1);

    // The 204 has no body on the wire: the next request on the same
    // connection is read cleanly.
    let mut raw = RawConn::connect(addr).await;
    let preflight = format!(
        "OPTIONS /cors/x HTTP/1.1\r\nhost: x\r\norigin: {APP}\r\naccess-control-request-method: GET\r\n\r\nGET /small/after HTTP/1.1\r\nhost: x\r\n\r\n"
    );
    raw.send(preflight.as_bytes()).await;
    match (raw.read().await, raw.read().await) {
        (Read::Response(a), Read::Response(b)) => {
            assert_eq!(a.status, 204);
            assert!(a.header("content-length").is_none_or(|l| l == "0"));
            assert!(a.header("content-type").is_none());
            assert_eq!(b.status, 200);
        }
        other => panic!("two answers expected: {other:?}"),
    }
}
