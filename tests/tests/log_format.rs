//! The processes' own logs: with `--log-format json` every line either
//! process prints (stdout and stderr) is a JSON object with `timestamp`,
//! `level` and `message`; with `text`, every line starts with a timestamp
//! and a level. The level comes from `TURNPIKE_LOG`, else `RUST_LOG`.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use turnpike_tests::process::Proc;
use turnpike_tests::{
    ControlPlane, DataPlane, Db, Echo, assert_status, free_port, fresh_database_url, wait_for,
};

const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

/// A control plane and a data plane with these flags, a route through
/// them used once, then both stopped with SIGTERM; their whole output.
async fn run_both(extra: &[String]) -> (String, String) {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let mut cp = ControlPlane::start_args(&url, extra).await;
    let mut dp = DataPlane::start_args(&cp.cluster, &cp.cluster_token, extra);
    let echo = Echo::start("e").await;
    let u = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": echo.addr}]})),
        )
        .await;
    assert_status(&u, StatusCode::CREATED);
    let r = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/"], "upstream": "u"})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    dp.wait_for_version(r.version()).await;
    assert_status(&dp.get("/hello").await, StatusCode::OK);
    assert_eq!(dp.proc.terminate(Duration::from_secs(20)), Some(0));
    assert_eq!(cp.proc.terminate(Duration::from_secs(20)), Some(0));
    (cp.proc.log(), dp.proc.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line() {
    let (cp, dp) = run_both(&["--log-format".into(), "json".into()]).await;
    for (who, text, expected) in [
        ("control plane", &cp, "control plane listening"),
        ("data plane", &dp, "config applied"),
    ] {
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{who}: not JSON ({e}): {l}"))
            })
            .collect();
        assert!(lines.len() >= 2, "{who}: {text}");
        for l in &lines {
            assert!(l.is_object(), "{who}: {l}");
            let level = l["level"].as_str().unwrap_or_else(|| panic!("{who}: {l}"));
            assert!(LEVELS.contains(&level), "{who}: {l}");
            let time = l["timestamp"]
                .as_str()
                .unwrap_or_else(|| panic!("{who}: {l}"));
            assert!(is_rfc3339(time), "{who}: {l}");
            assert!(l["message"].is_string(), "{who}: {l}");
        }
        assert!(
            lines.iter().any(|l| l["message"] == expected),
            "{who}: no '{expected}' in {text}"
        );
        // SIGTERM is logged too, as JSON.
        assert!(
            lines.iter().any(|l| l["message"] == "shutting down"),
            "{who}: {text}"
        );
    }
    // The event's fields sit beside the message, at the top level.
    let applied = dp
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message"] == "config applied")
        .unwrap();
    assert!(applied["version"].as_u64().is_some(), "{applied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_start_with_time_and_level() {
    let (cp, dp) = run_both(&["--log-format".into(), "text".into()]).await;
    for (who, text) in [("control plane", &cp), ("data plane", &dp)] {
        let mut n = 0;
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            assert!(serde_json::from_str::<Value>(l).is_err(), "{who}: {l}");
            let mut words = l.split_whitespace();
            let (time, level) = (words.next().unwrap(), words.next().unwrap_or(""));
            assert!(is_rfc3339(time) && LEVELS.contains(&level), "{who}: {l}");
            n += 1;
        }
        assert!(n >= 2, "{who}: {text}");
    }
    assert!(dp.contains("config applied"), "{dp}");
}

/// `2025-01-02T03:04:05.123456Z` and the like: date, `T`, time, `Z`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && s.ends_with('Z')
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}

/// A data plane with no control plane to reach (it logs a WARN per
/// attempt), with these environment changes.
fn lone_data_plane(env: &[(&str, Option<&str>)]) -> (Proc, String) {
    let proxy = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> = [
        "data-plane",
        "--control-plane",
        &format!("http://127.0.0.1:{}", free_port()),
        "--proxy-listen",
        &proxy,
        "--status-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--cluster-token",
        "cluster-token-for-logs",
        "--worker-threads",
        "1",
    ]
    .map(String::from)
    .to_vec();
    (Proc::spawn_with_env("dp-logs", &args, env), proxy)
}

async fn wait_for_line(p: &Proc, needle: &str) -> String {
    wait_for(
        &format!("'{needle}' logged"),
        Duration::from_secs(20),
        || async {
            let log = p.log();
            log.contains(needle).then_some(log)
        },
    )
    .await
}

/// A request the proxy cannot parse: refused (400), which the listener
/// logs at DEBUG.
async fn garbage(proxy: &str) {
    let connected = wait_for("the proxy listening", Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(proxy).await.ok()
    });
    let mut stream = connected.await;
    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let _ = stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_sets_the_level_unless_turnpike_log_does() {
    // RUST_LOG=warn: the WARN of the failed stream, never the INFO logged
    // before it ("data plane listening").
    let (p, _) = lone_data_plane(&[("TURNPIKE_LOG", None), ("RUST_LOG", Some("warn"))]);
    let log = wait_for_line(&p, "config stream failed").await;
    assert!(
        !log.contains("INFO") && !log.contains("data plane listening"),
        "{log}"
    );
    drop(p);

    // RUST_LOG=debug: the listener's DEBUG lines show.
    let (p, proxy) = lone_data_plane(&[("TURNPIKE_LOG", None), ("RUST_LOG", Some("debug"))]);
    wait_for_line(&p, "data plane listening").await;
    garbage(&proxy).await;
    let log = wait_for_line(&p, "request head refused").await;
    assert!(log.contains("DEBUG"), "{log}");
    drop(p);

    // TURNPIKE_LOG wins over RUST_LOG.
    let (p, _) = lone_data_plane(&[("TURNPIKE_LOG", Some("warn")), ("RUST_LOG", Some("debug"))]);
    let log = wait_for_line(&p, "config stream failed").await;
    assert!(
        !log.contains("data plane listening") && !log.contains("DEBUG"),
        "{log}"
    );
    drop(p);

    // Neither: INFO.
    let (p, _) = lone_data_plane(&[("TURNPIKE_LOG", None), ("RUST_LOG", None)]);
    let log = wait_for_line(&p, "config stream failed").await;
    assert!(
        log.contains("data plane listening") && !log.contains("DEBUG"),
        "{log}"
    );
}
