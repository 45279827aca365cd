//! Policies end to end, through a real control plane and data plane:
//! key-auth identifies the consumer (header or query, unknown keys 401,
//! credentials hidden from the upstream when asked), the upstream learns
//! who it is (`X-Consumer-*`, never taken from the client), and acl allows
//! or denies by group. A plugin this data plane cannot enforce (a rate
//! limit counted in Redis, on a data plane started without `--redis-url`)
//! is refused (NACK), and the last good config keeps serving.

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
};

async fn created(cp: &ControlPlane, path: &str, body: serde_json::Value) -> u64 {
    let a = cp.api(Method::POST, path, Some(body)).await;
    assert_status(&a, StatusCode::CREATED);
    a.version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_and_acl() {
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
    created(
        &cp,
        "/routes",
        json!({"name": "open", "paths": ["/open"], "upstream": "u"}),
    )
    .await;
    created(
        &cp,
        "/routes",
        json!({"name": "gold", "paths": ["/gold"], "upstream": "u"}),
    )
    .await;
    created(
        &cp,
        "/consumers",
        json!({"username": "alice", "groups": ["gold"]}),
    )
    .await;
    created(
        &cp,
        "/consumers",
        json!({"username": "bob", "groups": ["free"]}),
    )
    .await;
    let alice_key = "alice-key-0123456789abcdef";
    let bob_key = "bob-key-0123456789abcdef";
    created(
        &cp,
        "/consumers/alice/credentials",
        json!({"type": "key-auth", "key": alice_key}),
    )
    .await;
    created(
        &cp,
        "/consumers/bob/credentials",
        json!({"type": "key-auth", "key": bob_key}),
    )
    .await;
    // key-auth everywhere (global), acl on the gold route only.
    created(
        &cp,
        "/plugins",
        json!({"name": "key-auth", "config": {"key_names": ["x-api-key", "apikey"], "hide_credentials": true}}),
    )
    .await;
    let v = created(
        &cp,
        "/plugins",
        json!({"name": "acl", "route": "gold", "config": {"allow": ["gold"]}}),
    )
    .await;
    dp.wait_for_version(v).await;
    let http = Http::default();
    let get = |path: &str, headers: Vec<(&'static str, String)>| {
        let url = format!("{}{path}", dp.proxy);
        let http = http.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http.send(Method::GET, &url, &h, None).await.unwrap()
        }
    };

    // No key, a wrong key: 401 with a challenge; nothing reaches the upstream.
    let none = get("/open/none", vec![]).await;
    assert_status(&none, StatusCode::UNAUTHORIZED);
    assert!(none.headers.get("www-authenticate").is_some());
    let wrong = get(
        "/open/wrong",
        vec![("x-api-key", "nope-nope-nope-nope".into())],
    )
    .await;
    assert_status(&wrong, StatusCode::UNAUTHORIZED);
    assert!(up.matching("/open/").is_empty());

    // A good key in a header: the upstream learns the consumer, not the key,
    // and a forged X-Consumer-Username from the client is replaced.
    let ok = get(
        "/open/header",
        vec![
            ("x-api-key", alice_key.into()),
            ("x-consumer-username", "mallory".into()),
        ],
    )
    .await;
    assert_status(&ok, StatusCode::OK);
    let seen = &up.matching("/open/header")[0];
    assert_eq!(seen.header("x-consumer-username"), Some("alice"));
    assert!(seen.header("x-consumer-id").is_some());
    assert_eq!(seen.header("x-api-key"), None, "hide_credentials");

    // In the query, under the second name: removed from the query upstream.
    let ok = get(&format!("/open/query?a=1&apikey={bob_key}&b=2"), vec![]).await;
    assert_status(&ok, StatusCode::OK);
    let seen = &up.matching("/open/query")[0];
    assert_eq!(seen.target, "/open/query?a=1&b=2");
    assert_eq!(seen.header("x-consumer-username"), Some("bob"));

    // acl: alice (gold) passes, bob (free) gets 403, none gets 401 first.
    assert_status(
        &get("/gold/a", vec![("x-api-key", alice_key.into())]).await,
        StatusCode::OK,
    );
    assert_status(
        &get("/gold/b", vec![("x-api-key", bob_key.into())]).await,
        StatusCode::FORBIDDEN,
    );
    assert_status(&get("/gold/c", vec![]).await, StatusCode::UNAUTHORIZED);
    assert!(up.matching("/gold/b").is_empty());

    // key-auth + acl + rate-limit on one route: 3 per minute per consumer.
    // alice used one already; two more pass, the next is 429 with the
    // rate-limit headers, and nothing of it reaches the upstream.
    let limited = created(
        &cp,
        "/plugins",
        json!({"name": "rate-limit", "route": "gold", "config": {"limit": 3, "per": "minute", "key": "consumer"}}),
    )
    .await;
    dp.wait_for_version(limited).await;
    for i in 0..3 {
        let a = get(
            &format!("/gold/rl-{i}"),
            vec![("x-api-key", alice_key.into())],
        )
        .await;
        assert_status(&a, StatusCode::OK);
        assert_eq!(a.headers["ratelimit-limit"], "3");
    }
    let over = get("/gold/rl-over", vec![("x-api-key", alice_key.into())]).await;
    assert_status(&over, StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers.get("retry-after").is_some());
    assert_eq!(over.headers["ratelimit-remaining"], "0");
    assert!(up.matching("/gold/rl-over").is_empty());
    // The limit is per consumer, and acl still comes first for bob.
    assert_status(
        &get("/gold/rl-bob", vec![("x-api-key", bob_key.into())]).await,
        StatusCode::FORBIDDEN,
    );

    // Every refusal so far, counted by plugin in /metrics.
    let text = http
        .get(&format!("{}/metrics", dp.status))
        .await
        .unwrap()
        .body;
    let metrics =
        turnpike_tests::prometheus::Exposition::parse(std::str::from_utf8(&text).unwrap());
    let refused = |plugin: &str| {
        metrics.value(
            "turnpike_policy_rejections_total",
            &[("plugin", plugin), ("status", "4xx")],
        )
    };
    assert_eq!(refused("key-auth"), 3.0, "no key, a wrong key, no key");
    assert_eq!(refused("acl"), 2.0);
    assert_eq!(refused("rate-limit"), 1.0);

    // A plugin this data plane cannot enforce (a Redis rate limit, and it
    // was started without --redis-url): NACKed, and the previous version
    // keeps serving with its policies.
    let bad = cp
        .api(
            Method::POST,
            "/plugins",
            Some(
                json!({"name": "rate-limit", "route": "open", "config": {"limit": 100, "policy": "redis"}}),
            ),
        )
        .await;
    assert_status(&bad, StatusCode::CREATED);
    let refused = bad.version();
    turnpike_tests::wait_for("the NACK", std::time::Duration::from_secs(10), || async {
        let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
        let node = &fleet["items"][0];
        node["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate-limit") && e.contains("--redis-url"))
            .then_some(())
    })
    .await;
    assert_eq!(dp.status().await.unwrap()["config_version"], limited);
    assert!(refused > limited);
    assert_status(&get("/open/after", vec![]).await, StatusCode::UNAUTHORIZED);
}
