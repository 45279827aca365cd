//! The balancer's contract, per algorithm: shares over 100,000 picks,
//! nginx's smooth order, Maglev's remapping and stability, P2C steering
//! off slow targets, and that unavailable or tried targets are never
//! picked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::HeaderMap;
use turnpike_model::{Algorithm, HashOn};

use super::maglev::stable_hash;
use super::state::{InFlight, TargetState};
use super::*;

const ALL: [Algorithm; 5] = [
    Algorithm::RoundRobin,
    Algorithm::WeightedRoundRobin,
    Algorithm::LeastConnections,
    Algorithm::ConsistentHash,
    Algorithm::Latency,
];
const PICKS: usize = 100_000;

fn targets(weights: &[u32]) -> Vec<CompiledTarget> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| CompiledTarget {
            authority: format!("10.0.{}.{}:8080", i / 200, i % 200)
                .parse()
                .unwrap(),
            weight,
            state: Arc::new(TargetState::default()),
        })
        .collect()
}

fn balancer(algorithm: Algorithm, weights: &[u32]) -> CompiledBalancer {
    let hash_on = HashOn::Header("x-user".into());
    CompiledBalancer::new(algorithm, Some(&hash_on), targets(weights))
}

fn ctx(headers: &HeaderMap) -> PickContext<'_> {
    PickContext {
        headers,
        added: None,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        consumer: None,
    }
}

fn user(i: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-user", format!("user-{i}").parse().unwrap());
    h
}

/// Picks per target over `PICKS` picks, none released.
fn counts(b: &CompiledBalancer, mut headers: impl FnMut(usize) -> HeaderMap) -> Vec<usize> {
    let mut n = vec![0; b.targets().len()];
    for i in 0..PICKS {
        let h = headers(i);
        n[b.pick(&ctx(&h), &[]).unwrap()] += 1;
    }
    n
}

/// Each target's share of the picks is within `tolerance` of its share of
/// the weights (absolute, as a fraction of all picks).
fn assert_shares(counts: &[usize], weights: &[u32], tolerance: f64) {
    let total_w: u32 = weights.iter().sum();
    let total: usize = counts.iter().sum();
    for (i, (&c, &w)) in counts.iter().zip(weights).enumerate() {
        let got = c as f64 / total as f64;
        let want = f64::from(w) / f64::from(total_w);
        assert!(
            (got - want).abs() <= tolerance,
            "target {i}: share {got:.4}, weight share {want:.4} ({counts:?})"
        );
    }
}

#[test]
fn round_robin_spreads_evenly_ignoring_weights() {
    let n = counts(&balancer(Algorithm::RoundRobin, &[1, 5, 9]), |_| {
        HeaderMap::new()
    });
    assert!(n.iter().all(|&c| c.abs_diff(PICKS / 3) <= 1), "{n:?}");
}

#[test]
fn weighted_round_robin_follows_weights() {
    let n = counts(&balancer(Algorithm::WeightedRoundRobin, &[1, 2, 7]), |_| {
        HeaderMap::new()
    });
    // Exact per period of 10.
    assert_eq!(n, [PICKS / 10, PICKS / 5, PICKS * 7 / 10]);
}

