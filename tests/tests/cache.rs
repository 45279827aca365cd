//! The data plane's disk cache with real processes: a data plane restarted
//! while its control plane is down serves the cached config and says it is
//! stale; a corrupt cache is refused and nothing of it is served.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::prometheus::Exposition;
use turnpike_tests::{
    ControlPlane, DataPlane, Echo, Http, assert_status, drop_database, fresh_database_url, wait_for,
};

/// Drops the test database and removes the cache dir, whatever happens.
struct Cleanup(String, PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        drop_database(&self.0);
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "turnpike-cache-e2e-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

fn start_with_cache(cp: &ControlPlane, dir: &Path) -> DataPlane {
    let args = ["--cache-dir".to_owned(), dir.display().to_string()];
    DataPlane::start_args(&cp.cluster, &cp.cluster_token, &args)
}

/// An upstream on `echo` and a route `/cached` to it; returns the version.
async fn configure(cp: &ControlPlane, echo: &Echo) -> u64 {
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "echo", "targets": [{"address": echo.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "cached", "paths": ["/cached"], "upstream": "echo"})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    route.version()
}

/// The value of an unlabelled sample on the data plane's `/metrics`.
async fn metric(dp: &DataPlane, name: &str) -> Option<f64> {
    let a = Http::default()
        .get(&format!("{}/metrics", dp.status))
        .await
        .ok()?;
    let m = Exposition::parse(std::str::from_utf8(&a.body).ok()?);
    let found: Vec<f64> = m
        .matching(name, &[])
        .filter(|s| s.labels.is_empty())
        .map(|s| s.value)
        .collect();
    match found[..] {
        [v] => Some(v),
        _ => None,
    }
}

async fn readyz(dp: &DataPlane) -> StatusCode {
    Http::default()
        .get(&format!("{}/readyz", dp.status))
        .await
        .map(|a| a.status)
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_control_plane_serves_the_cache_and_says_it_is_stale() {
    let (url, db) = fresh_database_url();
    let dir = cache_dir();
    let _cleanup = Cleanup(db, dir.clone());
    let mut cp = ControlPlane::start(&url).await;
    let echo = Echo::start("cached-echo").await;
    let mut dp = start_with_cache(&cp, &dir);
    let v = configure(&cp, &echo).await;
    // The ACK comes after the cache write.
    cp.wait_for_fleet(&[&dp], v).await;
    let status = dp.status().await.unwrap();
    assert_eq!(status["config_source"], "control_plane", "{status}");
    assert_eq!(status["stale"], false, "{status}");
    let hash = cp.api(Method::GET, "/config", None).await.json()["hash"].clone();
    assert_eq!(status["config_hash"], hash);

    // Stop both; the data plane comes back alone.
    assert_eq!(dp.proc.terminate(Duration::from_secs(15)), Some(0));
    cp.proc.kill();
    let dp = start_with_cache(&cp, &dir);
    wait_for(
        "the restarted data plane to be ready from its cache",
        Duration::from_secs(2),
        || async { (readyz(&dp).await == StatusCode::OK).then_some(()) },
    )
    .await;
    let a = dp.get("/cached/hello").await;
    assert_status(&a, StatusCode::OK);
    assert_eq!(a.json()["name"], echo.name.as_str());
    assert_eq!(a.json()["path"], "/cached/hello");
    let status = dp.status().await.unwrap();
    assert_eq!(status["config_source"], "cache", "{status}");
    assert_eq!(status["stale"], true, "{status}");
    assert_eq!(status["control_plane_connected"], false, "{status}");
    assert_eq!(status["config_version"].as_u64(), Some(v), "{status}");
    assert_eq!(status["config_hash"], hash, "{status}");
    assert!(dp.proc.log().contains("serving the cached config"));
    assert_eq!(metric(&dp, "turnpike_config_stale").await, Some(1.0));
    assert_eq!(metric(&dp, "turnpike_config_from_cache").await, Some(1.0));
    assert_eq!(metric(&dp, "turnpike_config_version").await, Some(v as f64));

    // The control plane comes back: the data plane says Hello with the
    // cached version, which is current, so nothing is sent and the cached
    // config is confirmed.
    cp.restart().await;
    dp.wait_for_connected(true).await;
    cp.wait_for_fleet(&[&dp], v).await;
    let status = dp.status().await.unwrap();
    assert_eq!(status["stale"], false, "{status}");
    assert_eq!(status["config_source"], "cache", "{status}");
    assert_eq!(status["config_version"].as_u64(), Some(v), "{status}");
    assert_eq!(metric(&dp, "turnpike_config_stale").await, Some(0.0));
    assert_eq!(
        metric(&dp, "turnpike_control_plane_connected").await,
        Some(1.0)
    );

    // The next change comes from the control plane, as before.
    let changed = cp
        .api(
            Method::PATCH,
            "/routes/cached",
            Some(json!({"paths": ["/fresh"]})),
        )
        .await;
    assert_status(&changed, StatusCode::OK);
    dp.wait_for_version(changed.version()).await;
    let status = dp.status().await.unwrap();
    assert_eq!(status["config_source"], "control_plane", "{status}");
    assert_eq!(status["stale"], false, "{status}");
    assert_status(&dp.get("/fresh").await, StatusCode::OK);
    assert_status(&dp.get("/cached").await, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_is_refused_and_nothing_is_served() {
    let (url, db) = fresh_database_url();
    let dir = cache_dir();
    let _cleanup = Cleanup(db, dir.clone());
    let mut cp = ControlPlane::start(&url).await;
    let echo = Echo::start("corrupt-echo").await;
    let mut dp = start_with_cache(&cp, &dir);
    let v = configure(&cp, &echo).await;
    cp.wait_for_fleet(&[&dp], v).await;
    assert_eq!(dp.proc.terminate(Duration::from_secs(15)), Some(0));
    cp.proc.kill();

    // Overwrite bytes in the middle of the file, as a bad disk would.
    let file = dir.join("config.snapshot");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 8].copy_from_slice(&[0xAA; 8]);
    std::fs::write(&file, &bytes).unwrap();

    let dp = start_with_cache(&cp, &dir);
    let path = file.display().to_string();
    let line = wait_for(
        "the refusal to be logged",
        Duration::from_secs(15),
        || async {
            dp.proc
                .log()
                .lines()
                .find(|l| l.contains("refused") && l.contains(&path))
                .map(str::to_owned)
        },
    )
    .await;
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("checksum mismatch"), "{line}");
    assert_eq!(readyz(&dp).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_status(&dp.get("/cached/hello").await, StatusCode::NOT_FOUND);
    let status = dp.status().await.unwrap();
    assert_eq!(status["config_version"], 0, "{status}");
    assert_eq!(status["config_source"], "none", "{status}");
    assert_eq!(status["stale"], false, "{status}");

    // It waits for a control plane as before, and caches what it gets.
    cp.restart().await;
    dp.wait_for_version(v).await;
    let status = dp.status().await.unwrap();
    assert_eq!(status["config_source"], "control_plane", "{status}");
    assert_status(&dp.get("/cached/hello").await, StatusCode::OK);
    cp.wait_for_fleet(&[&dp], v).await;
    assert_ne!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the cache was rewritten"
    );
}
