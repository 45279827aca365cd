//! Traffic counters for the control plane's fleet view: every
//! [`STATS_INTERVAL`] the config stream sends a `proto::Stats` (after the
//! Hello, on the same stream). The numbers come from the per-route stats the
//! request path already keeps (`observe::stats`), read here with relaxed
//! loads: nothing is added to the request path.
//!
//! The routes of the config in use are summed. Each report is the
//! difference from the previous one, route by route (the same `RouteStats`
//! as last time, else counted from zero), added to running totals; so a
//! route removed later does not take its answers out of `requests`, and the
//! totals survive reconnects (the [`Reporter`] lives as long as the config
//! client). Answers of a route removed between two reports since the
//! previous one are not counted, nor requests that matched no route.
//!
//! `p99_ms` is over the window since the previous report, from the
//! difference of the latency histograms' bucket counts: the upper bound of
//! the bucket holding the 99th percentile (see [`p99_ms`]). A bucket bound,
//! not an exact percentile: the buckets are about ×2.5 apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use turnpike_proto as proto;
use uuid::Uuid;

use crate::compile::Compiled;
use crate::observe::stats::{LATENCY_BUCKETS, RouteStats};

/// How often a data plane reports its counters.
pub const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Test knob: the report interval in ms, overriding [`STATS_INTERVAL`]
/// (the end-to-end tests use a short one). Not a supported setting.
pub const STATS_INTERVAL_ENV: &str = "TURNPIKE_STATS_INTERVAL_MS";

/// [`STATS_INTERVAL`], or the test knob's value when it is set and valid.
pub fn interval() -> Duration {
    std::env::var(STATS_INTERVAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(STATS_INTERVAL, Duration::from_millis)
}

/// Latency buckets, the last one past the largest bound.
const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// One route's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sample {
    responses: u64,
    errors: u64,
    /// Per bucket, not cumulative.
    latency: [u64; BUCKETS],
}

impl Sample {
    fn of(stats: &RouteStats) -> Sample {
        let responses = stats
            .responses
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let errors = stats.responses[4].load(Ordering::Relaxed);
        let mut latency = [0; BUCKETS];
        let (_, _, buckets) = stats.latency.snapshot();
        for (slot, (_, n)) in latency.iter_mut().zip(buckets) {
            *slot = n;
        }
        Sample {
            responses,
            errors,
            latency,
        }
    }

    /// What was counted since `before` (counters only grow; a smaller one
    /// counts as no change).
    fn since(&self, before: &Sample) -> Sample {
        let mut latency = [0; BUCKETS];
        for (i, slot) in latency.iter_mut().enumerate() {
            *slot = self.latency[i].saturating_sub(before.latency[i]);
        }
        Sample {
            responses: self.responses.saturating_sub(before.responses),
            errors: self.errors.saturating_sub(before.errors),
            latency,
        }
    }

    fn add(&mut self, other: &Sample) {
        self.responses = self.responses.saturating_add(other.responses);
        self.errors = self.errors.saturating_add(other.errors);
        for (slot, n) in self.latency.iter_mut().zip(other.latency) {
            *slot = slot.saturating_add(n);
        }
    }
}

/// The state between two reports: each route's counters at the last one
/// (with its `RouteStats`, so a route id whose stats were replaced counts
/// from zero) and the running totals.
#[derive(Debug)]
pub struct Reporter {
    last: HashMap<Uuid, (Arc<RouteStats>, Sample)>,
    requests: u64,
    errors: u64,
    last_at: Instant,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::new()
    }
}

impl Reporter {
    pub fn new() -> Reporter {
        Reporter {
            last: HashMap::new(),
            requests: 0,
            errors: 0,
            last_at: Instant::now(),
        }
    }

