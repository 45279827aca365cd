//! Retries end to end: an idempotent request that fails before any
//! response (connection refused, or closed after the request arrived) is
//! tried on another target; a POST never is, so it is never duplicated.

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Http, assert_status, drop_database, free_port,
    fresh_database_url,
};

struct Db(String);

impl Drop for Db {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// An upstream over `targets` and a route to it for paths under `path`.
async fn upstream(
    cp: &ControlPlane,
    name: &str,
    path: &str,
    targets: &[&str],
    retries: u32,
) -> u64 {
    let targets: Vec<_> = targets.iter().map(|a| json!({"address": a})).collect();
    let u = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": name, "targets": targets, "retries": retries})),
        )
        .await;
    assert_status(&u, StatusCode::CREATED);
    let r = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": name, "paths": [path], "upstream": name})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    r.version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_retried_on_a_refused_connection_post_is_not() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let live = CountingUpstream::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    upstream(&cp, "once", "/once", &[&dead, &live.addr], 0).await;
    let v = upstream(&cp, "pair", "/pair", &[&dead, &live.addr], 1).await;
    dp.wait_for_version(v).await;
    let http = Http::default();

    // Every GET that lands on the dead target is retried on the live one.
    // (Eight: within the retry budget's floor of ten, since without
    // passive health checks the dead target keeps getting first attempts.)
    for i in 0..8 {
        let a = dp.get(&format!("/pair/get-{i}")).await;
        assert_status(&a, StatusCode::OK);
    }
    assert_eq!(live.matching("/pair/get-").len(), 8);

    // The same upstream without retries shows what was hidden.
    let failed = futures_count(&dp, "/once/get", 20).await;
    assert!(failed >= 5, "{failed} of 20 GETs failed without retries");

    // POSTs are never retried: those sent to the dead target fail, and
    // each one that arrived, arrived once.
    let mut bad_gateway = 0;
    for i in 0..20 {
        let a = http
            .send(
                Method::POST,
                &format!("{}/pair/post-{i}", dp.proxy),
                &[],
                Some(json!({"n": i})),
            )
            .await
            .unwrap();
        match a.status {
            StatusCode::OK => {}
            StatusCode::BAD_GATEWAY => bad_gateway += 1,
            s => panic!("POST {i}: {s}"),
        }
    }
    assert!(bad_gateway >= 5, "only {bad_gateway} of 20 POSTs failed");
    assert_eq!(live.matching("/pair/post-").len(), 20 - bad_gateway);
}

/// Counts non-200 answers of `n` GETs.
async fn futures_count(dp: &DataPlane, path: &str, n: usize) -> usize {
    let mut failed = 0;
    for i in 0..n {
        if dp.get(&format!("{path}-{i}")).await.status != StatusCode::OK {
            failed += 1;
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_before_the_response_retries_get_once_and_never_post() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let a = CountingUpstream::start().await;
    let b = CountingUpstream::start().await;
    let v = upstream(&cp, "hang", "/bad-response/hang-up", &[&a.addr, &b.addr], 3).await;
    dp.wait_for_version(v).await;
    let http = Http::default();

    // Both targets hang up on this path: the GET goes to each target once
    // (never twice to the same one), then fails with 502.
    let got = dp.get("/bad-response/hang-up/get").await;
    assert_status(&got, StatusCode::BAD_GATEWAY);
    let seen = a.matching("/hang-up/get").len() + b.matching("/hang-up/get").len();
    assert_eq!(seen, 2, "the GET reached the targets {seen} times");

    // A POST that reached a target is not sent again.
    let post = http
        .send(
            Method::POST,
            &format!("{}/bad-response/hang-up/post", dp.proxy),
            &[],
            Some(json!({"once": true})),
        )
        .await
        .unwrap();
    assert_status(&post, StatusCode::BAD_GATEWAY);
    let seen = a.matching("/hang-up/post").len() + b.matching("/hang-up/post").len();
    assert_eq!(seen, 1, "the POST reached the targets {seen} times");
}
