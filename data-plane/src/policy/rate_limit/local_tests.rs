use std::net::{IpAddr, Ipv4Addr};

use governor::clock::FakeRelativeClock;
use http::HeaderValue;

use super::*;
use crate::policy::rate_limit::{KeyRef, headers};

fn rate(limit: u64, window_s: u32, burst: Option<u64>) -> Rate {
    Rate {
        limit,
        window_s,
        burst: burst.unwrap_or(limit),
    }
}

fn ip(last: u8) -> KeyRef<'static> {
    KeyRef::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
}

fn fake(r: Rate) -> (LocalLimiter<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (LocalLimiter::with_clock(r, clock.clone()), clock)
}

fn allowed<C: Clock + Clone>(l: &LocalLimiter<C>, key: u128, n: usize) -> usize {
    (0..n).filter(|_| l.check(key).allowed).count()
}

#[test]
fn exactly_the_limit_then_refused() {
    let (l, _clock) = fake(rate(10, 60, None));
    let k = l.key(&ip(1));
    let remaining: Vec<u64> = (0..10).map(|_| l.check(k)).map(|d| d.remaining).collect();
    assert_eq!(remaining, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    let refused = l.check(k);
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // One request every 6 s: the next in 6 s, all ten back in 60 s.
    assert_eq!(refused.retry_after, Duration::from_secs(6));
    assert_eq!(refused.reset, Duration::from_secs(60));
    assert_eq!(allowed(&l, k, 100), 0);
}

#[test]
fn burst_smaller_than_the_limit() {
    let (l, clock) = fake(rate(10, 60, Some(3)));
    let k = l.key(&ip(1));
    assert_eq!(allowed(&l, k, 10), 3);
    clock.advance(Duration::from_secs(6));
    assert_eq!(allowed(&l, k, 10), 1);
    // A long pause refills up to the burst, never past it.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(allowed(&l, k, 10), 3);
}

#[test]
fn burst_larger_than_the_limit() {
    let (l, clock) = fake(rate(2, 1, Some(5)));
    let k = l.key(&ip(1));
    assert_eq!(allowed(&l, k, 10), 5);
    clock.advance(Duration::from_millis(500));
    assert_eq!(allowed(&l, k, 10), 1);
}

#[test]
fn refills_with_time() {
    let (l, clock) = fake(rate(10, 60, None));
    let k = l.key(&ip(1));
    assert_eq!(allowed(&l, k, 20), 10);
    clock.advance(Duration::from_millis(5_999));
    assert_eq!(allowed(&l, k, 5), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(allowed(&l, k, 5), 1);
    clock.advance(Duration::from_secs(30));
    assert_eq!(allowed(&l, k, 20), 5);
    clock.advance(Duration::from_secs(120));
    assert_eq!(allowed(&l, k, 20), 10);
}

#[test]
fn keys_are_independent() {
    let (l, _clock) = fake(rate(3, 60, None));
    let keys = [
        l.key(&ip(1)),
        l.key(&ip(2)),
        l.key(&KeyRef::Header(b"tenant-a")),
        l.key(&KeyRef::Header(b"tenant-b")),
        l.key(&KeyRef::Route("r1")),
        l.key(&KeyRef::Consumer(Uuid::nil())),
    ];
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(allowed(&l, *k, 5), 3, "key {i}");
    }
    // The same text counted as another kind is another key.
    assert_ne!(l.key(&KeyRef::Route("x")), l.key(&KeyRef::Header(b"x")));
    assert_eq!(l.key(&KeyRef::Header(b"x")), l.key(&KeyRef::Header(b"x")));
}

#[test]
fn headers_of_allowed_and_refused_requests() {
    let (l, clock) = fake(rate(10, 60, None));
    let k = l.key(&ip(1));
    let limit = HeaderValue::from(10u64);
    let h = headers(&l.check(k), &limit);
    let get = |h: &http::HeaderMap, n: &str| h.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(get(&h, "ratelimit-limit"), "10");
    assert_eq!(get(&h, "ratelimit-remaining"), "9");
    assert_eq!(get(&h, "ratelimit-reset"), "6");
    assert!(h.get("retry-after").is_none());
    for _ in 0..9 {
        l.check(k);
    }
    clock.advance(Duration::from_millis(1_500));
    let d = l.check(k);
    assert!(!d.allowed);
    let r = crate::policy::rate_limit::too_many(headers(&d, &limit));
    assert_eq!(r.status, http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(get(&r.headers, "ratelimit-limit"), "10");
    assert_eq!(get(&r.headers, "ratelimit-remaining"), "0");
    // 4.5 s until the next one (rounded up), 58.5 s until all ten.
    assert_eq!(get(&r.headers, "retry-after"), "5");
    assert_eq!(get(&r.headers, "ratelimit-reset"), "59");
}

#[test]
fn pruning_drops_only_full_counters() {
    let (l, clock) = fake(rate(10, 60, None));
    for i in 0..200u8 {
        l.check(l.key(&ip(i)));
    }
    assert_eq!(l.len(), 200);
    clock.advance(Duration::from_secs(30));
    let busy = l.key(&ip(7));
    assert_eq!(allowed(&l, busy, 10), 10);
    clock.advance(Duration::from_secs(31));
    l.prune();
    // Everyone else is back to full: indistinguishable from absent.
    assert_eq!(l.len(), 1);
    // The busy key kept its state: 31 s gave back 5 of its 10.
    assert_eq!(l.check(busy).remaining, 4);
}

#[test]
fn registry_keeps_a_limiter_while_its_rate_is_unchanged() {
    let reg = LocalRegistry::default();
    let id = Uuid::new_v4();
    let r = rate(5, 60, None);
    let first = reg.get(id, r);
    let k = first.key(&ip(1));
    assert_eq!((0..5).filter(|_| first.check(k).allowed).count(), 5);
    // A "reload": the new config version asks again for the same plugin.
    let again = reg.get(id, r);
    assert!(Arc::ptr_eq(&first, &again));
    assert!(!again.check(k).allowed, "state survives the reload");
    // Another rate or another plugin: another limiter.
    assert!(!Arc::ptr_eq(&first, &reg.get(id, rate(6, 60, None))));
    assert!(!Arc::ptr_eq(&first, &reg.get(Uuid::new_v4(), r)));
    // Once no config holds it, it is gone.
    drop((first, again));
    let fresh = reg.get(id, r);
    assert!(fresh.check(fresh.key(&ip(1))).allowed);
    reg.prune();
}