    /// The report for now, over the routes of `config`; the next one
    /// counts from here.
    pub fn report(&mut self, config: &Compiled) -> proto::Stats {
        let now = Instant::now();
        let mut window = Sample::default();
        let mut next = HashMap::with_capacity(config.routes.len());
        for route in &config.routes {
            let sample = Sample::of(&route.stats);
            let base = match self.last.get(&route.id) {
                Some((stats, base)) if Arc::ptr_eq(stats, &route.stats) => *base,
                _ => Sample::default(),
            };
            window.add(&sample.since(&base));
            next.insert(route.id, (route.stats.clone(), sample));
        }
        self.last = next;
        self.requests = self.requests.saturating_add(window.responses);
        self.errors = self.errors.saturating_add(window.errors);
        let interval = now.duration_since(self.last_at);
        self.last_at = now;
        proto::Stats {
            requests: self.requests,
            errors: self.errors,
            interval_requests: window.responses,
            interval_errors: window.errors,
            p99_ms: p99_ms(&window.latency).unwrap_or(0.0),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The 99th percentile of a histogram given as counts per bucket (not
/// cumulative; bounds [`LATENCY_BUCKETS`], then the overflow bucket), in
/// ms: the upper bound of the bucket that holds the observation of rank
/// ⌈0.99·n⌉. The overflow bucket has no bound; it answers the largest one
/// (30 s, meaning "30 s or more"). `None` for an empty histogram.
fn p99_ms(counts: &[u64; BUCKETS]) -> Option<f64> {
    let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
    if total == 0 {
        return None;
    }
    let rank = (total * 99).div_ceil(100);
    let mut seen = 0u128;
    let bucket = counts
        .iter()
        .position(|&c| {
            seen += u128::from(c);
            seen >= rank
        })
        .unwrap_or(BUCKETS - 1);
    let le = LATENCY_BUCKETS
        .get(bucket)
        .or(LATENCY_BUCKETS.last())
        .copied()
        .unwrap_or(0.0);
    // Seconds to ms without float noise (0.0025 s → 2.5 ms exactly).
    Some((le * 1e6).round() / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_client::tests::{is_ack, shared, snapshot};

    fn counts(pairs: &[(usize, u64)]) -> [u64; BUCKETS] {
        let mut c = [0; BUCKETS];
        for &(i, n) in pairs {
            c[i] = n;
        }
        c
    }

    #[test]
    fn p99_is_the_bound_of_the_bucket_holding_it() {
        assert_eq!(p99_ms(&[0; BUCKETS]), None);
        // One observation: its own bucket.
        assert_eq!(p99_ms(&counts(&[(3, 1)])), Some(10.0));
        // 99 fast and 1 slow: rank 99 is still fast.
        assert_eq!(p99_ms(&counts(&[(0, 99), (8, 1)])), Some(1.0));
        // 98 fast and 2 slow: rank 99 is slow.
        assert_eq!(p99_ms(&counts(&[(0, 98), (8, 2)])), Some(500.0));
        // Rank ⌈0.99·1000⌉ = 990: the 990th lands in the second bucket.
        assert_eq!(p99_ms(&counts(&[(1, 989), (2, 1), (9, 10)])), Some(5.0));
        assert_eq!(p99_ms(&counts(&[(1, 2)])), Some(2.5));
        // Past the last bound: the last bound, meaning "or more".
        assert_eq!(p99_ms(&counts(&[(BUCKETS - 1, 5)])), Some(30_000.0));
        // Huge counts do not overflow.
        assert_eq!(p99_ms(&counts(&[(0, u64::MAX), (4, u64::MAX)])), Some(25.0));
    }

    #[test]
    fn p99_comes_from_the_bucket_difference_between_reports() {
        let before = Sample {
            responses: 1000,
            errors: 0,
            latency: counts(&[(0, 1000)]),
        };
        // Since then: 100 answers, 2 slow ones among them.
        let now = Sample {
            responses: 1100,
            errors: 3,
            latency: counts(&[(0, 1098), (7, 2)]),
        };
        let window = now.since(&before);
        assert_eq!((window.responses, window.errors), (100, 3));
        assert_eq!(p99_ms(&window.latency), Some(250.0));
        // Over the whole histogram the slow ones are under 1 %.
        assert_eq!(p99_ms(&now.latency), Some(1.0));
    }

    #[tokio::test]
    async fn reports_sum_routes_and_count_only_what_is_new() {
        let shared = shared();
        assert!(is_ack(&super::super::apply(&shared, snapshot(1)).await, 1));
        let mut reporter = Reporter::new();
        let config = shared.config.load();
        let route = &config.routes[0].stats;
        for _ in 0..98 {
            route.count(200, false);
            route.latency.observe(Duration::from_micros(800));
        }
        route.count(502, true);
        route.latency.observe(Duration::from_millis(400));
        route.count(503, false);
        route.latency.observe(Duration::from_millis(400));

        let first = reporter.report(&config);
        assert_eq!((first.requests, first.errors), (100, 2));
        assert_eq!((first.interval_requests, first.interval_errors), (100, 2));
        assert_eq!(first.p99_ms, 500.0);

        // Nothing new: the totals stay, the window is empty.
        let second = reporter.report(&config);
        assert_eq!((second.requests, second.errors), (100, 2));
        assert_eq!((second.interval_requests, second.p99_ms), (0, 0.0));

        // Fast answers only: the window's p99 forgets the slow ones.
        for _ in 0..10 {
            route.count(204, false);
            route.latency.observe(Duration::from_millis(2));
        }
        let third = reporter.report(&config);
        assert_eq!((third.requests, third.interval_requests), (110, 10));
        assert_eq!(third.p99_ms, 2.5);

        // A config without the route: the totals do not shrink.
        drop(config);
        shared.config.store(Arc::new(Compiled::empty()));
        let fourth = reporter.report(&shared.config.load());
        assert_eq!((fourth.requests, fourth.errors), (110, 2));
        assert_eq!(fourth.interval_requests, 0);
    }
}
