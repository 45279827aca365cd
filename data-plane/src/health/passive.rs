//! Passive health checks (outlier detection): the proxy reports how each
//! attempt on a target went, and a target that fails `consecutive_failures`
//! times in a row is ejected (out of rotation) for a while. Runs on the
//! request path, so it only touches the target's atomics: no lock, no
//! allocation; the scan of the upstream's targets happens only when an
//! ejection is about to happen.
//!
//! Rules:
//! - Ejection time grows exponentially with the target's past ejections:
//!   `ejection_ms * 2^ejections`, capped at `max_ejection_ms` (Envoy grows
//!   linearly; doubling backs off a flapping target faster, like
//!   `model::backoff`).
//! - The failure count is not reset by an ejection: a target back from one
//!   is on probation, and its first failure ejects it again (for longer);
//!   its first success resets the count.
//! - The multiplier decays: once a target has been back in rotation for
//!   `ejection_ms` without a new ejection, its next success takes one off
//!   `ejections` and restarts that clock (so `k` ejections are forgotten
//!   after `k * ejection_ms` of good behaviour). `ejected_until_ms` doubles
//!   as that clock: it is left in the past, which `available` reads as
//!   "not ejected".
//! - At most `floor(targets * max_ejected_percent / 100)` targets are out at
//!   once; a single-target upstream is never ejected below 100 %.
//!
//! `requests` and `failures` are the proxy's counters and are not touched
//! here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use turnpike_model::PassiveHealthCheck;

use crate::balancer::state::{TargetState, now_ms};

/// How one attempt on a target went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A connection failure, a timeout or a 5xx answer.
    Failure,
}

pub struct PassiveChecker {
    consecutive_failures: u32,
    ejection_ms: u64,
    max_ejection_ms: u64,
    max_ejected: usize,
    targets: Vec<Arc<TargetState>>,
    /// Taken (without waiting) while one report counts the ejected targets
    /// and ejects, so two targets failing at once cannot both pass the
    /// percentage check. A report that finds it taken skips the ejection;
    /// its target stays over the threshold, so its next failure retries.
    ejecting: AtomicBool,
}

impl PassiveChecker {
    pub fn new(cfg: &PassiveHealthCheck, targets: Vec<Arc<TargetState>>) -> Self {
        let pct = usize::try_from(cfg.max_ejected_percent.min(100)).unwrap_or(100);
        PassiveChecker {
            consecutive_failures: cfg.consecutive_failures.max(1),
            ejection_ms: u64::from(cfg.ejection_ms),
            max_ejection_ms: u64::from(cfg.max_ejection_ms.max(cfg.ejection_ms)),
            max_ejected: targets.len() * pct / 100,
            targets,
            ejecting: AtomicBool::new(false),
        }
    }

    /// Called by the proxy after each attempt on `target` (one of the
    /// targets given to [`PassiveChecker::new`]).
    pub fn report(&self, target: &TargetState, outcome: Outcome) {
        self.report_with(target, outcome, now_ms);
    }

    /// How many targets are ejected at `now_ms`, for status.
    pub fn ejected_count(&self, now_ms: u64) -> usize {
        self.targets.iter().filter(|t| ejected(t, now_ms)).count()
    }

    /// [`PassiveChecker::report`] with the clock given, read only when
    /// needed (a success on a never-ejected target reads no clock).
    fn report_with(&self, target: &TargetState, outcome: Outcome, now: impl Fn() -> u64) {
        match outcome {
            Outcome::Success => {
                // A load first: most successes find 0 and write nothing, so
                // the cache line stays shared between cores.
                if target.consecutive_failures.load(Ordering::Relaxed) != 0 {
                    target.consecutive_failures.store(0, Ordering::Relaxed);
                }
                if target.ejections.load(Ordering::Relaxed) != 0 {
                    self.decay(target, now());
                }
            }
            Outcome::Failure => {
                let n = target
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if n >= self.consecutive_failures {
                    self.try_eject(target, now());
                }
            }
        }
    }

