//! `rate-limit` end to end, with real processes: two data planes sharing a
//! limit through Redis (127.0.0.1:6379) under 50 concurrent clients; a
//! local limit, per data plane; a Redis that is down, failing closed (503
//! at once) or open (200); and a data plane without `--redis-url`, which
//! refuses a config needing it.
//!
//! Counters are keyed by a random tenant (`header:x-tenant`) under a
//! plugin id of this test's own database, so parallel runs never share one.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;
use turnpike_tests::{
    Answer, ControlPlane, CountingUpstream, DataPlane, Db, Http, assert_status, fresh_database_url,
    wait_for,
};

async fn created(cp: &ControlPlane, path: &str, body: serde_json::Value) -> u64 {
    let a = cp.api(Method::POST, path, Some(body)).await;
    assert_status(&a, StatusCode::CREATED);
    a.version()
}

/// A route `name` on `/{name}` with a rate limit of `config`; returns the
/// version.
async fn limited_route(cp: &ControlPlane, name: &str, config: serde_json::Value) -> u64 {
    created(
        cp,
        "/routes",
        json!({"name": name, "paths": [format!("/{name}")], "upstream": "u"}),
    )
    .await;
    created(
        cp,
        "/plugins",
        json!({"name": "rate-limit", "route": name, "config": config}),
    )
    .await
}

async fn get(http: &Http, url: &str, tenant: &str) -> Answer {
    http.send(Method::GET, url, &[("x-tenant", tenant)], None)
        .await
        .expect("proxy reachable")
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in a {} answer", a.status))
        .to_str()
        .unwrap()
}

fn redis_url(port: u16) -> Vec<String> {
    vec!["--redis-url".into(), format!("redis://127.0.0.1:{port}")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limit_shared_by_two_data_planes_and_a_local_one() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let dps = [
        DataPlane::start_args(&cp.cluster, &cp.cluster_token, &redis_url(6379)),
        DataPlane::start_args(&cp.cluster, &cp.cluster_token, &redis_url(6379)),
    ];
    let up = CountingUpstream::start().await;
    created(
        &cp,
        "/upstreams",
        json!({"name": "u", "targets": [{"address": up.addr}]}),
    )
    .await;
    limited_route(
        &cp,
        "shared",
        json!({"limit": 100, "per": "minute", "key": "header:x-tenant",
               "policy": "redis", "fault_tolerant": false}),
    )
    .await;
    let v = limited_route(
        &cp,
        "local",
        json!({"limit": 5, "per": "minute", "key": "ip"}),
    )
    .await;
    for dp in &dps {
        dp.wait_for_version(v).await;
    }
    let http = Http::default();
    // Each data plane's connection is up before the measured run (another
    // tenant, so it does not count).
    for dp in &dps {
        let warm = get(&http, &format!("{}/shared/warm", dp.proxy), "warm-up").await;
        assert_status(&warm, StatusCode::OK);
    }

    // 50 clients, 6 requests each, alternating between the data planes.
    let tenant = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let (http, tenant) = (http.clone(), tenant.clone());
            let urls: Vec<String> = (0..6)
                .map(|i| format!("{}/shared/{c}/{i}", dps[(c + i) % 2].proxy))
                .collect();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for url in urls {
                    answers.push(get(&http, &url, &tenant).await);
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    let elapsed = started.elapsed();
    let count = |s: StatusCode| answers.iter().filter(|a| a.status == s).count();
    let (accepted, refused) = (count(StatusCode::OK), count(StatusCode::TOO_MANY_REQUESTS));
    // A check Redis does not answer within 50 ms (a loaded machine) is a
    // 503 here (fault_tolerant: false): it can only lower the count.
    let late = count(StatusCode::SERVICE_UNAVAILABLE);
    eprintln!("{accepted} accepted, {refused} refused, {late} late, in {elapsed:?}");
    assert_eq!(accepted + refused + late, 300, "only 200, 429 and 503");
    // GCRA: 100 at once, then one more every 600 ms of the run.
    let refill = (elapsed.as_secs_f64() / 0.6).ceil() as usize;
    assert!(
        (95..=100 + refill.max(1)).contains(&accepted),
        "{accepted} accepted in {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "the run took {elapsed:?}");
    for a in answers
        .iter()
        .filter(|a| a.status != StatusCode::SERVICE_UNAVAILABLE)
    {
        assert_eq!(header(a, "ratelimit-limit"), "100");
        let reset: u64 = header(a, "ratelimit-reset").parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(a, "ratelimit-remaining"), "0");
            assert_eq!(header(a, "retry-after"), "1");
            assert_eq!(a.json()["message"], "API rate limit exceeded");
        }
    }
    assert_eq!(up.matching("/shared/").len(), accepted + 2);
    let mut errors = 0;
    for dp in &dps {
        errors += dp.status().await.unwrap()["rate_limit_redis_errors"]
            .as_u64()
            .unwrap();
    }
    assert_eq!(errors, late as u64, "each late check is counted");

    // Local: 5 a minute per data plane (each counts its own).
    for dp in &dps {
        let url = format!("{}/local/x", dp.proxy);
        for i in 0..5 {
            let a = get(&http, &url, "t").await;
            assert_status(&a, StatusCode::OK);
            assert_eq!(header(&a, "ratelimit-remaining"), (4 - i).to_string());
        }
        let sixth = get(&http, &url, "t").await;
        assert_status(&sixth, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&sixth, "ratelimit-limit"), "5");
        assert_eq!(header(&sixth, "retry-after"), "12");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_or_open_and_no_redis_refuses_the_config() {
    let (url, db) = fresh_database_url();
    let _db = Db(db);
    let cp = ControlPlane::start(&url).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dp = DataPlane::start_args(&cp.cluster, &cp.cluster_token, &redis_url(closed));
    let up = CountingUpstream::start().await;
    let v0 = created(
        &cp,
        "/upstreams",
        json!({"name": "u", "targets": [{"address": up.addr}]}),
    )
    .await;
    // A data plane with no Redis at all.
    let plain = DataPlane::start(&cp.cluster, &cp.cluster_token);
    plain.wait_for_version(v0).await;
    let redis = |fault_tolerant: bool| {
        json!({"limit": 100, "key": "header:x-tenant", "policy": "redis",
               "fault_tolerant": fault_tolerant})
    };
    let first = limited_route(&cp, "closed", redis(false)).await;
    let v = limited_route(&cp, "open", redis(true)).await;
    dp.wait_for_version(v).await;
    let http = Http::default();

    for _ in 0..3 {
        let started = Instant::now();
        let a = get(&http, &format!("{}/closed/x", dp.proxy), "t").await;
        assert_status(&a, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let a = get(&http, &format!("{}/open/x", dp.proxy), "t").await;
        assert_status(&a, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(up.matching("/closed/").is_empty());
    let errors = dp.status().await.unwrap()["rate_limit_redis_errors"].as_u64();
    assert!(errors >= Some(6), "{errors:?}");

    // Without --redis-url the version is refused, and the one before
    // keeps serving.
    wait_for("the NACK", Duration::from_secs(10), || async {
        let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
        fleet["items"]
            .as_array()?
            .iter()
            .find(|n| n["node_id"] == plain.node_id.as_str())?["error"]
            .as_str()
            .is_some_and(|e| e.contains("--redis-url"))
            .then_some(())
    })
    .await;
    let kept = plain.status().await.unwrap()["config_version"].as_u64();
    assert!(kept >= Some(v0) && kept < Some(first), "{kept:?}");
}
