//! The `turnpike-data-plane` binary (the data plane alone) end to end: it
//! takes the flags of `turnpike data-plane`, joins the fleet, proxies, and
//! exits with the same codes.

use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::process::data_plane_bin;
use turnpike_tests::{ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_data_plane_joins_the_fleet_proxies_and_drains_on_sigterm() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let echo = Echo::start("echo-standalone").await;
    let mut dp = DataPlane::start_standalone(&cp.cluster, &cp.cluster_token, &[]);

    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "echoes", "targets": [{"address": echo.addr}]})),
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
    dp.wait_for_version(route.version()).await;
    cp.wait_for_fleet(&[&dp], route.version()).await;

    let a = dp.get("/api/hello?x=1").await;
    assert_status(&a, StatusCode::OK);
    let seen = a.json();
    assert_eq!(seen["name"], "echo-standalone", "{seen}");
    assert_eq!(seen["path"], "/api/hello", "{seen}");
    assert_status(&dp.get("/nowhere").await, StatusCode::NOT_FOUND);

    // It restarted itself with glibc's thread cache deepened
    // (cli/src/malloc.rs): the process serving has the tunable set.
    let environ = std::fs::read(format!("/proc/{}/environ", dp.proc.pid())).unwrap();
    let tunables = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"GLIBC_TUNABLES="))
        .map(String::from_utf8_lossy);
    assert_eq!(
        tunables.as_deref(),
        Some("glibc.malloc.tcache_count=256"),
        "the data plane's environment"
    );

    // SIGTERM drains and exits 0, like `turnpike data-plane`.
    assert_eq!(dp.proc.terminate(Duration::from_secs(20)), Some(0));
}

#[test]
fn the_standalone_data_plane_reports_usage_errors_with_exit_code_2() {
    let bin = data_plane_bin();
    let version = Command::new(bin).arg("--version").output().unwrap();
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(text.starts_with("turnpike-data-plane "), "{text}");

    // Not a subcommand-taking binary: `data-plane` is an unexpected argument.
    let extra = Command::new(bin)
        .args(["data-plane", "--cluster-token", "t"])
        .output()
        .unwrap();
    assert_eq!(extra.status.code(), Some(2));

    // Checked after parsing, as in `turnpike data-plane`.
    let empty = Command::new(bin)
        .args(["--cluster-token", "", "--status-listen", "127.0.0.1:0"])
        .env_remove("TURNPIKE_CLUSTER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2));
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(err.contains("--cluster-token must not be empty"), "{err}");
}
