//! Per-route request statistics, counted on the request path with relaxed
//! atomics only (no lock, no allocation, no label lookup): answers by
//! status class and upstream, latency histograms (total, and upstream time
//! to the response head), bytes in and out. Kept per route id across config
//! versions (`RouteStatsRegistry`), so a reload does not reset counters;
//! rendered into Prometheus families at scrape time by
//! `status::route_metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use uuid::Uuid;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`);
/// 1 ms to 30 s, about ×2.5 apart.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// A latency histogram of atomics: one count per bucket (not cumulative;
/// summed at scrape), the sum in nanoseconds, and the total count.
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (sum in seconds, count, count per bucket), as prometheus-client's
    /// encoder takes them: per bucket, not cumulative (it sums), and the
    /// last bucket's bound `f64::MAX`, which it writes as `+Inf`.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let out = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let le = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::MAX);
                (le, b.load(Ordering::Relaxed))
            })
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, self.count.load(Ordering::Relaxed), out)
    }
}

/// Status classes counted: 1xx to 5xx.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default)]
pub struct RouteStats {
    /// Answers by status class (index 0 = 1xx).
    pub responses: [AtomicU64; 5],
    /// Of those, the proxy's own answers (no upstream response).
    pub local: [AtomicU64; 5],
    pub latency: AtomicHistogram,
    pub upstream_latency: AtomicHistogram,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl RouteStats {
    pub fn count(&self, status: u16, local: bool) {
        let i = usize::from((status / 100).clamp(1, 5) - 1);
        self.responses[i].fetch_add(1, Ordering::Relaxed);
        if local {
            self.local[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Stats by route id, alive while a config holds them.
#[derive(Debug, Default)]
pub struct RouteStatsRegistry {
    stats: Mutex<HashMap<Uuid, Weak<RouteStats>>>,
}

impl RouteStatsRegistry {
    pub fn get(&self, route: Uuid) -> Arc<RouteStats> {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stats.get(&route).and_then(Weak::upgrade) {
            return s;
        }
        stats.retain(|_, s| s.strong_count() > 0);
        let s = Arc::new(RouteStats::default());
        stats.insert(route, Arc::downgrade(&s));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_count_each_observation_once() {
        let h = AtomicHistogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60.0035).abs() < 1e-6, "{sum}");
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[2], (0.005, 1));
        assert_eq!(buckets[11], (30.0, 0));
        assert_eq!(buckets[12], (f64::MAX, 1));
    }

    #[test]
    fn classes_and_registry() {
        let reg = RouteStatsRegistry::default();
        let id = Uuid::new_v4();
        let s = reg.get(id);
        s.count(204, false);
        s.count(503, true);
        s.count(999, false);
        assert_eq!(s.responses[1].load(Ordering::Relaxed), 1);
        assert_eq!(s.responses[4].load(Ordering::Relaxed), 2);
        assert_eq!(s.local[4].load(Ordering::Relaxed), 1);
        assert!(Arc::ptr_eq(&s, &reg.get(id)));
    }
}