    /// One step of the multiplier's decay, when the target has been in
    /// rotation `ejection_ms` since its last ejection ended (or last step).
    fn decay(&self, target: &TargetState, now: u64) {
        let since = target.ejected_until_ms.load(Ordering::Relaxed);
        if now < since.saturating_add(self.ejection_ms) {
            return;
        }
        // Only the report that moves the clock takes a step; a racing
        // ejection changes `ejected_until_ms` and wins.
        if target
            .ejected_until_ms
            .compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let _ = target
                .ejections
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                    Some(e.saturating_sub(1))
                });
        }
    }

    fn try_eject(&self, target: &TargetState, now: u64) {
        // Failures of attempts that started before the ejection do not
        // extend it.
        if ejected(target, now) {
            return;
        }
        if self
            .ejecting
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if self.ejected_count(now) < self.max_ejected {
            let ejections = target.ejections.load(Ordering::Relaxed);
            let ms = self.ejection_time(ejections);
            target
                .ejected_until_ms
                .store(now.saturating_add(ms), Ordering::Relaxed);
            target
                .ejections
                .store(ejections.saturating_add(1), Ordering::Relaxed);
            let index = self.targets.iter().position(|t| std::ptr::eq(&**t, target));
            tracing::info!(
                target_index = ?index,
                ejection_ms = ms,
                ejections = ejections + 1,
                "passive health check ejected a target"
            );
        }
        self.ejecting.store(false, Ordering::Release);
    }

    /// `ejection_ms * 2^ejections`, capped at `max_ejection_ms`.
    fn ejection_time(&self, ejections: u32) -> u64 {
        let factor = 1u64.checked_shl(ejections).unwrap_or(u64::MAX);
        self.ejection_ms
            .saturating_mul(factor)
            .min(self.max_ejection_ms)
    }
}

