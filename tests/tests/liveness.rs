//! A control plane that stops answering without closing its connections
//! (SIGSTOP: the kernel keeps the TCP session up, nothing is read) is found
//! out by the HTTP/2 keepalive, not by waiting forever: the data plane
//! notices, keeps serving its config, and is back on the stream soon after
//! the control plane resumes.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use serde_json::json;
use turnpike_tests::{ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_control_plane_is_detected_and_the_stream_comes_back() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let echo = Echo::start("echo-live").await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": echo.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/"], "upstream": "u"})),
        )
        .await;
    dp.wait_for_version(route.version()).await;
    dp.wait_for_connected(true).await;

    kill(cp.proc.pid(), Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    // Resume the control plane even if an assertion below fails, so its
    // log can be read and it can be killed cleanly.
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let resume = Resume(cp.proc.pid());
    dp.wait_for_connected(false).await;
    let detected = stopped.elapsed();
    assert!(
        detected <= Duration::from_secs(20),
        "a stalled stream must be detected within 20 s, took {detected:?}"
    );
    // Meanwhile the data plane serves what it has.
    let a = dp.get("/still-there").await;
    assert_status(&a, StatusCode::OK);

    drop(resume);
    dp.wait_for_connected(true).await;
    let change = cp
        .api(
            Method::PATCH,
            "/routes/r",
            Some(json!({"tags": ["after-resume"]})),
        )
        .await;
    assert_status(&change, StatusCode::OK);
    dp.wait_for_version(change.version()).await;
}
