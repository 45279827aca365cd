//! What the data plane learns about each target while it runs: requests in
//! flight, a peak-EWMA of response time, active-check health, passive
//! ejection, counters. Kept per (upstream id, address) in [`TargetStates`]
//! and handed to each new config, so a reload that keeps a target keeps
//! what was learnt about it. All fields are atomics: the request path reads
//! and updates them without a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Decay time of the latency EWMA (Finagle and Linkerd use 10 s).
const EWMA_DECAY_NS: f64 = 10e9;

#[derive(Debug)]
pub struct TargetState {
    pub in_flight: AtomicU32,
    /// Peak-EWMA of response time in nanoseconds (an f64's bits).
    ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated, in ns since [`epoch`].
    ewma_at: AtomicU64,
    /// Set by active health checks; true until a check says otherwise.
    pub healthy: AtomicBool,
    /// Passive ejection: out of rotation until this time (ms since
    /// [`epoch`]); 0 when not ejected.
    pub ejected_until_ms: AtomicU64,
    /// Failures in a row seen by passive checks.
    pub consecutive_failures: AtomicU32,
    /// How many times this target was ejected; the ejection time grows
    /// with it.
    pub ejections: AtomicU32,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            in_flight: AtomicU32::new(0),
            ewma_ns: AtomicU64::new(0f64.to_bits()),
            ewma_at: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            ejected_until_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
}

/// The process's monotonic zero, for timestamps kept in atomics.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since [`epoch`].
pub fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl TargetState {
    /// Whether the target may be picked at `now_ms`: healthy by the active
    /// checks and not ejected by the passive ones.
    pub fn available(&self, now_ms: u64) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// The latency estimate in ns, decayed towards 0 for the time since the
    /// last sample, so a target that was slow long ago is tried again.
    pub fn ewma_ns(&self) -> f64 {
        let v = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let age = now_ns().saturating_sub(self.ewma_at.load(Ordering::Relaxed));
        #[allow(clippy::cast_precision_loss)]
        let w = (-(age as f64) / EWMA_DECAY_NS).exp();
        v * w
    }

    /// Records one response time, ended at `at` (the caller's clock read,
    /// not another). Peak-EWMA: a sample above the estimate replaces it at
    /// once (react to a slow target now), one below decays into it. Races
    /// between two updates lose one sample, which an estimate can afford.
    pub fn observe_latency(&self, rtt: Duration, at: Instant) {
        #[allow(clippy::cast_precision_loss)]
        let sample = rtt.as_nanos() as f64;
        let now =
            u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX);
        let prev_at = self.ewma_at.swap(now, Ordering::Relaxed);
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let next = if sample > prev {
            sample
        } else {
            #[allow(clippy::cast_precision_loss)]
            let w = (-(now.saturating_sub(prev_at) as f64) / EWMA_DECAY_NS).exp();
            prev * w + sample * (1.0 - w)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
    }

    /// Marks one request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight on a target; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<TargetState>);

impl InFlight {
    pub fn target(&self) -> &Arc<TargetState> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Target states by upstream id and target address, shared by every config
/// version alive. A config holds strong references; the registry only weak
/// ones, so a target removed from every live config is forgotten.
#[derive(Debug, Default)]
pub struct TargetStates {
    states: Mutex<HashMap<(Uuid, String), Weak<TargetState>>>,
}

impl TargetStates {
    /// The state of `address` in upstream `upstream`: the one a live
    /// config already uses, or a fresh one. Called while compiling, never
    /// on the request path.
    pub fn get(&self, upstream: Uuid, address: &str) -> Arc<TargetState> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = states
            .get(&(upstream, address.to_owned()))
            .and_then(Weak::upgrade)
        {
            return s;
        }
        states.retain(|_, s| s.strong_count() > 0);
        let s = Arc::new(TargetState::default());
        states.insert((upstream, address.to_owned()), Arc::downgrade(&s));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_shared_while_alive_and_forgotten_after() {
        let reg = TargetStates::default();
        let id = Uuid::new_v4();
        let a = reg.get(id, "a:1");
        a.requests.fetch_add(3, Ordering::Relaxed);
        assert_eq!(reg.get(id, "a:1").requests.load(Ordering::Relaxed), 3);
        assert!(!Arc::ptr_eq(&a, &reg.get(Uuid::new_v4(), "a:1")));
        drop(a);
        assert_eq!(reg.get(id, "a:1").requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let s = TargetState::default();
        s.observe_latency(Duration::from_millis(100), Instant::now());
        assert!(s.ewma_ns() > 90e6);
        // A fast sample right after barely moves a peak.
        s.observe_latency(Duration::from_millis(1), Instant::now());
        assert!(s.ewma_ns() > 50e6, "{}", s.ewma_ns());
    }

    #[test]
    fn in_flight_guard_counts() {
        let s = Arc::new(TargetState::default());
        let g = s.start();
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 1);
        drop(g);
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
        assert!(s.available(now_ms()));
    }
}
