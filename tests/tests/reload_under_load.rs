//! Config swaps under traffic: 100 config versions are pushed to a data
//! plane while clients keep sending requests over keep-alive connections.
//! Not one request may fail: a swap never resets an in-flight request or a
//! pooled connection, and every version routes somewhere valid.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use turnpike_tests::{ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url};

const CLIENTS: usize = 4;
const PUSHES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_config_pushes_under_load_fail_no_request() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let (e1, e2) = (Echo::start("load-1").await, Echo::start("load-2").await);
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": e1.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/load"], "upstream": "u"})),
        )
        .await;
    dp.wait_for_version(route.version()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (stop, ok) = (stop.clone(), ok.clone());
        let target = format!("{}/load/{c}", dp.proxy);
        // Pooled: requests ride keep-alive connections across swaps.
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let outcome = match client.get(target.parse().unwrap()).await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.into_body().collect().await {
                            Ok(_) if status == StatusCode::OK => Ok(()),
                            Ok(_) => Err(format!("status {status}")),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                match outcome {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }

    // Each push changes what the route's upstream points at, so every swap
    // moves traffic: one target, the other, both.
    let target_sets = [
        json!([{"address": e2.addr}]),
        json!([{"address": e1.addr}, {"address": e2.addr}]),
        json!([{"address": e1.addr}]),
    ];
    let mut last = route.version();
    for i in 0..PUSHES {
        let targets = &target_sets[i % target_sets.len()];
        let a = cp
            .api(
                Method::PATCH,
                "/upstreams/u",
                Some(json!({"targets": targets})),
            )
            .await;
        assert_status(&a, StatusCode::OK);
        last = a.version();
        dp.wait_for_version(last).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    let status = dp.status().await.unwrap();
    assert_eq!(status["config_version"].as_u64(), Some(last));
    let ok = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok >= PUSHES as u64,
        "the load ran during the pushes ({ok} requests)"
    );
}
