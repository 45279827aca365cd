//! Retries end to end: an idempotent request that fails before any
//! response (connection refused, or closed after the request arrived) is
//! tried on another target, its body too when it is small enough to be
//! kept (64 KiB); a POST never is, so it is never duplicated, and a larger
//! body is proxied whole but not retried.

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::prometheus::Exposition;
use turnpike_tests::raw::{RawConn, Read};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, free_port,
    fresh_database_url,
};

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

    // A PUT is sent again to the other target, body and all.
    let body = json!({"name": "a", "size": 3});
    let put = http
        .send(
            Method::PUT,
            &format!("{}/bad-response/hang-up/put", dp.proxy),
            &[],
            Some(body.clone()),
        )
        .await
        .unwrap();
    assert_status(&put, StatusCode::BAD_GATEWAY);
    let seen = [a.matching("/hang-up/put"), b.matching("/hang-up/put")];
    assert_eq!(seen.each_ref().map(Vec::len), [1, 1], "{seen:?}");
    for r in seen.iter().flatten() {
        assert_eq!(r.body, body.to_string().as_bytes());
    }

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

/// `len` bytes that show any loss or reordering.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A PUT with `body`, declared (`content-length`) or chunked in pieces of
/// `chunked` bytes, on a connection of its own. The answer's status, or
/// `None` when the connection closed first: a proxy that answers before
/// reading a large body closes with bytes unread, and the reset that
/// follows may overtake its answer.
async fn put_raw(dp: &DataPlane, path: &str, body: &[u8], chunked: Option<usize>) -> Option<u16> {
    let mut req = format!("PUT {path} HTTP/1.1\r\nhost: t\r\n").into_bytes();
    match chunked {
        None => {
            req.extend(format!("content-length: {}\r\n\r\n", body.len()).bytes());
            req.extend_from_slice(body);
        }
        Some(piece) => {
            req.extend(b"transfer-encoding: chunked\r\n\r\n");
            for p in body.chunks(piece) {
                req.extend(format!("{:x}\r\n", p.len()).bytes());
                req.extend_from_slice(p);
                req.extend(b"\r\n");
            }
            req.extend(b"0\r\n\r\n");
        }
    }
    let mut conn = RawConn::connect(dp.proxy.trim_start_matches("http://")).await;
    conn.send(&req).await;
    match conn.read().await {
        Read::Response(r) => Some(r.status),
        Read::Closed => None,
    }
}

/// Attempts on `target` of `upstream` that failed before any response.
async fn failures(dp: &DataPlane, upstream: &str, target: &str) -> f64 {
    let a = Http::default()
        .get(&format!("{}/metrics", dp.status))
        .await
        .expect("status port reachable");
    Exposition::parse(std::str::from_utf8(&a.body).unwrap()).value(
        "turnpike_upstream_target_failures_total",
        &[("upstream", upstream), ("target", target)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_a_small_body_is_retried_a_post_or_a_large_body_is_not() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let live = CountingUpstream::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let pair = [dead.as_str(), live.addr.as_str()];
    // One upstream per case, so each has its own retry budget (a floor of
    // ten retries, more than any case needs) and its own failure counts.
    for name in ["put", "chunked", "post", "big"] {
        upstream(&cp, name, &format!("/{name}"), &pair, 1).await;
    }
    let v = upstream(&cp, "last", "/last", &pair, 1).await;
    dp.wait_for_version(v).await;
    let http = Http::default();

    // Every PUT with a JSON body succeeds: one that met the refused target
    // was sent again to the live one, which got the whole body, once.
    for i in 0..6 {
        let body = json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b"]});
        let url = format!("{}/put/item-{i}", dp.proxy);
        let a = http.send(Method::PUT, &url, &[], Some(body.clone())).await;
        assert_status(&a.unwrap(), StatusCode::OK);
        let got = live.matching(&format!("/put/item-{i}"));
        assert_eq!(got.len(), 1, "PUT {i} arrived {} times", got.len());
        let body = body.to_string();
        assert_eq!(
            (got[0].method.as_str(), &got[0].body[..]),
            ("PUT", body.as_bytes())
        );
        assert_eq!(
            got[0].header("content-length"),
            Some(&*body.len().to_string())
        );
    }
    assert!(
        failures(&dp, "put", &dead).await >= 1.0,
        "no PUT met the refused target"
    );

    // The same for a chunked body within the bound, sent on with its length.
    let small = pattern(10_000);
    for i in 0..4 {
        let path = format!("/chunked/small-{i}");
        assert_eq!(put_raw(&dp, &path, &small, Some(1000)).await, Some(200));
        let got = live.matching(&path);
        assert_eq!(got.len(), 1, "PUT {i} arrived {} times", got.len());
        assert!(got[0].body == small, "PUT {i}: the body changed on the way");
        assert_eq!(got[0].header("content-length"), Some("10000"));
    }
    assert!(failures(&dp, "chunked", &dead).await >= 1.0);

    // A POST is never sent again: one that met the refused target fails,
    // and the live target never sees it.
    let mut refused = 0;
    for i in 0..6 {
        let body = json!({"id": i});
        let url = format!("{}/post/item-{i}", dp.proxy);
        let a = http.send(Method::POST, &url, &[], Some(body.clone())).await;
        let got = live.matching(&format!("/post/item-{i}"));
        match a.unwrap().status {
            StatusCode::OK => {
                assert_eq!(got.len(), 1, "POST {i} arrived {} times", got.len());
                assert_eq!(got[0].body, body.to_string().as_bytes());
            }
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(got.is_empty(), "POST {i} failed, yet arrived: {got:?}");
            }
            s => panic!("POST {i}: {s}"),
        }
    }
    assert!(refused >= 1, "no POST met the refused target");
    assert_eq!(failures(&dp, "post", &dead).await, f64::from(refused));

    // Bodies over 64 KiB, declared or chunked, are not kept: proxied whole
    // when the first target works, failed (not retried) when it refuses.
    // Round robin alternates the targets, so each kind meets both.
    let large = pattern(100 * 1024);
    let (mut proxied, mut refused) = ([0, 0], 0);
    for i in 0..8 {
        let (kind, chunked) = if i < 4 { (0, None) } else { (1, Some(8192)) };
        let path = format!("/big/put-{i}");
        let status = put_raw(&dp, &path, &large, chunked).await;
        let got = live.matching(&path);
        match status {
            Some(200) => {
                proxied[kind] += 1;
                assert_eq!(got.len(), 1, "PUT {i} arrived {} times", got.len());
                assert!(got[0].body == large, "PUT {i}: the body changed on the way");
            }
            Some(502 | 503) | None => {
                refused += 1;
                assert!(got.is_empty(), "PUT {i} failed, yet arrived");
            }
            Some(s) => panic!("PUT {i}: {s}"),
        }
    }
    assert!(proxied[0] >= 1 && proxied[1] >= 1, "{proxied:?}");
    assert!(refused >= 1, "no large PUT met the refused target");
    assert_eq!(failures(&dp, "big", &dead).await, f64::from(refused));
}
