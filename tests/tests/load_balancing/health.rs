//! Upstream health end to end: a killed target hidden by retries, taken out
//! by checks and brought back; every target out answered by a fast 503.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_target_is_hidden_by_retries_taken_out_and_brought_back() {
    let s = setup().await;
    let a = Echo::start("a").await;
    let mut b = Echo::start("b").await;
    let c = Echo::start("c").await;
    let addrs = [a.addr.as_str(), b.addr.as_str(), c.addr.as_str()];
    let v = s
        .create(
            json!({
                "name": "trio",
                "algorithm": "round_robin",
                "retries": 2,
                "targets": addrs.map(|a| json!({"address": a})),
                "health_checks": {
                    "active": {
                        "path": "/health",
                        "interval_ms": 200,
                        "timeout_ms": 500,
                        "healthy_threshold": 2,
                        "unhealthy_threshold": 2
                    },
                    "passive": {
                        "consecutive_failures": 3,
                        "ejection_ms": 1000,
                        "max_ejection_ms": 2000
                    }
                }
            }),
            "/trio",
        )
        .await;
    s.dp.wait_for_version(v).await;
    let all = s.tally("/trio", 9).await;
    assert_eq!(
        all.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{all:?}"
    );

    // Killed: retries hide it from the clients.
    b.proc.kill();
    let during = s.tally("/trio", 30).await;
    assert_eq!(count(&during, "b"), 0, "{during:?}");
    assert_eq!(count(&during, "a") + count(&during, "c"), 30, "{during:?}");

    // The active checks take it out.
    wait_for(
        "b unhealthy and out of rotation",
        Duration::from_secs(10),
        || async {
            let t = s.target("trio", &b.addr).await;
            (t["healthy"] == false && t["available"] == false).then_some(())
        },
    )
    .await;
    let t = s.target("trio", &b.addr).await;
    assert!(t["failures"].as_u64().unwrap() >= 1, "{t}");

    // Out of rotation, it gets no attempt at all while the others grow.
    let before = s.requests("trio", &addrs).await;
    let out = s.tally("/trio", 30).await;
    let after = s.requests("trio", &addrs).await;
    assert_eq!(count(&out, "b"), 0, "{out:?}");
    assert_eq!(
        after[1], before[1],
        "b got attempts while out: {before:?} → {after:?}"
    );
    assert!(
        after[0] > before[0] && after[2] > before[2],
        "{before:?} → {after:?}"
    );
    assert_eq!(
        (after[0] - before[0]) + (after[2] - before[2]),
        30,
        "one attempt per request: {before:?} → {after:?}"
    );

    // Back on the same address: in rotation again after the healthy
    // threshold, and served its turns.
    let _revived = Echo::start_on("b-revived", &b.addr).await;
    wait_for(
        "b healthy and in rotation again",
        Duration::from_secs(10),
        || async {
            let t = s.target("trio", &b.addr).await;
            (t["healthy"] == true && t["available"] == true).then_some(())
        },
    )
    .await;
    let back = s.tally("/trio", 9).await;
    assert_eq!(count(&back, "b-revived"), 3, "{back:?}");
    assert_eq!(count(&back, "a"), 3, "{back:?}");
    assert_eq!(count(&back, "c"), 3, "{back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_target_out_the_answer_is_a_fast_503() {
    let s = setup().await;
    let dead = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let targets: Vec<Value> = dead.iter().map(|a| json!({"address": a})).collect();
    // Ejected by passive checks after their first failure.
    s.create(
        json!({
            "name": "ejected",
            "retries": 1,
            "targets": targets,
            "health_checks": {"passive": {
                "consecutive_failures": 1,
                "ejection_ms": 60000,
                "max_ejection_ms": 60000,
                "max_ejected_percent": 100
            }}
        }),
        "/ejected",
    )
    .await;
    // Taken out by active checks, never tried by a request.
    let dark = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let v = s
        .create(
            json!({
                "name": "dark",
                "targets": dark.iter().map(|a| json!({"address": a})).collect::<Vec<_>>(),
                "health_checks": {"active": {"interval_ms": 100, "unhealthy_threshold": 1}}
            }),
            "/dark",
        )
        .await;
    s.dp.wait_for_version(v).await;

    // The first request tries both (refused), which ejects both: 502.
    let first = s.get("/ejected", &[]).await;
    assert_status(&first, StatusCode::BAD_GATEWAY);
    for a in &dead {
        let t = s.target("ejected", a).await;
        assert_eq!(t["ejected"], true, "{t}");
        assert_eq!(t["requests"], 1, "{t}");
    }
    let started = Instant::now();
    let none = s.get("/ejected", &[]).await;
    let took = started.elapsed();
    assert_status(&none, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(100), "503 took {took:?}");
    for a in &dead {
        let t = s.target("ejected", a).await;
        assert_eq!(t["requests"], 1, "an ejected target was tried: {t}");
    }

    wait_for(
        "both dark targets unhealthy",
        Duration::from_secs(10),
        || async {
            let mut all = true;
            for a in &dark {
                all &= s.target("dark", a).await["healthy"] == false;
            }
            all.then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let none = s.get("/dark", &[]).await;
    let took = started.elapsed();
    assert_status(&none, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(100), "503 took {took:?}");
    for a in &dark {
        let t = s.target("dark", a).await;
        assert_eq!(t["requests"], 0, "an unhealthy target was tried: {t}");
    }
}
