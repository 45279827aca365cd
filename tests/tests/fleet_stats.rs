//! Fleet health end to end: a real data plane serves requests (some of them
//! 5xx) and the control plane's fleet view shows its reported counters.
//! The data plane reports every 200 ms here, through the
//! `TURNPIKE_STATS_INTERVAL_MS` test knob (10 s otherwise).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::process::turnpike_bin;
use turnpike_tests::{
    ControlPlane, Db, Echo, Http, assert_status, free_port, fresh_database_url, wait_for,
};

/// A data plane started with the test knob in its environment (the shared
/// helper passes none). Killed on drop; its log printed if the test fails.
struct ReportingDataPlane {
    child: Child,
    log: std::path::PathBuf,
    node_id: String,
    proxy: String,
    status: String,
}

impl ReportingDataPlane {
    fn start(cp: &ControlPlane, interval_ms: u64) -> ReportingDataPlane {
        let (proxy_port, status_port) = (free_port(), free_port());
        let node_id = format!("dp-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join("turnpike-e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{node_id}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(turnpike_bin())
            .args(["data-plane", "--control-plane", &cp.cluster])
            .args(["--proxy-listen", &format!("127.0.0.1:{proxy_port}")])
            .args(["--status-listen", &format!("127.0.0.1:{status_port}")])
            .args(["--cluster-token", &cp.cluster_token, "--node-id", &node_id])
            .args(["--worker-threads", "1"])
            .env("TURNPIKE_LOG", "info")
            .env("TURNPIKE_STATS_INTERVAL_MS", interval_ms.to_string())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawning the data plane");
        ReportingDataPlane {
            child,
            log,
            node_id,
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            status: format!("http://127.0.0.1:{status_port}"),
        }
    }
}

impl Drop for ReportingDataPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("----- log of {} -----\n{log}", self.node_id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This data plane's row of the fleet view.
async fn row(cp: &ControlPlane, node_id: &str) -> Option<Value> {
    let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
    fleet["items"]
        .as_array()?
        .iter()
        .find(|i| i["node_id"] == node_id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_shows_what_a_data_plane_served() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let echo = Echo::start("echo-stats").await;
    let dp = ReportingDataPlane::start(&cp, 200);
    let http = Http::default();

    for (upstream, address) in [
        ("echoes", echo.addr.clone()),
        // Nothing listens there: 5xx answers.
        ("gone", format!("127.0.0.1:{}", free_port())),
    ] {
        let up = cp
            .api(
                Method::POST,
                "/upstreams",
                Some(json!({"name": upstream, "targets": [{"address": address}]})),
            )
            .await;
        assert_status(&up, StatusCode::CREATED);
    }
    for (route, path, upstream) in [("ok", "/ok", "echoes"), ("down", "/down", "gone")] {
        let r = cp
            .api(
                Method::POST,
                "/routes",
                Some(json!({"name": route, "paths": [path], "upstream": upstream})),
            )
            .await;
        assert_status(&r, StatusCode::CREATED);
    }
    let version = cp.api(Method::GET, "/config", None).await.json()["version"]
        .as_u64()
        .unwrap();
    wait_for(
        "the data plane on the last version",
        Duration::from_secs(30),
        || async {
            let s = http.get(&format!("{}/status", dp.status)).await.ok()?;
            (s.json()["config_version"].as_u64()? >= version).then_some(())
        },
    )
    .await;

    const OK: u64 = 20;
    const FAILED: u64 = 5;
    for _ in 0..OK {
        let a = http.get(&format!("{}/ok", dp.proxy)).await.unwrap();
        assert_status(&a, StatusCode::OK);
    }
    for _ in 0..FAILED {
        // 502, or 503 once a passive check took the target out.
        let a = http.get(&format!("{}/down", dp.proxy)).await.unwrap();
        assert!(a.status.is_server_error(), "{:?}", a.status);
    }

    // Reports come every 200 ms; keep a little traffic flowing so the last
    // report's interval has answers (its p99 and error rate are per
    // interval), and wait until the totals cover what was sent.
    let stats = wait_for(
        "the fleet view to show the data plane's traffic",
        Duration::from_secs(20),
        || async {
            let a = http.get(&format!("{}/ok", dp.proxy)).await.ok()?;
            assert_status(&a, StatusCode::OK);
            let s = row(&cp, &dp.node_id).await?["stats"].clone();
            let done = s["requests"].as_u64()? >= OK + FAILED
                && s["errors"].as_u64()? >= FAILED
                && s["p99_ms"].is_number()
                && s["error_rate"].is_number();
            done.then_some(s)
        },
    )
    .await;
    assert!(
        stats["errors"].as_u64().unwrap() <= FAILED,
        "only the 502s are errors: {stats}"
    );
    let p99 = stats["p99_ms"].as_f64().unwrap();
    assert!(
        (1.0..=30_000.0).contains(&p99),
        "a latency bucket bound: {stats}"
    );
    let rate = stats["error_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate), "{stats}");
    assert!(stats["interval_ms"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["reported_at"].is_string(), "{stats}");
    let item = row(&cp, &dp.node_id).await.unwrap();
    assert_eq!(
        item["status"], "synced",
        "reports leave the status alone: {item}"
    );
}
