//! Config distribution at scale (`bench/scale.sh` runs it): one control
//! plane on a fresh database, one data plane, one echo origin. A generated
//! declarative document with R routes (spread over up to 100 upstreams that
//! all point at the origin; distinct hosts and paths) and C consumers, each
//! with one key-auth credential given in clear, goes in as one import.
//!
//! Measured: the import (the admin call), the control plane's snapshot build
//! and encoded size (its `GET /config` `last_build`), the data plane's apply
//! time and message size (its `/status`) and its RSS before and after (from
//! /proc); then the same for a one-route PATCH, which must arrive as a delta.
//! A few requests through the proxy check that routing works at that size.
//!
//! Usage: bench-scale [--routes 10000] [--consumers 10000]
//! Prints one JSON object. Exits non-zero when something does not work (a
//! version that does not arrive, no delta, a request routed wrong); the
//! targets of issue 4 are reported with pass/fail, not enforced.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use turnpike_tests::{Answer, ControlPlane, DataPlane, Echo, Http, assert_status, drop_database};

/// Targets of issue 4, at 10,000 routes (decimal units, the strict
/// reading: 10 KB = 10,000 bytes, 200 MB = 200,000,000 bytes).
const TARGET_APPLY_MS: f64 = 500.0;
const TARGET_DELTA_BYTES: u64 = 10_000;
const TARGET_RSS_MB: f64 = 200.0;

/// Routes share hosts in groups of this size, so the router's host map
/// holds R / 100 hosts with 100 path prefixes each.
const ROUTES_PER_HOST: usize = 100;

/// A version large enough to take a while to import and distribute; a
/// stuck one still ends the run.
const WAIT: Duration = Duration::from_secs(300);

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// KiB (as /proc shows) to MB, one decimal.
fn mb(kib: u64) -> f64 {
    (kib as f64 * 1024.0 / 1e5).round() / 10.0
}

/// Which kind of message brought the version `status` reports, from its
/// counters before (`prior`) and now.
fn kind(prior: &Value, status: &Value) -> &'static str {
    let count = |s: &Value, k: &str| s[k].as_u64().unwrap_or_default();
    if count(status, "deltas_applied") > count(prior, "deltas_applied") {
        "delta"
    } else {
        "snapshot"
    }
}

/// Resident set size of `pid` now and at its peak (VmRSS, VmHWM), in KiB.
fn rss_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn host_of(route: usize) -> String {
    format!("h{}.bench.test", route / ROUTES_PER_HOST)
}

/// The imported document: `routes` routes, `consumers` consumers.
fn document(routes: usize, consumers: usize, origin: &str) -> Value {
    let upstreams = routes.clamp(1, 100);
    let upstream_list: Vec<Value> = (0..upstreams)
        .map(|u| json!({"name": format!("up-{u}"), "targets": [{"address": origin}]}))
        .collect();
    let route_list: Vec<Value> = (0..routes)
        .map(|i| {
            json!({
                "name": format!("route-{i}"),
                "hosts": [host_of(i)],
                "paths": [format!("/r{i}")],
                "upstream": format!("up-{}", i % upstreams),
            })
        })
        .collect();
    let consumer_list: Vec<Value> = (0..consumers)
        .map(|i| {
            json!({
                "username": format!("consumer-{i}"),
                // Given in clear (at least 16 characters); the control plane
                // seals it (an HMAC) on import.
                "credentials": [{"type": "key-auth", "key": format!("bench-key-{i:010}")}],
            })
        })
        .collect();
    json!({
        "format_version": "1",
        "upstreams": upstream_list,
        "routes": route_list,
        "consumers": consumer_list,
    })
}

struct Bench {
    cp: ControlPlane,
    dp: DataPlane,
    http: Http,
}

