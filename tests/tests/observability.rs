//! Observability end to end: `traceparent` continued to the upstream (or
//! started), per-route request counters and latency histograms in
//! `/metrics` (read as Prometheus text), and the JSON access log with the
//! documented fields and no credential in it.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::prometheus::Exposition;
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
    wait_for,
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_metrics_and_access_log() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let log = std::env::temp_dir().join(format!("tp-access-{}.log", uuid::Uuid::new_v4()));
    let dp = DataPlane::start_args(
        &cp.cluster,
        &cp.cluster_token,
        &["--access-log".into(), log.display().to_string()],
    );
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
    let http = Http::default();
    let parent = format!("00-{TRACE}-00f067aa0ba902b7-01");

    for i in 0..3 {
        let a = http
            .send(
                Method::GET,
                &format!("{}/r/traced-{i}?apikey=hidden-query-key", dp.proxy),
                &[
                    ("traceparent", parent.as_str()),
                    ("authorization", "Bearer secret-token-xyz"),
                ],
                None,
            )
            .await
            .unwrap();
        assert_status(&a, StatusCode::OK);
    }
    assert_status(&dp.get("/r/fresh").await, StatusCode::OK);
    assert_status(&dp.get("/nowhere").await, StatusCode::NOT_FOUND);

    // The upstream got the client's trace with the proxy's span as parent,
    // or a new valid trace when the client sent none.
    for seen in up.matching("/r/traced-") {
        let tp = seen.header("traceparent").expect("traceparent upstream");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[1], TRACE);
        assert_ne!(parts[2], "00f067aa0ba902b7", "the proxy's own span");
        assert_eq!(parts[3], "01");
    }
    let fresh = up.matching("/r/fresh")[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert_eq!(fresh.len(), 55, "{fresh}");
    assert_ne!(&fresh[3..35], TRACE);

    // /metrics, by value.
    let metrics = wait_for("the metrics", Duration::from_secs(10), || async {
        let text = http.get(&format!("{}/metrics", dp.status)).await.ok()?.body;
        let e = Exposition::parse(std::str::from_utf8(&text).ok()?);
        // The last answer's body may still be finishing when we first look.
        (e.value("turnpike_request_duration_seconds_count", &[("route", "r")]) == 4.0).then_some(e)
    })
    .await;
    let route = [("route", "r"), ("upstream", "u")];
    assert_eq!(
        metrics.value(
            "turnpike_requests_total",
            &[route[0], route[1], ("status", "2xx")]
        ),
        4.0
    );
    assert_eq!(
        metrics.value("turnpike_requests_total", &[route[0], ("status", "5xx")]),
        0.0
    );
    assert_eq!(
        metrics.value("turnpike_upstream_duration_seconds_count", &route),
        4.0
    );
    assert_eq!(
        metrics.value(
            "turnpike_request_duration_seconds_bucket",
            &[route[0], ("le", "+Inf")]
        ),
        4.0
    );
    assert_eq!(metrics.value("turnpike_response_bytes_total", &route), 8.0);
    assert_eq!(
        metrics.types["turnpike_request_duration_seconds"],
        "histogram"
    );
    // With --access-log, its drops are a counter (none here).
    assert_eq!(
        metrics.types["turnpike_access_log_dropped_lines"],
        "counter"
    );
    assert_eq!(
        metrics.value("turnpike_access_log_dropped_lines_total", &[]),
        0.0
    );

    // The access log: one JSON line per request, fields as documented, no
    // credential anywhere.
    let lines = wait_for("5 access log lines", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.lines().count() >= 5).then_some(text)
    })
    .await;
    assert!(!lines.contains("secret-token-xyz") && !lines.contains("hidden-query-key"));
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(entries.len(), 5);
    let traced: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with("/r/traced-"))
        .collect();
    assert_eq!(traced.len(), 3);
    for e in &traced {
        assert_eq!(e["trace_id"], TRACE);
        assert_eq!(e["status"], 200);
        assert_eq!(e["route"], "r");
        assert_eq!(e["upstream"], "u");
        assert_eq!(e["target"], up.addr.as_str());
        assert_eq!(e["method"], "GET");
        assert_eq!(e["client_ip"], "127.0.0.1");
        assert_eq!(e["bytes_out"], 2);
        assert_eq!(e["config_version"], r.version());
        assert!(e["duration_ms"].as_f64().unwrap() >= e["upstream_ms"].as_f64().unwrap());
        assert_eq!(e["request_id"].as_str().unwrap().len(), 32);
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let missed = entries.iter().find(|e| e["path"] == "/nowhere").unwrap();
    assert_eq!(missed["status"], 404);
    assert!(missed["route"].is_null() && missed["upstream_ms"].is_null());
    let _ = std::fs::remove_file(&log);
}