#[test]
fn weighted_round_robin_is_smooth_as_nginx() {
    let b = balancer(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
    let h = HeaderMap::new();
    let seq: Vec<usize> = (0..14).map(|_| b.pick(&ctx(&h), &[]).unwrap()).collect();
    // nginx's sequence for a=5, b=1, c=1, twice.
    assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn weighted_round_robin_caps_long_periods() {
    let w = Weighted::new(&[u32::MAX, 1, 3, 1_000_000]);
    assert!(w.period() <= 8192 + 4, "{}", w.period());
    let b = balancer(Algorithm::WeightedRoundRobin, &[3_000_000, 1_000_000]);
    assert_shares(&counts(&b, |_| HeaderMap::new()), &[3, 1], 0.001);
}

#[test]
fn least_connections_when_idle_follows_weights() {
    // Nothing held: every pick sees 0 in flight everywhere, a tie broken
    // by the weighted turn, so shares are the weights exactly.
    let b = balancer(Algorithm::LeastConnections, &[1, 2, 7]);
    assert_eq!(
        counts(&b, |_| HeaderMap::new()),
        [PICKS / 10, PICKS / 5, PICKS * 7 / 10]
    );
}

#[test]
fn least_connections_balances_in_flight_per_weight() {
    let b = balancer(Algorithm::LeastConnections, &[1, 2, 3]);
    let h = HeaderMap::new();
    let _held: Vec<InFlight> = (0..600)
        .map(|_| b.targets()[b.pick(&ctx(&h), &[]).unwrap()].state.start())
        .collect();
    let in_flight: Vec<u32> = b
        .targets()
        .iter()
        .map(|t| t.state.in_flight.load(Ordering::Relaxed))
        .collect();
    assert_eq!(in_flight, [100, 200, 300]);
}

#[test]
fn least_connections_over_many_targets_uses_two_choices() {
    let weights: Vec<u32> = (0..64).map(|i| if i % 2 == 0 { 1 } else { 3 }).collect();
    let b = balancer(Algorithm::LeastConnections, &weights);
    let h = HeaderMap::new();
    // Idle: drawn by weight, so the weight-3 half gets 75%.
    let n = counts(&b, |_| HeaderMap::new());
    let heavy: usize = n.iter().skip(1).step_by(2).sum();
    assert!((heavy as f64 / PICKS as f64 - 0.75).abs() < 0.01, "{heavy}");
    // Held: in flight per weight stays close everywhere.
    let _held: Vec<InFlight> = (0..12_800)
        .map(|_| b.targets()[b.pick(&ctx(&h), &[]).unwrap()].state.start())
        .collect();
    let per_weight: Vec<f64> = b
        .targets()
        .iter()
        .map(|t| f64::from(t.state.in_flight.load(Ordering::Relaxed)) / f64::from(t.weight))
        .collect();
    let (lo, hi) = per_weight
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
    // 100 per unit of weight on average; uniform random would spread far
    // wider (±30 and more).
    assert!(hi - lo <= 8.0, "in flight per weight from {lo} to {hi}");
}

#[test]
fn consistent_hash_shares_follow_weights() {
    let weights = [1, 2, 7];
    let n = counts(&balancer(Algorithm::ConsistentHash, &weights), user);
    assert_shares(&n, &weights, 0.01);
}

/// The authority each of `keys` maps to.
fn mapping(b: &CompiledBalancer, keys: usize) -> Vec<String> {
    (0..keys)
        .map(|i| {
            let h = user(i);
            b.targets()[b.pick(&ctx(&h), &[]).unwrap()]
                .authority
                .to_string()
        })
        .collect()
}

#[test]
fn consistent_hash_removing_one_of_ten_remaps_few_keys() {
    let hash_on = HashOn::Header("x-user".into());
    let mut ts = targets(&[1; 10]);
    let before = mapping(
        &CompiledBalancer::new(Algorithm::ConsistentHash, Some(&hash_on), targets(&[1; 10])),
        PICKS,
    );
    let removed = ts.remove(3).authority.to_string();
    let after = mapping(
        &CompiledBalancer::new(Algorithm::ConsistentHash, Some(&hash_on), ts),
        PICKS,
    );
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let had_removed = before.iter().filter(|a| **a == removed).count();
    let fraction = moved as f64 / PICKS as f64;
    assert!(fraction <= 0.15, "{fraction} of the keys moved");
    // Those of the removed target must move; few others should.
    let others = (moved - had_removed) as f64 / PICKS as f64;
    assert!(others <= 0.05, "{others} of the keys moved needlessly");
}

#[test]
fn consistent_hash_is_the_same_everywhere() {
    let hash_on = HashOn::Header("x-user".into());
    let a = CompiledBalancer::new(
        Algorithm::ConsistentHash,
        Some(&hash_on),
        targets(&[1, 2, 3]),
    );
    let mut reversed = targets(&[1, 2, 3]);
    reversed.reverse();
    let b = CompiledBalancer::new(Algorithm::ConsistentHash, Some(&hash_on), reversed);
    assert_eq!(mapping(&a, 10_000), mapping(&b, 10_000));
    // Pinned: other processes and builds must agree with these.
    assert_eq!(stable_hash(b"turnpike", 0), GOLDEN_HASH);
    assert_eq!(mapping(&a, 8), GOLDEN_MAPPING);
}

const GOLDEN_HASH: u64 = 17_457_720_359_181_216_682;
const GOLDEN_MAPPING: [&str; 8] = [
    "10.0.0.1:8080",
    "10.0.0.2:8080",
    "10.0.0.2:8080",
    "10.0.0.1:8080",
    "10.0.0.0:8080",
    "10.0.0.0:8080",
    "10.0.0.2:8080",
    "10.0.0.2:8080",
];

#[test]
fn consistent_hash_reads_each_kind_of_key() {
    let ts = || targets(&[1; 50]);
    let mut h = HeaderMap::new();
    h.append("cookie", "theme=dark; sid=abc123".parse().unwrap());
    h.append("cookie", "sid=other".parse().unwrap());
    let mut only = HeaderMap::new();
    only.insert("cookie", "sid=abc123".parse().unwrap());
    let by_cookie = CompiledBalancer::new(
        Algorithm::ConsistentHash,
        Some(&HashOn::Cookie("sid".into())),
        ts(),
    );
    let first = by_cookie.pick(&ctx(&h), &[]);
    assert!((0..20).all(|_| by_cookie.pick(&ctx(&h), &[]) == first));
    assert_eq!(by_cookie.pick(&ctx(&only), &[]), first);

    let by_ip = CompiledBalancer::new(Algorithm::ConsistentHash, Some(&HashOn::Ip), ts());
    let empty = HeaderMap::new();
    let v4 = PickContext {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        ..ctx(&empty)
    };
    let mapped = PickContext {
        client_ip: IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()),
        ..v4
    };
    let other = PickContext {
        client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ..v4
    };
    assert_eq!(by_ip.pick(&v4, &[]), by_ip.pick(&mapped, &[]));
    assert!((0..20).all(|_| by_ip.pick(&v4, &[]) == by_ip.pick(&v4, &[])));
    assert!(by_ip.pick(&other, &[]).is_some());

    let by_consumer =
        CompiledBalancer::new(Algorithm::ConsistentHash, Some(&HashOn::Consumer), ts());
    let alice = PickContext {
        consumer: Some("alice"),
        ..ctx(&empty)
    };
    let first = by_consumer.pick(&alice, &[]);
    assert!((0..20).all(|_| by_consumer.pick(&alice, &[]) == first));
    // Keyless requests go round robin: 50 picks, 50 targets.
    let mut seen: Vec<usize> = (0..50)
        .map(|_| by_consumer.pick(&ctx(&empty), &[]).unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 50);
}

#[test]
fn consistent_hash_fails_over_to_the_same_backup() {
    let b = balancer(Algorithm::ConsistentHash, &[1; 10]);
    for i in 0..100 {
        let h = user(i);
        let first = b.pick(&ctx(&h), &[]).unwrap();
        let backup = b.pick(&ctx(&h), &[first]).unwrap();
        assert_ne!(backup, first);
        assert_eq!(b.pick(&ctx(&h), &[first]), Some(backup));
        // Ejected rather than tried: the same backup.
        let state = &b.targets()[first].state;
        state.ejected_until_ms.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(b.pick(&ctx(&h), &[]), Some(backup));
        state.ejected_until_ms.store(0, Ordering::Relaxed);
    }
}

#[test]
fn latency_prefers_fast_targets() {
    // A fast (1 ms) and a slow (10 ms) target; 20 requests a tick of
    // 1 ms, each held for its target's latency.
    let b = balancer(Algorithm::Latency, &[1; 2]);
    let latency_ms = [1, 10];
    for (t, &ms) in b.targets().iter().zip(&latency_ms) {
        t.state
            .observe_latency(Duration::from_millis(ms), std::time::Instant::now());
    }
    let h = HeaderMap::new();
    let mut held: Vec<(u64, InFlight)> = Vec::new();
    let mut n = [0usize; 2];
    for tick in 0..2_000u64 {
        held.retain(|(end, _)| *end > tick);
        for _ in 0..20 {
            let i = b.pick(&ctx(&h), &[]).unwrap();
            n[i] += 1;
            held.push((tick + latency_ms[i], b.targets()[i].state.start()));
        }
    }
    let [fast, slow] = n;
    assert!(fast >= 4 * slow, "fast {fast}, slow {slow}");
    // Cost grows with what is in flight, so the slow one still gets some.
    assert!(slow > 0, "fast {fast}, slow {slow}");
}

#[test]
fn latency_sends_one_request_at_a_time_to_an_unmeasured_target() {
    let b = balancer(Algorithm::Latency, &[1; 3]);
    b.targets()[0]
        .state
        .observe_latency(Duration::from_millis(5), std::time::Instant::now());
    b.targets()[1]
        .state
        .observe_latency(Duration::from_millis(5), std::time::Instant::now());
    let h = HeaderMap::new();
    let _held: Vec<InFlight> = (0..300)
        .map(|_| b.targets()[b.pick(&ctx(&h), &[]).unwrap()].state.start())
        .collect();
    assert_eq!(b.targets()[2].state.in_flight.load(Ordering::Relaxed), 1);
}

#[test]
fn unavailable_and_tried_targets_are_never_picked() {
    for algorithm in ALL {
        let b = balancer(algorithm, &[1, 5, 1, 2, 1, 3]);
        let ts = b.targets();
        ts[1]
            .state
            .ejected_until_ms
            .store(u64::MAX, Ordering::Relaxed);
        ts[2].state.healthy.store(false, Ordering::Relaxed);
        let mut seen = [0usize; 6];
        for i in 0..10_000 {
            let h = user(i);
            seen[b.pick(&ctx(&h), &[3]).unwrap()] += 1;
        }
        assert_eq!(seen[1..=3], [0, 0, 0], "{algorithm:?}: {seen:?}");
        assert!(
            seen.iter().filter(|&&c| c > 0).count() == 3,
            "{algorithm:?}: {seen:?}"
        );
        assert_eq!(b.pick(&ctx(&user(1)), &[0, 3, 4, 5]), None, "{algorithm:?}");
        for t in ts {
            t.state.healthy.store(false, Ordering::Relaxed);
        }
        assert_eq!(b.pick(&ctx(&user(1)), &[]), None, "{algorithm:?}");
        assert_eq!(balancer(algorithm, &[]).pick(&ctx(&user(1)), &[]), None);
    }
}

#[test]
fn one_available_target_is_always_picked() {
    for algorithm in ALL {
        let b = balancer(algorithm, &[1; 40]);
        for t in &b.targets()[1..] {
            t.state.ejected_until_ms.store(u64::MAX, Ordering::Relaxed);
        }
        for i in 0..1_000 {
            assert_eq!(b.pick(&ctx(&user(i)), &[]), Some(0), "{algorithm:?}");
        }
    }
}
