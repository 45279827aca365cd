//! Active health checks: each data plane probes every target of an upstream
//! with `GET path` every `interval_ms` and keeps the target's `healthy`
//! flag, which the balancer reads. One task per target, so a slow target
//! never delays the probes of the others, and at most one probe per target
//! is in flight. The probe itself is a [`ProbeFn`] from the proxy, so it
//! goes through the upstream's own client (protocol, TLS, timeouts).
//!
//! Who owns a target's flag: several checkers can cover one target at a
//! time, because a reload builds the new config (and its checker) before
//! the old config, kept alive by requests still running, is dropped. Each
//! checker gets a generation number; only the newest live checker of a
//! target probes it and writes its flag, and the others idle. When a
//! checker drops, the newest one left takes over (e.g. a config that failed
//! to apply hands back to the running one); when none is left (active
//! checks turned off, target removed), the flag goes back to healthy, so
//! turning checks off never leaves a target stuck out. A new checker
//! starts from the flag as it is: its first verdicts decide. Flag writes
//! and the release on drop are done under one lock, so a probe finishing
//! while its checker drops cannot write after the release.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::StatusCode;
use http::uri::{Authority, PathAndQuery};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use turnpike_model::ActiveHealthCheck;

use crate::balancer::state::TargetState;

/// Sends one probe; given by the proxy so probes use the upstream's own
/// client (its protocol, TLS, timeouts).
pub type ProbeFn = Arc<
    dyn Fn(
            Authority,
            PathAndQuery,
        ) -> Pin<Box<dyn Future<Output = Result<StatusCode, String>> + Send>>
        + Send
        + Sync,
>;

/// The probes of one upstream's targets; they stop when it drops.
pub struct ActiveChecker {
    inner: Arc<Inner>,
    targets: Vec<Arc<TargetState>>,
    tasks: Vec<AbortHandle>,
}

/// What the per-target tasks share.
struct Inner {
    upstream: String,
    generation: u64,
    path: PathAndQuery,
    interval: Duration,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    expected_statuses: Vec<u16>,
    /// Replaced when a reload reuses this checker, so probes always go
    /// through the newest config's client.
    probe: Mutex<ProbeFn>,
}

impl ActiveChecker {
    /// Starts probing `targets`. Needs a tokio runtime (compile runs inside
    /// one); without one it logs an error and probes nothing.
    pub fn start(
        upstream_name: &str,
        cfg: &ActiveHealthCheck,
        targets: Vec<(Authority, Arc<TargetState>)>,
        probe: ProbeFn,
    ) -> ActiveChecker {
        let path = PathAndQuery::try_from(cfg.path.as_str()).unwrap_or_else(|e| {
            // The model validates the path; this is only a safety net.
            tracing::error!(upstream = upstream_name, path = %cfg.path, error = %e, "invalid health check path, probing /");
            PathAndQuery::from_static("/")
        });
        let inner = Arc::new(Inner {
            upstream: upstream_name.to_owned(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            path,
            // tokio's interval panics on a zero period.
            interval: Duration::from_millis(u64::from(cfg.interval_ms.max(1))),
            timeout: Duration::from_millis(u64::from(cfg.timeout_ms)),
            healthy_threshold: cfg.healthy_threshold.max(1),
            unhealthy_threshold: cfg.unhealthy_threshold.max(1),
            expected_statuses: cfg.expected_statuses.clone(),
            probe: Mutex::new(probe),
        });
        let states: Vec<_> = targets.iter().map(|(_, s)| s.clone()).collect();
        claim(&states, inner.generation);
        let tasks = match tokio::runtime::Handle::try_current() {
            Ok(rt) => targets
                .into_iter()
                .map(|(authority, state)| {
                    rt.spawn(run(inner.clone(), authority, state))
                        .abort_handle()
                })
                .collect(),
            Err(e) => {
                tracing::error!(upstream = upstream_name, error = %e, "no tokio runtime: active health checks not started");
                Vec::new()
            }
        };
        ActiveChecker {
            inner,
            targets: states,
            tasks,
        }
    }

    /// Probes from now on go through `probe`.
    pub(super) fn set_probe(&self, probe: ProbeFn) {
        *lock(&self.inner.probe) = probe;
    }
}

impl Drop for ActiveChecker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        release(&self.targets, self.inner.generation);
    }
}

