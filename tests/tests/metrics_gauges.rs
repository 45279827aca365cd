//! The data plane's gauges in `/metrics` (read as Prometheus text): open
//! connections per listener following a keep-alive connection, the config
//! state (version, seconds since it was applied, the control-plane
//! connection), and `--no-metrics`, which leaves the route counters alone
//! while `/metrics` still answers.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::prometheus::Exposition;
use turnpike_tests::raw::{RawConn, Read};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
    wait_for,
};

/// A control plane, a data plane with `extra` flags, and route `r` to a
/// counting upstream, applied. Returns the route's config version.
async fn setup(extra: &[String]) -> (ControlPlane, DataPlane, CountingUpstream, Db, u64) {
    let (url, db) = fresh_database_url();
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start_args(&cp.cluster, &cp.cluster_token, extra);
    let up = CountingUpstream::start().await;
    let u = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": up.addr}]})),
        )
        .await;
    assert_status(&u, StatusCode::CREATED);
    let r = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/r"], "upstream": "u"})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    dp.wait_for_version(r.version()).await;
    (cp, dp, up, Db(db), r.version())
}

async fn metrics(http: &Http, dp: &DataPlane) -> Option<Exposition> {
    let a = http.get(&format!("{}/metrics", dp.status)).await.ok()?;
    (a.status == StatusCode::OK).then(|| Exposition::parse(std::str::from_utf8(&a.body).unwrap()))
}

/// Waits until the HTTP listener's open connections are `n`.
async fn wait_for_open(http: &Http, dp: &DataPlane, n: f64) -> Exposition {
    wait_for(
        &format!("{n} open connections"),
        Duration::from_secs(10),
        || async {
            let m = metrics(http, dp).await?;
            (m.value("turnpike_open_connections", &[("listener", "http")]) == n).then_some(m)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_and_config_state() {
    let (_cp, dp, _up, _db, version) = setup(&[]).await;
    let http = Http::default();

    // The test client does not pool: its connections to the proxy (the
    // readiness checks went to the status port) are all closed.
    let m = wait_for_open(&http, &dp, 0.0).await;
    assert_eq!(m.types["turnpike_open_connections"], "gauge");
    assert_eq!(
        m.value("turnpike_open_connections", &[("listener", "https")]),
        0.0
    );
    // The config state issue 8 asks for.
    assert_eq!(m.value("turnpike_config_version", &[]), version as f64);
    assert_eq!(m.value("turnpike_control_plane_connected", &[]), 1.0);
    let age = m.value("turnpike_config_last_applied_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{age}");
    assert!(m.value("turnpike_config_last_applied_timestamp_seconds", &[]) > 1.7e9);

    // One keep-alive connection, answered and left open.
    let addr = dp.proxy.trim_start_matches("http://");
    let mut conn = RawConn::connect(addr).await;
    assert!(
        conn.send(b"GET /r/keep HTTP/1.1\r\nHost: example.com\r\n\r\n")
            .await
    );
    match conn.read().await {
        Read::Response(r) => assert_eq!(r.status, 200),
        Read::Closed => panic!("the proxy closed the connection"),
    }
    wait_for_open(&http, &dp, 1.0).await;
    // A second one while the first stays.
    let mut second = RawConn::connect(addr).await;
    assert!(
        second
            .send(b"GET /r/two HTTP/1.1\r\nHost: example.com\r\n\r\n")
            .await
    );
    assert!(matches!(second.read().await, Read::Response(_)));
    wait_for_open(&http, &dp, 2.0).await;
    drop(conn);
    wait_for_open(&http, &dp, 1.0).await;
    drop(second);
    wait_for_open(&http, &dp, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_leaves_route_counters_alone() {
    let log = std::env::temp_dir().join(format!("tp-no-metrics-{}.log", uuid::Uuid::new_v4()));
    let extra = [
        "--no-metrics".to_owned(),
        "--access-log".to_owned(),
        log.display().to_string(),
    ];
    let (_cp, dp, up, _db, version) = setup(&extra).await;
    let http = Http::default();
    for i in 0..5 {
        assert_status(&dp.get(&format!("/r/{i}")).await, StatusCode::OK);
    }
    assert_eq!(up.requests().len(), 5);
    // Every exchange has ended (its access-log line is written): nothing
    // more is coming to the counters.
    wait_for("5 access log lines", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.lines().count() == 5).then_some(())
    })
    .await;
    let m = metrics(&http, &dp).await.expect("/metrics answers");
    let route = [("route", "r"), ("upstream", "u")];
    for class in ["2xx", "4xx", "5xx"] {
        let labels = [route[0], route[1], ("status", class)];
        assert_eq!(m.value("turnpike_requests_total", &labels), 0.0);
    }
    assert_eq!(
        m.value("turnpike_request_duration_seconds_count", &route),
        0.0
    );
    assert_eq!(
        m.value("turnpike_upstream_duration_seconds_count", &route),
        0.0
    );
    assert_eq!(m.value("turnpike_response_bytes_total", &route), 0.0);
    // The gauges are still there.
    assert_eq!(m.value("turnpike_config_version", &[]), version as f64);
    assert_eq!(m.value("turnpike_control_plane_connected", &[]), 1.0);
    assert_eq!(
        m.value("turnpike_open_connections", &[("listener", "https")]),
        0.0
    );
    let _ = std::fs::remove_file(&log);
}