fn ejected(target: &TargetState, now_ms: u64) -> bool {
    target.ejected_until_ms.load(Ordering::Relaxed) > now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn cfg(failures: u32, ejection_ms: u32, max_ms: u32, pct: u32) -> PassiveHealthCheck {
        PassiveHealthCheck {
            consecutive_failures: failures,
            ejection_ms,
            max_ejection_ms: max_ms,
            max_ejected_percent: pct,
        }
    }

    fn setup(n: usize, cfg: &PassiveHealthCheck) -> (PassiveChecker, Vec<Arc<TargetState>>) {
        let targets: Vec<_> = (0..n).map(|_| Arc::new(TargetState::default())).collect();
        (PassiveChecker::new(cfg, targets.clone()), targets)
    }

    fn fail(c: &PassiveChecker, t: &TargetState, times: u32, now: u64) {
        for _ in 0..times {
            c.report_with(t, Outcome::Failure, || now);
        }
    }

    fn until(t: &TargetState) -> u64 {
        t.ejected_until_ms.load(Ordering::Relaxed)
    }

    #[test]
    fn consecutive_failures_eject() {
        let (c, ts) = setup(2, &cfg(3, 1000, 10_000, 100));
        fail(&c, &ts[0], 2, T0);
        assert!(ts[0].available(T0), "2 failures of 3 keep it in");
        fail(&c, &ts[0], 1, T0);
        assert!(!ts[0].available(T0));
        assert_eq!(until(&ts[0]), T0 + 1000);
        assert_eq!(ts[0].ejections.load(Ordering::Relaxed), 1);
        assert_eq!(c.ejected_count(T0), 1);
        assert!(ts[1].available(T0));
    }

    #[test]
    fn success_resets_the_count() {
        let (c, ts) = setup(2, &cfg(3, 1000, 10_000, 100));
        fail(&c, &ts[0], 2, T0);
        c.report_with(&ts[0], Outcome::Success, || T0);
        assert_eq!(ts[0].consecutive_failures.load(Ordering::Relaxed), 0);
        fail(&c, &ts[0], 2, T0);
        assert!(ts[0].available(T0), "the count restarted after the success");
        fail(&c, &ts[0], 1, T0);
        assert!(!ts[0].available(T0));
    }

    #[test]
    fn ejection_time_doubles_and_is_capped() {
        let (c, ts) = setup(1, &cfg(1, 1000, 5000, 100));
        let t = &ts[0];
        let mut now = T0;
        let mut seen = Vec::new();
        for _ in 0..5 {
            fail(&c, t, 1, now);
            seen.push(until(t) - now);
            // Back in rotation after the time, without sleeping.
            now = until(t);
            assert!(t.available(now));
        }
        assert_eq!(seen, [1000, 2000, 4000, 5000, 5000]);
        assert_eq!(t.ejections.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn failures_while_ejected_do_not_extend() {
        let (c, ts) = setup(1, &cfg(1, 1000, 5000, 100));
        fail(&c, &ts[0], 1, T0);
        fail(&c, &ts[0], 3, T0 + 500);
        assert_eq!(until(&ts[0]), T0 + 1000);
        assert_eq!(ts[0].ejections.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn max_ejected_percent_caps_ejections() {
        let (c, ts) = setup(4, &cfg(1, 1000, 5000, 50));
        for t in &ts[..3] {
            fail(&c, t, 1, T0);
        }
        assert!(!ts[0].available(T0));
        assert!(!ts[1].available(T0));
        assert!(ts[2].available(T0), "a third of four would exceed 50 %");
        assert_eq!(c.ejected_count(T0), 2);
        // Once the first two are back, the third is ejected on its next failure.
        let later = T0 + 1000;
        assert_eq!(c.ejected_count(later), 0);
        fail(&c, &ts[2], 1, later);
        assert!(!ts[2].available(later));
    }

    #[test]
    fn single_target_is_never_ejected_below_100_percent() {
        let (c, ts) = setup(1, &cfg(1, 1000, 5000, 99));
        fail(&c, &ts[0], 10, T0);
        assert!(ts[0].available(T0));
        let (c, ts) = setup(1, &cfg(1, 1000, 5000, 0));
        fail(&c, &ts[0], 10, T0);
        assert!(ts[0].available(T0));
    }

    #[test]
    fn back_in_rotation_after_the_time_and_on_probation() {
        let (c, ts) = setup(1, &cfg(2, 1000, 10_000, 100));
        let t = &ts[0];
        fail(&c, t, 2, T0);
        assert!(!t.available(T0 + 999));
        assert!(t.available(T0 + 1000));
        // On probation: one failure ejects it again, for twice as long.
        fail(&c, t, 1, T0 + 1000);
        assert_eq!(until(t), T0 + 1000 + 2000);
        // A success after the return resets the count: two failures needed again.
        let back = T0 + 3000;
        c.report_with(t, Outcome::Success, || back);
        fail(&c, t, 1, back);
        assert!(t.available(back));
    }

    #[test]
    fn multiplier_decays_after_good_behaviour() {
        let (c, ts) = setup(1, &cfg(1, 1000, 100_000, 100));
        let t = &ts[0];
        fail(&c, t, 1, T0); // out until T0+1000
        fail(&c, t, 1, T0 + 1000); // out until T0+3000
        assert_eq!(t.ejections.load(Ordering::Relaxed), 2);
        let back = T0 + 3000;
        // Not yet: in rotation for less than ejection_ms.
        c.report_with(t, Outcome::Success, || back + 999);
        assert_eq!(t.ejections.load(Ordering::Relaxed), 2);
        c.report_with(t, Outcome::Success, || back + 1000);
        assert_eq!(t.ejections.load(Ordering::Relaxed), 1);
        assert!(t.available(back + 1000));
        // The clock restarted: the next step needs another ejection_ms.
        c.report_with(t, Outcome::Success, || back + 1500);
        assert_eq!(t.ejections.load(Ordering::Relaxed), 1);
        c.report_with(t, Outcome::Success, || back + 2000);
        assert_eq!(t.ejections.load(Ordering::Relaxed), 0);
        // Fully forgiven: the next ejection is the base time again.
        fail(&c, t, 1, back + 5000);
        assert_eq!(until(t), back + 5000 + 1000);
    }
}