/// Probes one target until aborted.
async fn run(inner: Arc<Inner>, authority: Authority, state: Arc<TargetState>) {
    // A random first probe within half an interval, so data planes started
    // together (or one config reaching them all) do not probe in lockstep.
    let half = u64::try_from(inner.interval.as_millis() / 2).unwrap_or(u64::MAX);
    let jitter = Duration::from_millis(rand::random_range(0..=half));
    let mut ticker = tokio::time::interval_at(Instant::now() + jitter, inner.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streak = Streak::default();
    loop {
        ticker.tick().await;
        if !is_newest(&state, inner.generation) {
            // A newer checker owns the flag; if it goes away, start afresh.
            streak = Streak::default();
            continue;
        }
        let probe = lock(&inner.probe).clone();
        let verdict =
            match tokio::time::timeout(inner.timeout, probe(authority.clone(), inner.path.clone()))
                .await
            {
                Ok(Ok(status)) if status_ok(&inner.expected_statuses, status) => Ok(()),
                Ok(Ok(status)) => Err(format!("status {}", status.as_u16())),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("timed out after {} ms", inner.timeout.as_millis())),
            };
        if let Err(e) = &verdict {
            tracing::debug!(upstream = %inner.upstream, target = %authority, error = %e, "health probe failed");
        }
        let healthy = state.healthy.load(Ordering::Relaxed);
        let Some(to) = streak.record(verdict.is_ok(), healthy, &inner) else {
            continue;
        };
        if !set_if_newest(&state, inner.generation, to) {
            continue;
        }
        match verdict {
            Ok(()) => {
                tracing::info!(upstream = %inner.upstream, target = %authority, "active health check: target healthy again");
            }
            Err(e) => {
                tracing::warn!(upstream = %inner.upstream, target = %authority, error = %e, "active health check: target unhealthy");
            }
        }
    }
}

/// Whether a probe's status counts as healthy: one of `expected`, or any
/// 2xx or 3xx when `expected` is empty.
pub(super) fn status_ok(expected: &[u16], status: StatusCode) -> bool {
    if expected.is_empty() {
        (200..=399).contains(&status.as_u16())
    } else {
        expected.contains(&status.as_u16())
    }
}

/// Good and bad probes in a row of one target.
#[derive(Debug, Default)]
struct Streak {
    ok: u32,
    failed: u32,
}

impl Streak {
    /// Records one probe; returns the flag to set when a threshold is
    /// crossed, given the flag as it is now.
    fn record(&mut self, ok: bool, healthy: bool, inner: &Inner) -> Option<bool> {
        if ok {
            self.failed = 0;
            self.ok = self.ok.saturating_add(1);
            (!healthy && self.ok >= inner.healthy_threshold).then_some(true)
        } else {
            self.ok = 0;
            self.failed = self.failed.saturating_add(1);
            (healthy && self.failed >= inner.unhealthy_threshold).then_some(false)
        }
    }
}

/// The next checker's generation; newer checkers have higher ones.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The generations of the live checkers covering each target, keyed by the
/// target state's address. The checkers hold those states, so an address
/// cannot be reused while it is listed. Locked only when a checker starts
/// or drops and once per probe interval per target.
static CLAIMS: Mutex<BTreeMap<usize, Vec<u64>>> = Mutex::new(BTreeMap::new());

fn key(state: &Arc<TargetState>) -> usize {
    Arc::as_ptr(state) as usize
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn claim(states: &[Arc<TargetState>], generation: u64) {
    let mut claims = lock(&CLAIMS);
    for s in states {
        claims.entry(key(s)).or_default().push(generation);
    }
}

fn release(states: &[Arc<TargetState>], generation: u64) {
    let mut claims = lock(&CLAIMS);
    for s in states {
        let k = key(s);
        let Some(gens) = claims.get_mut(&k) else {
            continue;
        };
        gens.retain(|g| *g != generation);
        if gens.is_empty() {
            claims.remove(&k);
            s.healthy.store(true, Ordering::Relaxed);
        }
    }
}

fn is_newest(state: &Arc<TargetState>, generation: u64) -> bool {
    lock(&CLAIMS)
        .get(&key(state))
        .and_then(|gens| gens.iter().max())
        == Some(&generation)
}

/// Sets the flag if `generation` is the newest live checker of `state`;
/// returns whether it did.
fn set_if_newest(state: &Arc<TargetState>, generation: u64, healthy: bool) -> bool {
    let claims = lock(&CLAIMS);
    let newest = claims.get(&key(state)).and_then(|gens| gens.iter().max()) == Some(&generation);
    if newest {
        state.healthy.store(healthy, Ordering::Relaxed);
    }
    newest
}

#[cfg(test)]
#[path = "active_tests.rs"]
mod tests;
