//! The walking skeleton end to end, with real processes: a control plane on
//! a fresh database, two data planes, two echo upstreams.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::{
    ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url, wait_for,
};

/// Sends `n` requests through `dp` and returns the upstream names that
/// answered, in order.
async fn names(dp: &DataPlane, path: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let a = dp.get(path).await;
        assert_status(&a, StatusCode::OK);
        out.push(a.json()["name"].as_str().unwrap().to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_flows_from_admin_api_to_both_data_planes_and_survives_the_control_plane() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let mut cp = ControlPlane::start(&url).await;
    let e1 = Echo::start("echo-1").await;
    let e2 = Echo::start("echo-2").await;
    let dp1 = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let dp2 = DataPlane::start(&cp.cluster, &cp.cluster_token);

    // Configure through the admin API.
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(
                json!({"name": "echoes", "targets": [{"address": e1.addr}, {"address": e2.addr}]}),
            ),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "api", "paths": ["/api"], "upstream": "echoes"})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    let v1 = route.version();
    assert!(v1 > up.version(), "every write is a new version");

    // Both data planes report the version, in their status and in the fleet view.
    dp1.wait_for_version(v1).await;
    dp2.wait_for_version(v1).await;
    cp.wait_for_fleet(&[&dp1, &dp2], v1).await;
    let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
    for item in fleet["items"].as_array().unwrap() {
        assert_eq!(item["status"], "synced", "{item}");
    }
    let config = cp.api(Method::GET, "/config", None).await.json();
    assert_eq!(config["version"].as_u64(), Some(v1));
    assert_eq!(dp1.status().await.unwrap()["config_hash"], config["hash"]);

    // Requests alternate between the two upstreams through each data plane,
    // and the upstream sees the request as sent, with forwarding headers.
    for dp in [&dp1, &dp2] {
        let seen = names(dp, "/api/users?page=2", 4).await;
        assert_ne!(seen[0], seen[1], "round robin alternates: {seen:?}");
        assert_eq!(seen[0], seen[2]);
        assert_eq!(seen[1], seen[3]);
        let echoed = dp.get("/api/users?page=2").await.json();
        assert_eq!(echoed["path"], "/api/users");
        assert_eq!(echoed["query"], "page=2");
        assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(echoed["headers"]["x-forwarded-proto"], "http");
        assert!(
            echoed["headers"]["x-forwarded-host"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        // Request bodies reach the upstream.
        let body = json!({"hello": "x".repeat(100_000)});
        let posted = turnpike_tests::Http::default()
            .send(
                Method::POST,
                &format!("{}/api/items", dp.proxy),
                &[],
                Some(body.clone()),
            )
            .await
            .unwrap();
        assert_status(&posted, StatusCode::OK);
        assert_eq!(posted.json()["method"], "POST");
        assert_eq!(posted.json()["body"], body.to_string());
        // Only the proxy names the consumer: a client's claim is removed,
        // on a route with no authentication too.
        let forged = turnpike_tests::Http::default()
            .send(
                Method::GET,
                &format!("{}/api/users", dp.proxy),
                &[("x-consumer-id", "42"), ("x-consumer-username", "mallory")],
                None,
            )
            .await
            .unwrap();
        assert_status(&forged, StatusCode::OK);
        let echoed = &forged.json()["headers"];
        assert!(echoed.get("x-consumer-id").is_none(), "{echoed}");
        assert!(echoed.get("x-consumer-username").is_none(), "{echoed}");
        let miss = dp.get("/elsewhere").await;
        assert_status(&miss, StatusCode::NOT_FOUND);
        assert!(miss.json()["message"].is_string());
    }

    // Change the route; the change is served.
    let changed = cp
        .api(
            Method::PATCH,
            "/routes/api",
            Some(json!({"paths": ["/v2"], "strip_path": true})),
        )
        .await;
    assert_status(&changed, StatusCode::OK);
    let v2 = changed.version();
    dp1.wait_for_version(v2).await;
    dp2.wait_for_version(v2).await;
    for dp in [&dp1, &dp2] {
        assert_status(&dp.get("/api/users").await, StatusCode::NOT_FOUND);
        let a = dp.get("/v2/users").await;
        assert_status(&a, StatusCode::OK);
        assert_eq!(a.json()["path"], "/users", "strip_path removed the prefix");
    }

    // Kill the control plane: both data planes keep serving the last config.
    cp.proc.kill();
    dp1.wait_for_connected(false).await;
    dp2.wait_for_connected(false).await;
    for dp in [&dp1, &dp2] {
        let seen = names(dp, "/v2/x", 4).await;
        assert!(
            seen.contains(&e1.name) && seen.contains(&e2.name),
            "{seen:?}"
        );
        assert_eq!(
            dp.status().await.unwrap()["config_version"].as_u64(),
            Some(v2)
        );
    }

    // Restart it: the data planes reconnect, report their version, and get
    // the next change.
    cp.restart().await;
    dp1.wait_for_connected(true).await;
    dp2.wait_for_connected(true).await;
    cp.wait_for_fleet(&[&dp1, &dp2], v2).await;
    let only_e2 = cp
        .api(
            Method::PUT,
            "/upstreams/echoes",
            Some(json!({"name": "echoes", "targets": [{"address": e2.addr}]})),
        )
        .await;
    assert_status(&only_e2, StatusCode::OK);
    let v3 = only_e2.version();
    cp.wait_for_fleet(&[&dp1, &dp2], v3).await;
    for dp in [&dp1, &dp2] {
        assert_eq!(names(dp, "/v2/x", 3).await, vec![e2.name.clone(); 3]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_502_and_504() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let echo = Echo::start("slow").await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let refused = format!("127.0.0.1:{}", turnpike_tests::free_port());

    for (name, address, read_ms) in [
        ("dead", refused.as_str(), 5_000),
        ("slow", echo.addr.as_str(), 300),
    ] {
        let a = cp
            .api(
                Method::POST,
                "/upstreams",
                Some(json!({"name": name, "targets": [{"address": address}], "timeouts": {"read_ms": read_ms}})),
            )
            .await;
        assert_status(&a, StatusCode::CREATED);
        let r = cp
            .api(
                Method::POST,
                "/routes",
                Some(json!({"name": name, "paths": [format!("/{name}")], "upstream": name})),
            )
            .await;
        assert_status(&r, StatusCode::CREATED);
        dp.wait_for_version(r.version()).await;
    }
    let refused = dp.get("/dead").await;
    assert_status(&refused, StatusCode::BAD_GATEWAY);
    assert!(refused.json()["message"].is_string());
    assert_status(
        &dp.get("/slow?delay_ms=2000").await,
        StatusCode::GATEWAY_TIMEOUT,
    );
    assert_status(&dp.get("/slow?delay_ms=10").await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_with_a_wrong_token_gets_no_config() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let good = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let bad = DataPlane::start(&cp.cluster, "not-the-cluster-token");
    good.wait_for_version(1).await;
    let http = turnpike_tests::Http::default();
    assert_status(
        &http.get(&format!("{}/readyz", good.status)).await.unwrap(),
        StatusCode::OK,
    );
    // Give the bad one as long as the good one needed, and more: it must
    // stay unready and unknown to the fleet.
    wait_for(
        "the refusal to be logged",
        Duration::from_secs(15),
        || async {
            bad.proc
                .log()
                .contains("invalid cluster token")
                .then_some(())
        },
    )
    .await;
    assert_status(
        &http.get(&format!("{}/readyz", bad.status)).await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(bad.status().await.unwrap()["config_version"], 0);
    let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
    let ids: Vec<&str> = fleet["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [good.node_id.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_processes_cleanly() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let mut cp = ControlPlane::start(&url).await;
    let mut dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    dp.wait_for_version(1).await;
    assert_eq!(dp.proc.terminate(Duration::from_secs(15)), Some(0));
    assert_eq!(cp.proc.terminate(Duration::from_secs(15)), Some(0));
}
