//! Request body limits end to end (`--max-body-bytes`,
//! `--body-read-timeout`): a declared length over the limit is refused
//! before anything reaches the upstream, a streamed body when it passes the
//! limit, and a body that stalls gets 408; each answer closes the
//! connection, since the rest of the body was never read.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::raw::{RawConn, Read};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, assert_status, fresh_database_url,
};

fn proxy_addr(dp: &DataPlane) -> String {
    dp.proxy.trim_start_matches("http://").to_owned()
}

async fn answer(conn: &mut RawConn) -> turnpike_tests::raw::RawResponse {
    match conn.read().await {
        Read::Response(r) => r,
        Read::Closed => panic!("closed without an answer"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_and_stalled_ones_408() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start_args(
        &cp.cluster,
        &cp.cluster_token,
        &[
            "--max-body-bytes".into(),
            "1000".into(),
            "--body-read-timeout".into(),
            "300ms".into(),
        ],
    );
    let upstream = CountingUpstream::start().await;
    let u = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": upstream.addr}]})),
        )
        .await;
    assert_status(&u, StatusCode::CREATED);
    let r = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/"], "upstream": "u"})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    dp.wait_for_version(r.version()).await;
    let addr = proxy_addr(&dp);

    // Within the limit: forwarded whole.
    let mut conn = RawConn::connect(&addr).await;
    let body = "a".repeat(1000);
    conn.send(
        format!("POST /fits HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{body}").as_bytes(),
    )
    .await;
    assert_eq!(answer(&mut conn).await.status, 200);
    assert_eq!(upstream.matching("/fits")[0].body.len(), 1000);

    // Declared too large: 413 before anything is sent upstream.
    let mut conn = RawConn::connect(&addr).await;
    conn.send(b"POST /declared HTTP/1.1\r\nhost: x\r\ncontent-length: 1001\r\n\r\n")
        .await;
    let a = answer(&mut conn).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.closes());
    assert!(upstream.matching("/declared").is_empty());

    // Streamed (chunked) past the limit: 413, and the upstream never gets
    // a complete request.
    let mut conn = RawConn::connect(&addr).await;
    let chunk = "b".repeat(600);
    conn.send(
        format!(
            "POST /streamed HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let a = answer(&mut conn).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert!(upstream.matching("/streamed").is_empty());

    // A body that stops arriving: 408 after the read timeout, not later.
    let mut conn = RawConn::connect(&addr).await;
    let started = Instant::now();
    conn.send(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello")
        .await;
    let a = answer(&mut conn).await;
    assert_eq!(a.status, 408, "{a:?}");
    assert!(a.closes());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(upstream.matching("/slow").is_empty());
}
