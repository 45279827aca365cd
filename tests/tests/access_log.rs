//! The `access-log` plugin end to end: a global instance that turns the log
//! off, a route that turns it back on, a route with `sample_rate: 0` whose
//! errors (4xx, 5xx) are still logged, and a sampled route, all through one
//! data plane writing its access log to a file.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
    wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_and_disabling_per_route() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let log = std::env::temp_dir().join(format!("tp-sampled-{}.log", uuid::Uuid::new_v4()));
    let dp = DataPlane::start_args(
        &cp.cluster,
        &cp.cluster_token,
        &["--access-log".into(), log.display().to_string()],
    );
    let up = CountingUpstream::start().await;
    let mut version = 0;
    let writes = [
        (
            "/upstreams",
            json!({"name": "u", "targets": [{"address": up.addr}]}),
        ),
        (
            "/routes",
            json!({"name": "loud", "paths": ["/loud"], "upstream": "u"}),
        ),
        // The upstream sees `/bad-response/...` below these prefixes.
        (
            "/routes",
            json!({"name": "quiet", "paths": ["/quiet"], "upstream": "u", "strip_path": true}),
        ),
        (
            "/routes",
            json!({"name": "silent", "paths": ["/silent"], "upstream": "u", "strip_path": true}),
        ),
        (
            "/routes",
            json!({"name": "half", "paths": ["/half"], "upstream": "u"}),
        ),
        // Global: off, errors included; each route below overrides it.
        (
            "/plugins",
            json!({"name": "access-log", "config": {"sample_rate": 0, "always_log_errors": false}}),
        ),
        (
            "/plugins",
            json!({"name": "access-log", "route": "loud", "config": {"sample_rate": 1}}),
        ),
        (
            "/plugins",
            json!({"name": "access-log", "route": "quiet", "config": {"sample_rate": 0}}),
        ),
        (
            "/plugins",
            json!({"name": "access-log", "route": "half", "config": {"sample_rate": 0.5}}),
        ),
        // A 4xx of the proxy's own on the quiet route.
        (
            "/plugins",
            json!({"name": "request-size-limit", "route": "quiet", "config": {"max_bytes": 1}}),
        ),
    ];
    // The schema's errors name the field.
    let bad = cp
        .api(
            Method::POST,
            "/plugins",
            Some(json!({"name": "access-log", "config": {"sample_rate": 1.5}})),
        )
        .await;
    assert_status(&bad, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["errors"][0]["field"], "config.sample_rate");
    for (path, body) in writes {
        let a = cp.api(Method::POST, path, Some(body)).await;
        assert_status(&a, StatusCode::CREATED);
        version = a.version();
        // Stored with its defaults written out.
        if a.json()["route"].is_string() && a.json()["name"] == "access-log" {
            assert!(a.json()["config"]["always_log_errors"].is_boolean());
            assert!(a.json()["config"]["sample_rate"].is_f64());
        }
    }
    dp.wait_for_version(version).await;

    let http = Http::default();
    for i in 0..5 {
        assert_status(&dp.get(&format!("/loud/{i}")).await, StatusCode::OK);
    }
    for i in 0..20 {
        assert_status(&dp.get(&format!("/quiet/{i}")).await, StatusCode::OK);
    }
    let big = http
        .send_bytes(
            Method::POST,
            &format!("{}/quiet/upload", dp.proxy),
            &[],
            Bytes::from_static(b"more than one byte"),
        )
        .await
        .unwrap();
    assert_status(&big, StatusCode::PAYLOAD_TOO_LARGE);
    let hang_up = dp.get("/quiet/bad-response/hang-up").await;
    assert_status(&hang_up, StatusCode::BAD_GATEWAY);
    let silent = dp.get("/silent/bad-response/hang-up").await;
    assert_status(&silent, StatusCode::BAD_GATEWAY);
    assert_status(&dp.get("/silent/ok").await, StatusCode::OK);
    for i in 0..200 {
        assert_status(&dp.get(&format!("/half/{i}")).await, StatusCode::OK);
    }
    assert_status(&dp.get("/nowhere").await, StatusCode::NOT_FOUND);
    assert_status(&dp.get("/loud/last").await, StatusCode::OK);
    // Every request was answered: the last line to come is the last one's.
    let entries = wait_for(
        "the last request's line",
        Duration::from_secs(10),
        || async {
            let text = std::fs::read_to_string(&log).ok()?;
            let entries: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            entries
                .iter()
                .any(|e| e["path"] == "/loud/last")
                .then_some(entries)
        },
    )
    .await;
    let on =
        |route: &str| -> Vec<&Value> { entries.iter().filter(|e| e["route"] == route).collect() };

    // The route's own instance beats the global one.
    assert_eq!(on("loud").len(), 6);
    // sample_rate 0: only the errors, with always_log_errors' default.
    let quiet: Vec<(u64, &str)> = on("quiet")
        .iter()
        .map(|e| (e["status"].as_u64().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        quiet,
        [(413, "/quiet/upload"), (502, "/quiet/bad-response/hang-up")]
    );
    // The global instance: nothing, not even its 502.
    assert!(on("silent").is_empty(), "{:?}", on("silent"));
    // Half of 200, give or take (σ ≈ 7).
    let half = on("half").len();
    assert!((50..=150).contains(&half), "{half} of 200 logged");
    // No route, no plugin: logged.
    assert!(
        entries
            .iter()
            .any(|e| e["path"] == "/nowhere" && e["status"] == 404)
    );
    assert_eq!(entries.len(), 6 + 2 + half + 1);
    let _ = std::fs::remove_file(&log);
}