impl Bench {
    /// Polls the data plane's `/status` until it runs `version`; returns the
    /// status and how long that took.
    async fn arrival(&self, version: u64) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            if let Some(s) = self.dp.status().await
                && s["config_version"].as_u64() >= Some(version)
            {
                return (s, started.elapsed());
            }
            assert!(
                started.elapsed() < WAIT,
                "version {version} did not reach the data plane in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The control plane's last snapshot build; it must be of `version`.
    async fn build(&self, version: u64) -> Value {
        let config = self.cp.api(Method::GET, "/config", None).await.json();
        let build = config["last_build"].clone();
        assert_eq!(build["version"], version, "last build: {config}");
        json!({"build_ms": build["build_ms"], "snapshot_bytes": build["snapshot_bytes"]})
    }

    /// One request through the proxy for `host` and `path`.
    async fn request(&self, host: &str, path: &str) -> Answer {
        let url = format!("{}{path}", self.dp.proxy);
        self.http
            .send(Method::GET, &url, &[("host", host)], None)
            .await
            .expect("proxy reachable")
    }

    /// Requests to the first, middle and last route reach the origin.
    async fn check_routing(&self, routes: usize) -> usize {
        let mut checked = 0;
        for i in [0, routes / 3, routes.saturating_sub(1)] {
            if i == routes / 2 {
                continue; // moved by the one-route change
            }
            let answer = self.request(&host_of(i), &format!("/r{i}/x")).await;
            assert_status(&answer, StatusCode::OK);
            assert_eq!(answer.json()["name"], "origin", "route-{i}");
            checked += 1;
        }
        checked
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let routes = arg("--routes", 10_000);
    let consumers = arg("--consumers", 10_000);
    assert!(routes >= 1, "--routes must be at least 1");
    let (db_url, db_name) = turnpike_tests::fresh_database_url();
    let cp = ControlPlane::start(&db_url).await;
    let echo = Echo::start("origin").await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let bench = Bench {
        cp,
        dp,
        http: Http::default(),
    };
    let report = run(&bench, routes, consumers, &echo.addr).await;
    println!("{report}");
    drop(bench);
    drop(echo);
    drop_database(&db_name);
}

async fn run(b: &Bench, routes: usize, consumers: usize, origin: &str) -> Value {
    let dp_pid = b.dp.proc.pid().as_raw();
    // Version 1, the empty config of a fresh database: the data plane's
    // baseline.
    let (initial, _) = b.arrival(1).await;
    let (rss_before, _) = rss_kib(dp_pid);

    // The whole config in one write.
    let doc = document(routes, consumers, origin);
    let doc_bytes = doc.to_string().len();
    let started = Instant::now();
    let imported = b.cp.api(Method::POST, "/config/import", Some(doc)).await;
    let import_time = started.elapsed();
    assert_status(&imported, StatusCode::OK);
    let full_version = imported.version();
    let full_build = b.build(full_version).await;
    let (full, full_wait) = b.arrival(full_version).await;
    assert_eq!(full["routes"], routes, "{full}");
    let (rss_after, _) = rss_kib(dp_pid);
    let (cp_rss, cp_peak) = rss_kib(b.cp.proc.pid().as_raw());

    // One route changes: a delta.
    let moved = routes / 2;
    let started = Instant::now();
    let patch = json!({"paths": ["/moved"]});
    let patched =
        b.cp.api(
            Method::PATCH,
            &format!("/routes/route-{moved}"),
            Some(patch),
        )
        .await;
    let patch_time = started.elapsed();
    assert_status(&patched, StatusCode::OK);
    let delta_build = b.build(patched.version()).await;
    let (delta, delta_wait) = b.arrival(patched.version()).await;
    assert_eq!(kind(&full, &delta), "delta", "a one-route change: {delta}");
    let (rss_delta, rss_peak) = rss_kib(dp_pid);

    let mut requests = b.check_routing(routes).await;
    let answer = b.request(&host_of(moved), "/moved").await;
    assert_status(&answer, StatusCode::OK);
    let answer = b.request(&host_of(moved), &format!("/r{moved}")).await;
    assert_status(&answer, StatusCode::NOT_FOUND);
    requests += 2;

    let apply_ms = full["last_apply_ms"].as_f64().unwrap_or(f64::NAN);
    let delta_bytes = delta["last_config_bytes"].as_u64().unwrap_or(u64::MAX);
    json!({
        "routes": routes,
        "consumers": consumers,
        "upstreams": routes.clamp(1, 100),
        "document_bytes": doc_bytes,
        "full": {
            "import_ms": ms(import_time),
            "control_plane": full_build,
            "kind": kind(&initial, &full),
            "wire_bytes": full["last_config_bytes"],
            "apply_ms": full["last_apply_ms"],
            "arrival_after_answer_ms": ms(full_wait),
        },
        "one_route_delta": {
            "patch_ms": ms(patch_time),
            "control_plane": delta_build,
            "wire_bytes": delta["last_config_bytes"],
            "apply_ms": delta["last_apply_ms"],
            "arrival_after_answer_ms": ms(delta_wait),
        },
        "data_plane_rss_mb": {
            "before": mb(rss_before),
            "after_full": mb(rss_after),
            "after_delta": mb(rss_delta),
            "peak": mb(rss_peak),
        },
        "control_plane_rss_mb": {"after_full": mb(cp_rss), "peak": mb(cp_peak)},
        "requests_checked": requests,
        // Targets of issue 4 (stated for 10,000 routes).
        "targets": {
            "apply_under_500_ms": apply_ms < TARGET_APPLY_MS,
            "delta_under_10_kb": delta_bytes < TARGET_DELTA_BYTES,
            "rss_under_200_mb": mb(rss_after.max(rss_delta)) < TARGET_RSS_MB,
        },
    })
}
