//! Against the Redis every development and CI machine runs at
//! 127.0.0.1:6379; each test counts under a prefix of its own.

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::*;
use crate::policy::rate_limit::local::LocalRegistry;
use crate::policy::rate_limit::tests::config;
use crate::policy::rate_limit::{RateLimit, headers};
use crate::policy::{CompiledConsumers, Flow, Policy, Rejection, RequestCtx};

const URL: &str = "redis://127.0.0.1:6379";

/// Counting tests wait longer than [`TIMEOUT`], so a loaded machine does
/// not turn them into timeout tests.
const PATIENT: Duration = Duration::from_secs(2);

fn backend(url: &str, timeout: Duration) -> (Arc<RedisBackend>, Arc<AtomicU64>) {
    let errors = Arc::new(AtomicU64::new(0));
    let prefix = format!("turnpike-test:{}:", Uuid::new_v4());
    let b = RedisBackend::connect(url, &prefix, timeout, errors.clone()).unwrap();
    (Arc::new(b), errors)
}

/// Connected, so a busy machine's first connect does not eat the first
/// check's 50 ms.
async fn warm(b: &RedisBackend) {
    let mut conn = b.conn.clone();
    let ping = cmd("PING");
    let ping = ping.query_async::<String>(&mut conn);
    let pong = tokio::time::timeout(Duration::from_secs(5), ping).await;
    assert_eq!(
        pong.ok().and_then(Result::ok).as_deref(),
        Some("PONG"),
        "Redis at {URL}"
    );
}

async fn live() -> (Arc<RedisBackend>, Arc<AtomicU64>) {
    let (b, errors) = backend(URL, PATIENT);
    warm(&b).await;
    (b, errors)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn per_minute(limit: u64) -> Rate {
    Rate {
        limit,
        window_s: 60,
        burst: limit,
    }
}

const WHO: KeyRef<'static> = KeyRef::Ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));

#[tokio::test]
async fn exactly_the_limit_of_sequential_checks() {
    let (b, errors) = live().await;
    let l = RedisLimiter::new(b, Uuid::new_v4(), per_minute(100), false);
    let key = l.key(&WHO);
    let mut decisions = Vec::new();
    for _ in 0..150 {
        decisions.push(l.check(&key).await.expect("Redis answers"));
    }
    let allowed: Vec<_> = decisions.iter().filter(|d| d.allowed).collect();
    assert_eq!(allowed.len(), 100);
    assert!(decisions[..100].iter().all(|d| d.allowed));
    let remaining: Vec<u64> = allowed.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, (0..100).rev().collect::<Vec<u64>>());
    assert!(allowed[0].reset <= Duration::from_millis(600));
    let refused = &decisions[149];
    assert_eq!(refused.remaining, 0);
    // Within the 600 ms until one more is allowed; a minute until all are.
    assert!(refused.retry_after > Duration::ZERO);
    assert!(refused.retry_after <= Duration::from_millis(600));
    assert!(refused.reset > Duration::from_secs(59) && refused.reset <= Duration::from_secs(60));
    let h = headers(refused, &HeaderValue::from(100u64));
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    // Another key starts full.
    let other = l.key(&KeyRef::Header(b"someone-else"));
    assert_eq!(l.check(&other).await.unwrap().remaining, 99);
}

#[tokio::test]
async fn two_data_planes_share_the_limit() {
    // Two backends (two connections, as two data plane processes) under the
    // same prefix and plugin id.
    let prefix = format!("turnpike-test:{}:", Uuid::new_v4());
    let errors = Arc::new(AtomicU64::new(0));
    let connect =
        || Arc::new(RedisBackend::connect(URL, &prefix, PATIENT, errors.clone()).unwrap());
    let id = Uuid::new_v4();
    let (ba, bb) = (connect(), connect());
    warm(&ba).await;
    warm(&bb).await;
    let a = Arc::new(RedisLimiter::new(ba, id, per_minute(100), false));
    let b = Arc::new(RedisLimiter::new(bb, id, per_minute(100), false));
    let key = a.key(&WHO);
    assert_eq!(key, b.key(&WHO));
    // 200 concurrent checks, half through each.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            let key = key.clone();
            tokio::spawn(async move { l.check(&key).await })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap().expect("Redis answers").allowed {
            allowed += 1;
        }
    }
    // A GCRA gives back one every 600 ms: at most one more if slow.
    assert!((100..=101).contains(&allowed), "{allowed} allowed");
    assert_eq!(errors.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn survives_a_flushed_script_cache() {
    let (b, _errors) = live().await;
    let l = RedisLimiter::new(b.clone(), Uuid::new_v4(), per_minute(10), false);
    let key = l.key(&WHO);
    assert!(l.check(&key).await.unwrap().allowed);
    let mut conn = b.conn.clone();
    let _: () = cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    // NOSCRIPT: the same call by EVAL, counting on.
    assert_eq!(l.check(&key).await.unwrap().remaining, 8);
}

async fn through_policy(fault_tolerant: bool, backend: Arc<RedisBackend>) -> Result<(), Rejection> {
    let cfg = config(json!({"limit": 5, "policy": "redis", "fault_tolerant": fault_tolerant}));
    let p = RateLimit::build(
        Uuid::new_v4(),
        &cfg,
        &LocalRegistry::default(),
        Some(backend),
    )
    .unwrap();
    let mut parts = http::Request::get("/").body(()).unwrap().into_parts().0;
    let consumers = CompiledConsumers::default();
    let mut ctx = RequestCtx {
        parts: &mut parts,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        route: "r",
        consumers: &consumers,
        consumer: None,
        response_headers: http::HeaderMap::new(),
        body_limit: None,
    };
    let Flow::Wait(f) = p.on_request(&mut ctx) else {
        panic!("a redis rate limit waits for Redis");
    };
    f.await.map(|_| ())
}

#[tokio::test]
async fn unreachable_redis_fails_open_or_closed_quickly() {
    let (b, errors) = backend(&format!("redis://127.0.0.1:{}", closed_port()), TIMEOUT);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(
            through_policy(true, b.clone()).await.map_err(|r| r.status),
            Ok(())
        );
        let refused = through_policy(false, b.clone()).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(errors.load(Ordering::Relaxed), 6);
}

#[tokio::test]
async fn a_redis_that_does_not_answer_is_cut_at_the_timeout() {
    // Accepts connections but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let (b, errors) = backend(&format!("redis://127.0.0.1:{port}"), TIMEOUT);
    let started = Instant::now();
    let refused = through_policy(false, b).await.unwrap_err();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(errors.load(Ordering::Relaxed), 1);
    hold.abort();
}
