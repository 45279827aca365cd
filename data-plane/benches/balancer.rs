//! Pick cost per load-balancing algorithm at 10 and 1,000 targets: the
//! proxy runs one pick per request attempt. Targets have mixed weights,
//! some requests in flight and latency samples, all available; consistent
//! hashing cycles through 1,024 header keys. One thread, so this is the
//! cost without contention on the shared cursors. Samples are 1,000 picks:
//! left to calibrate, divan sometimes times single picks, which measures
//! its timer. Run with
//! `cargo bench -p turnpike-data-plane --bench balancer` (numbers in
//! docs/PERFORMANCE.md).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use divan::{Bencher, black_box};
use http::HeaderMap;
use turnpike_data_plane::balancer::state::TargetState;
use turnpike_data_plane::balancer::{CompiledBalancer, CompiledTarget, PickContext};
use turnpike_model::{Algorithm, HashOn};

fn main() {
    divan::main();
}

const SIZES: [usize; 2] = [10, 1_000];

fn balancer(algorithm: Algorithm, n: usize) -> CompiledBalancer {
    let targets = (0..n)
        .map(|i| {
            let state = Arc::new(TargetState::default());
            state.in_flight.store((i % 7) as u32, Ordering::Relaxed);
            let rtt = Duration::from_micros(500 + (i as u64 * 37) % 5_000);
            state.observe_latency(rtt, std::time::Instant::now());
            CompiledTarget {
                authority: format!("10.{}.{}.{}:8080", i / 65_536, i / 256 % 256, i % 256)
                    .parse()
                    .unwrap(),
                weight: 1 + (i % 10) as u32,
                state,
            }
        })
        .collect();
    let hash_on = HashOn::Header("x-user".into());
    let hash_on = (algorithm == Algorithm::ConsistentHash).then_some(&hash_on);
    CompiledBalancer::new(algorithm, hash_on, targets)
}

fn run(bencher: Bencher, algorithm: Algorithm, n: usize) {
    let b = balancer(algorithm, n);
    let headers: Vec<HeaderMap> = (0..1024)
        .map(|i| {
            let mut h = HeaderMap::new();
            h.insert("x-user", format!("user-{i}").parse().unwrap());
            h
        })
        .collect();
    let pick = move |k: usize| {
        let ctx = PickContext {
            headers: &headers[k % headers.len()],
            added: None,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            consumer: None,
        };
        b.pick(black_box(&ctx), black_box(&[]))
    };
    // Warm up (caches, the thread's RNG): the first benchmark of a run
    // otherwise measures the process starting.
    for k in 0..100_000 {
        black_box(pick(k));
    }
    let mut k = 0;
    bencher.bench_local(move || {
        k += 1;
        pick(k)
    });
}

#[divan::bench(args = SIZES, sample_size = 1000)]
fn round_robin(bencher: Bencher, n: usize) {
    run(bencher, Algorithm::RoundRobin, n);
}

#[divan::bench(args = SIZES, sample_size = 1000)]
fn weighted_round_robin(bencher: Bencher, n: usize) {
    run(bencher, Algorithm::WeightedRoundRobin, n);
}

#[divan::bench(args = SIZES, sample_size = 1000)]
fn least_connections(bencher: Bencher, n: usize) {
    run(bencher, Algorithm::LeastConnections, n);
}

#[divan::bench(args = SIZES, sample_size = 1000)]
fn consistent_hash(bencher: Bencher, n: usize) {
    run(bencher, Algorithm::ConsistentHash, n);
}

#[divan::bench(args = SIZES, sample_size = 1000)]
fn latency(bencher: Bencher, n: usize) {
    run(bencher, Algorithm::Latency, n);
}

/// Building a Maglev table (per consistent-hash upstream and config
/// version, off the request path).
#[divan::bench(args = SIZES, sample_count = 10)]
fn consistent_hash_build(bencher: Bencher, n: usize) {
    bencher.bench_local(|| balancer(Algorithm::ConsistentHash, n));
}
