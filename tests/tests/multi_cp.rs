//! Several control planes on one database, with real processes: a write
//! through one reaches data planes connected to another (NOTIFY between
//! control planes), the fleet view read through any of them shows every
//! data plane and its NACKs, and a data plane given both addresses fails
//! over when the one it uses dies.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::{
    ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url, wait_for,
};

/// Creates an upstream `name` whose one target is `echo`, and a route
/// `/{name}` to it; returns the version the route's write produced.
async fn route_to(cp: &ControlPlane, name: &str, echo: &Echo) -> u64 {
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": name, "targets": [{"address": echo.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": name, "paths": [format!("/{name}")], "upstream": name})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    route.version()
}

/// The fleet view's entry of `dp`, read through `cp`.
async fn fleet_entry(cp: &ControlPlane, dp: &DataPlane) -> Option<Value> {
    let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
    fleet["items"]
        .as_array()?
        .iter()
        .find(|i| i["node_id"] == dp.node_id.as_str())
        .cloned()
}

async fn proxied_by(dp: &DataPlane, path: &str) -> String {
    let a = dp.get(path).await;
    assert_status(&a, StatusCode::OK);
    a.json()["name"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_control_plane_reaches_data_planes_of_another() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp_a = ControlPlane::start(&url).await;
    let cp_b = cp_a.start_peer().await;
    let echo = Echo::start("echo-1").await;
    let dp = DataPlane::start(&cp_b.cluster, &cp_b.cluster_token);
    dp.wait_for_connected(true).await;

    // Written through A; the data plane only talks to B.
    let v = route_to(&cp_a, "api", &echo).await;
    dp.wait_for_version(v).await;
    assert_eq!(proxied_by(&dp, "/api/users").await, "echo-1");

    // A's fleet view shows the data plane B serves: the records are in
    // Postgres, shared by every control plane.
    cp_a.wait_for_fleet(&[&dp], v).await;
    let entry = fleet_entry(&cp_a, &dp).await.unwrap();
    assert_eq!(entry["status"], "synced", "{entry}");
    assert_eq!(entry["connected"], true);
    assert!(entry["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(entry["software_version"].is_string(), "{entry}");
    assert!(entry["last_seen"].is_string(), "{entry}");
    let config = cp_a.api(Method::GET, "/config", None).await.json();
    assert_eq!(dp.status().await.unwrap()["config_hash"], config["hash"]);

    // A version the data plane refuses (a plugin it cannot enforce: a
    // Redis rate limit, and it has no --redis-url): its NACK shows in the
    // fleet view, read through the other control plane, within a second of
    // the write.
    let plugin = cp_a
        .api(
            Method::POST,
            "/plugins",
            Some(json!({"name": "rate-limit", "config": {"limit": 100, "policy": "redis"}})),
        )
        .await;
    assert_status(&plugin, StatusCode::CREATED);
    let refused = plugin.version();
    let written = Instant::now();
    let entry = wait_for(
        "the NACK in the fleet view",
        Duration::from_secs(1),
        || async {
            fleet_entry(&cp_a, &dp)
                .await
                .filter(|e| e["status"] == "error")
        },
    )
    .await;
    eprintln!("NACK visible {:?} after the write", written.elapsed());
    assert_eq!(entry["error_version"].as_u64(), Some(refused), "{entry}");
    assert!(
        entry["error"]
            .as_str()
            .is_some_and(|e| e.contains("plugin")),
        "{entry}"
    );
    assert_eq!(entry["config_version"].as_u64(), Some(v), "still runs v");
    assert_eq!(proxied_by(&dp, "/api").await, "echo-1");

    // Removing the plugin gives a version it takes; the error clears.
    let id = plugin.json()["id"].as_str().unwrap().to_owned();
    let gone = cp_b
        .api(Method::DELETE, &format!("/plugins/{id}"), None)
        .await;
    assert_status(&gone, StatusCode::NO_CONTENT);
    dp.wait_for_version(gone.version()).await;
    wait_for("the error cleared", Duration::from_secs(10), || async {
        fleet_entry(&cp_a, &dp)
            .await
            .filter(|e| e["status"] == "synced" && e["error"].is_null())
    })
    .await;
}

/// Which of `cps` holds `dp`'s stream, from their logs.
async fn holder(cps: &[&ControlPlane], dp: &DataPlane) -> usize {
    wait_for(
        "a control plane to log the data plane's stream",
        Duration::from_secs(30),
        || async {
            cps.iter().position(|cp| {
                cp.proc
                    .log()
                    .lines()
                    .any(|l| l.contains("data plane connected") && l.contains(&dp.node_id))
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_fails_over_to_the_other_control_plane() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp_a = ControlPlane::start(&url).await;
    let cp_b = cp_a.start_peer().await;
    let echo = Echo::start("echo-1").await;
    let both = format!("{},{}", cp_a.cluster, cp_b.cluster);
    let dp = DataPlane::start(&both, &cp_a.cluster_token);
    dp.wait_for_connected(true).await;
    let v = route_to(&cp_a, "before", &echo).await;
    dp.wait_for_version(v).await;

    // Kill the control plane the data plane uses; write through the other.
    let mut cps = [cp_a, cp_b];
    let used = holder(&[&cps[0], &cps[1]], &dp).await;
    cps[used].proc.kill();
    let survivor = &cps[1 - used];
    let v = route_to(survivor, "after", &echo).await;

    dp.wait_for_version(v).await;
    dp.wait_for_connected(true).await;
    assert_eq!(proxied_by(&dp, "/after").await, "echo-1");
    assert_eq!(proxied_by(&dp, "/before").await, "echo-1");
    survivor.wait_for_fleet(&[&dp], v).await;
    let entry = fleet_entry(survivor, &dp).await.unwrap();
    assert_eq!(entry["status"], "synced", "{entry}");
}
