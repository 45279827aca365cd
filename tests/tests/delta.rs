//! Deltas end to end, with real processes: a data plane gets its first
//! config whole, then each change as a delta (counted in its `/status`),
//! and traffic follows; in a config of 2,000 routes, a one-route change
//! moves a few hundred bytes, not the config.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::{
    ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url, wait_for,
};

/// The `/status` of `dp` once it runs `version`.
async fn status_at(dp: &DataPlane, version: u64) -> Value {
    dp.wait_for_version(version).await;
    dp.status().await.expect("status answers")
}

fn counters(status: &Value) -> (u64, u64) {
    (
        status["snapshots_applied"].as_u64().unwrap(),
        status["deltas_applied"].as_u64().unwrap(),
    )
}

/// The name of the echo upstream that answered `path` through `dp`.
async fn answered_by(dp: &DataPlane, path: &str) -> String {
    let a = dp.get(path).await;
    assert_status(&a, StatusCode::OK);
    a.json()["name"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_arrive_as_deltas_and_traffic_follows() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let e1 = Echo::start("echo-1").await;
    let e2 = Echo::start("echo-2").await;
    for (name, echo) in [("one", &e1), ("two", &e2)] {
        let body = json!({"name": name, "targets": [{"address": echo.addr}]});
        let up = cp.api(Method::POST, "/upstreams", Some(body)).await;
        assert_status(&up, StatusCode::CREATED);
    }
    let body = json!({"name": "api", "paths": ["/api"], "upstream": "one"});
    let route = cp.api(Method::POST, "/routes", Some(body)).await;
    assert_status(&route, StatusCode::CREATED);

    // A data plane with nothing gets the whole config.
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let status = status_at(&dp, route.version()).await;
    assert_eq!(counters(&status), (1, 0), "{status}");
    assert_eq!(answered_by(&dp, "/api").await, "echo-1");

    // The route moves to the other upstream: a delta, and traffic follows.
    let body = json!({"upstream": "two"});
    let changed = cp.api(Method::PATCH, "/routes/api", Some(body)).await;
    assert_status(&changed, StatusCode::OK);
    let status = status_at(&dp, changed.version()).await;
    assert_eq!(counters(&status), (1, 1), "{status}");
    assert_eq!(answered_by(&dp, "/api").await, "echo-2");
    let config = cp.api(Method::GET, "/config", None).await.json();
    assert_eq!(
        status["config_hash"], config["hash"],
        "same content as the control plane"
    );

    // A new route and a removed one, the same way.
    let body = json!({"name": "more", "paths": ["/more"], "upstream": "one"});
    let added = cp.api(Method::POST, "/routes", Some(body)).await;
    assert_status(&added, StatusCode::CREATED);
    let removed = cp.api(Method::DELETE, "/routes/api", None).await;
    assert_status(&removed, StatusCode::NO_CONTENT);
    let status = status_at(&dp, removed.version()).await;
    let (snapshots, deltas) = counters(&status);
    assert_eq!(snapshots, 1, "{status}");
    // The two versions may have coalesced into one delta.
    assert!((2..=3).contains(&deltas), "{status}");
    assert_eq!(answered_by(&dp, "/more").await, "echo-1");
    assert_status(&dp.get("/api").await, StatusCode::NOT_FOUND);
    cp.wait_for_fleet(&[&dp], removed.version()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_route_change_in_a_large_config_moves_kilobytes() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let echo = Echo::start("echo").await;

    // 2,000 routes in one import: one version.
    let routes: Vec<Value> = (0..2_000)
        .map(|i| json!({"name": format!("route-{i}"), "paths": [format!("/r/{i}")], "upstream": "echo"}))
        .collect();
    let doc = json!({
        "format_version": "1",
        "upstreams": [{"name": "echo", "targets": [{"address": echo.addr}]}],
        "routes": routes,
    });
    let imported = cp.api(Method::POST, "/config/import", Some(doc)).await;
    assert_status(&imported, StatusCode::OK);
    let v1 = imported.json()["version"].as_u64().unwrap();

    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let status = status_at(&dp, v1).await;
    assert_eq!(status["routes"], 2_000);
    let full = status["last_config_bytes"].as_u64().unwrap();
    assert!(full > 100_000, "the whole config: {status}");

    let body = json!({"paths": ["/moved"]});
    let changed = cp
        .api(Method::PATCH, "/routes/route-1234", Some(body))
        .await;
    assert_status(&changed, StatusCode::OK);
    let status = status_at(&dp, changed.version()).await;
    assert_eq!(counters(&status), (1, 1), "{status}");
    let bytes = status["last_config_bytes"].as_u64().unwrap();
    assert!(bytes < 10_000, "a one-route delta is {bytes} bytes");
    assert_eq!(answered_by(&dp, "/moved").await, "echo");
    assert_status(&dp.get("/r/1234").await, StatusCode::NOT_FOUND);

    // The control plane saw the ACK of the delta's version.
    wait_for("fleet synced", Duration::from_secs(30), || async {
        let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
        (fleet["items"][0]["status"] == "synced").then_some(())
    })
    .await;
}
