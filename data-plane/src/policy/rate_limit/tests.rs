use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::*;
use crate::policy::{CompiledConsumer, CompiledConsumers};

pub(super) fn config(v: serde_json::Value) -> RateLimitConfig {
    serde_json::from_value(v).unwrap()
}

#[test]
fn rates_from_the_config() {
    let r = Rate::of(&config(json!({"limit": 100, "per": "minute"})));
    assert_eq!((r.limit, r.window_s, r.burst), (100, 60, 100));
    assert_eq!(r.interval(), Duration::from_millis(600));
    let r = Rate::of(&config(json!({"limit": 3, "per": "second", "burst": 10})));
    assert_eq!((r.window_s, r.burst), (1, 10));
    assert_eq!(r.interval(), Duration::from_nanos(333_333_333));
    assert_eq!(
        Rate::of(&config(json!({"limit": 1, "per": "hour"}))).interval(),
        Duration::from_secs(3600)
    );
    assert_eq!(
        Rate::of(&config(json!({"limit": 5, "window_s": 10}))).interval(),
        Duration::from_secs(2)
    );
    // Unnormalised (neither given): a minute, as the schema defaults.
    assert_eq!(Rate::of(&config(json!({"limit": 60}))).window_s, 60);
    assert_eq!(
        Rate::of(&config(json!({"limit": 1_000_000_000, "per": "second"}))).interval(),
        Duration::from_nanos(1)
    );
}

#[test]
fn seconds_round_up() {
    assert_eq!(ceil_s(Duration::ZERO), 0);
    assert_eq!(ceil_s(Duration::from_nanos(1)), 1);
    assert_eq!(ceil_s(Duration::from_secs(2)), 2);
    assert_eq!(ceil_s(Duration::from_millis(2_001)), 3);
}

struct Req {
    parts: http::request::Parts,
    ip: IpAddr,
    consumer: Option<Arc<CompiledConsumer>>,
}

fn req(headers: &[(&str, &str)], last: u8) -> Req {
    let mut b = http::Request::builder().uri("/x");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Req {
        parts: b.body(()).unwrap().into_parts().0,
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
        consumer: None,
    }
}

/// Runs the policy on a request: its headers, or its rejection.
fn run(p: &RateLimit, r: &mut Req) -> Result<HeaderMap, Box<Rejection>> {
    let consumers = CompiledConsumers::default();
    let mut ctx = RequestCtx {
        parts: &mut r.parts,
        client_ip: r.ip,
        route: "route-1",
        consumers: &consumers,
        consumer: r.consumer.clone(),
        response_headers: HeaderMap::new(),
        body_limit: None,
    };
    match p.on_request(&mut ctx) {
        Flow::Continue => Ok(ctx.response_headers),
        Flow::Reject(r) => Err(Box::new(r)),
        _ => panic!("a local rate limit answers at once"),
    }
}

fn local(v: serde_json::Value) -> RateLimit {
    RateLimit::build(Uuid::new_v4(), &config(v), &LocalRegistry::default(), None).unwrap()
}

#[test]
fn by_header_falling_back_to_the_ip() {
    let p = local(json!({"limit": 2, "per": "minute", "key": "header:x-tenant"}));
    assert_eq!(
        (p.name(), p.phase(), p.priority()),
        ("rate-limit", Phase::Limit, 900)
    );
    let a = || req(&[("x-tenant", "a")], 1);
    let h = run(&p, &mut a()).unwrap();
    assert_eq!(h["ratelimit-limit"], "2");
    assert_eq!(h["ratelimit-remaining"], "1");
    assert_eq!(h["ratelimit-reset"], "30");
    assert_eq!(run(&p, &mut a()).unwrap()["ratelimit-remaining"], "0");
    let refused = run(&p, &mut a()).unwrap_err();
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "30");
    assert_eq!(refused.headers["ratelimit-reset"], "60");
    // Another tenant from the same address has its own count.
    assert!(run(&p, &mut req(&[("x-tenant", "b")], 1)).is_ok());
    // No header: counted by the client's address, apart from tenants.
    assert!(run(&p, &mut req(&[], 1)).is_ok());
    assert!(run(&p, &mut req(&[], 1)).is_ok());
    assert!(run(&p, &mut req(&[], 1)).is_err());
    assert!(run(&p, &mut req(&[], 2)).is_ok());
}

#[test]
fn by_consumer_falling_back_to_the_ip() {
    let p = local(json!({"limit": 1, "per": "hour", "key": "consumer"}));
    let consumer = |id: Uuid| {
        Some(Arc::new(CompiledConsumer {
            id,
            username: "c".into(),
            groups: vec![],
            id_header: HeaderValue::from_static("c"),
            username_header: HeaderValue::from_static("c"),
        }))
    };
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut r = req(&[], 1);
    r.consumer = consumer(alice);
    assert!(run(&p, &mut r).is_ok());
    assert!(run(&p, &mut r).is_err());
    // Bob, from the same address, and an anonymous request each have theirs.
    r.consumer = consumer(bob);
    assert!(run(&p, &mut r).is_ok());
    assert!(run(&p, &mut req(&[], 1)).is_ok());
    assert!(run(&p, &mut req(&[], 1)).is_err());
}

#[test]
fn by_route_and_by_ip() {
    let p = local(json!({"limit": 1, "key": "route"}));
    assert!(run(&p, &mut req(&[], 1)).is_ok());
    assert!(
        run(&p, &mut req(&[], 2)).is_err(),
        "one count for the route"
    );
    let p = local(json!({"limit": 1, "key": "ip"}));
    assert!(run(&p, &mut req(&[], 1)).is_ok());
    assert!(run(&p, &mut req(&[], 2)).is_ok());
    assert!(run(&p, &mut req(&[], 1)).is_err());
}

#[test]
fn redis_policy_needs_a_redis_url() {
    let e = RateLimit::build(
        Uuid::new_v4(),
        &config(json!({"limit": 1, "policy": "redis"})),
        &LocalRegistry::default(),
        None,
    )
    .err()
    .unwrap();
    assert!(e.contains("--redis-url"), "{e}");
}
