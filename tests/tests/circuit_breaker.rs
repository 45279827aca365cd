//! The circuit breaker end to end: with `max_requests: 2`, two slow
//! requests fill the upstream and the others are answered 503 at once,
//! without reaching it; once they finish, requests pass again.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::{
    ControlPlane, DataPlane, Db, Echo, assert_status, fresh_database_url, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_cap_get_503_at_once() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let echo = Echo::start("slow").await;
    let u = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({
                "name": "capped",
                "targets": [{"address": echo.addr}],
                "circuit_breaker": {"max_requests": 2}
            })),
        )
        .await;
    assert_status(&u, StatusCode::CREATED);
    assert_eq!(u.json()["circuit_breaker"]["max_pending"], 1024);
    let r = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "capped", "paths": ["/"], "upstream": "capped"})),
        )
        .await;
    assert_status(&r, StatusCode::CREATED);
    dp.wait_for_version(r.version()).await;

    // Two slow requests hold both places...
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let proxy = dp.proxy.clone();
            tokio::spawn(async move {
                turnpike_tests::Http::default()
                    .get(&format!("{proxy}/slow?delay_ms=3000"))
                    .await
                    .unwrap()
                    .status
            })
        })
        .collect();
    wait_for(
        "two requests in progress",
        Duration::from_secs(10),
        || async {
            let v = dp.status_json("/upstreams").await?;
            (v["upstreams"][0]["requests_in_progress"] == 2).then_some(())
        },
    )
    .await;
    // ...so a third is refused at once, not queued.
    let started = Instant::now();
    let refused = dp.get("/fast").await;
    assert_status(&refused, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{}",
        refused.json()
    );
    for s in slow {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    // Both finished: places are free again.
    assert_status(&dp.get("/fast").await, StatusCode::OK);
}
