//! Config propagation benchmark (`bench/propagation.sh` runs it): one
//! control plane, N data planes, W admin writes one after another. For each
//! write, the time from sending it until every data plane has acknowledged
//! its version in the fleet view (`GET /api/v1/data-planes`), which is what
//! an operator sees: write, stream, validate, compile, swap, ACK, record.
//!
//! Usage: bench-propagation [--writes 200] [--data-planes 5]
//! Prints one JSON object with p50, p99 and max in milliseconds.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::{ControlPlane, DataPlane, Echo, assert_status, drop_database};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let writes = arg("--writes", 200);
    let nodes = arg("--data-planes", 5);
    let (db_url, db_name) = turnpike_tests::fresh_database_url();
    let cp = ControlPlane::start(&db_url).await;
    let echo = Echo::start("origin").await;
    let dps: Vec<DataPlane> = (0..nodes)
        .map(|_| DataPlane::start(&cp.cluster, &cp.cluster_token))
        .collect();
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "origin", "targets": [{"address": echo.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "bench", "paths": ["/"], "upstream": "origin"})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    let refs: Vec<&DataPlane> = dps.iter().collect();
    cp.wait_for_fleet(&refs, route.version()).await;

    let mut samples = Vec::with_capacity(writes);
    for i in 0..writes {
        let started = Instant::now();
        let answer = cp
            .api(
                Method::PATCH,
                "/routes/bench",
                Some(json!({"tags": [format!("write-{i}")]})),
            )
            .await;
        assert_status(&answer, StatusCode::OK);
        let version = answer.version();
        loop {
            let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
            let items = fleet["items"].as_array().cloned().unwrap_or_default();
            let done = dps.iter().all(|dp| {
                items.iter().any(|n| {
                    n["node_id"] == dp.node_id.as_str()
                        && n["config_version"].as_u64() >= Some(version)
                })
            });
            if done {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "version {version} did not reach every data plane in 30 s"
            );
            // A short pause so the poller does not take the cores the
            // control plane and data planes are measured on.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let report = json!({
        "writes": writes,
        "data_planes": nodes,
        "p50_ms": quantile(&samples, 0.50),
        "p99_ms": quantile(&samples, 0.99),
        "max_ms": samples.last().copied().unwrap_or_default(),
    });
    println!("{report}");
    drop(dps);
    drop(cp);
    drop_database(&db_name);
}
