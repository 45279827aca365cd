//! Retries: which failed attempts may go to another target, and the budget
//! that bounds them so retries cannot multiply the load on a struggling
//! upstream (Finagle's and Linkerd's retry budget).
//!
//! The rule, in full:
//! - Only requests with an idempotent method (`GET`, `HEAD`, `OPTIONS`,
//!   `TRACE`, `PUT`, `DELETE`) are retried by the proxy, and only when the
//!   whole request can be sent again (`proxy::replay`): it has no body, or
//!   its body, at most `replay::REPLAY_MAX` (64 KiB), was read into memory
//!   before the first attempt. A larger body (declared, or a chunked one
//!   that went past the bound while being read), a body with trailers, or
//!   one behind `Expect: 100-continue` streams and is not retried: it is
//!   gone once sent. `POST` and `PATCH` are never retried by the proxy,
//!   whatever their body: they could be applied twice.
//! - Only failures before any response arrived: the connection could not be
//!   opened (refused, connect timeout, TLS), or it closed or reset before a
//!   response head. A read timeout is not retried (the target may still be
//!   working on it), nor is any response, 5xx included.
//! - At most the upstream's `retries` extra attempts, each on a target not
//!   tried yet, and each paid from the budget.
//! - Separately, the pool (`proxy::pool`) resends a request hyper never
//!   wrote, whatever its method, when a pooled connection turns out
//!   closed: that request never reached the upstream, so nothing is
//!   duplicated.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use http::Method;
use uuid::Uuid;

use crate::Error;
use crate::balancer::state::now_ms;

/// A retry costs one token (1000 milli-tokens); each first attempt earns
/// 0.2, so retries stay under 20% of requests.
const TOKEN: i64 = 1000;
const DEPOSIT: i64 = 200;
/// Tokens an upstream can save up from its traffic.
const CAP: i64 = 100 * TOKEN;
/// Retries allowed per second regardless of traffic, so a quiet upstream
/// can still retry, up to this many tokens saved from time alone.
const MIN_PER_SEC: i64 = 10;
const TIME_FLOOR: i64 = 10 * TOKEN;

#[derive(Debug)]
pub struct RetryBudget {
    balance: AtomicI64,
    refilled_at_ms: AtomicU64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            balance: AtomicI64::new(TIME_FLOOR),
            refilled_at_ms: AtomicU64::new(now_ms()),
        }
    }
}

impl RetryBudget {
    /// Called once per request's first attempt.
    pub fn deposit(&self) {
        if self.balance.load(Ordering::Relaxed) < CAP {
            self.balance.fetch_add(DEPOSIT, Ordering::Relaxed);
        }
    }

    /// Takes one retry's worth from the budget, if there is one.
    pub fn withdraw(&self) -> bool {
        self.refill();
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= TOKEN).then_some(b - TOKEN)
            })
            .is_ok()
    }

    /// Tops the balance up towards `TIME_FLOOR` at `MIN_PER_SEC`.
    fn refill(&self) {
        let now = now_ms();
        let last = self.refilled_at_ms.load(Ordering::Relaxed);
        let elapsed = i64::try_from(now.saturating_sub(last)).unwrap_or(i64::MAX);
        if elapsed < 100
            || self
                .refilled_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let earned = elapsed.saturating_mul(MIN_PER_SEC * TOKEN) / 1000;
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b < TIME_FLOOR).then(|| (b + earned).min(TIME_FLOOR))
            });
    }
}

/// Budgets by upstream id, kept across config versions like the pools.
#[derive(Debug, Default)]
pub struct RetryBudgets {
    budgets: Mutex<HashMap<Uuid, Weak<RetryBudget>>>,
}

impl RetryBudgets {
    pub fn get(&self, upstream: Uuid) -> Arc<RetryBudget> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = budgets.get(&upstream).and_then(Weak::upgrade) {
            return b;
        }
        budgets.retain(|_, b| b.strong_count() > 0);
        let b = Arc::new(RetryBudget::default());
        budgets.insert(upstream, Arc::downgrade(&b));
        b
    }
}

pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether a failed attempt ended before any response: the connection was
/// never made, or it closed or reset before the response head.
pub fn before_response(e: &Error) -> bool {
    let h = match e {
        Error::UpstreamConnect(_) | Error::UpstreamConnectTimeout | Error::UpstreamClosed => {
            return true;
        }
        Error::UpstreamIo(io) => return reset(io),
        Error::UpstreamProtocol(h) => h,
        _ => return false,
    };
    if h.is_incomplete_message() || h.is_canceled() {
        return true;
    }
    let mut source = h.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && reset(io)
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn reset(io: &std::io::Error) -> bool {
    matches!(
        io.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_a_fifth_of_traffic_plus_a_floor() {
        let b = RetryBudget::default();
        // The floor: 10 retries with no traffic at all.
        for _ in 0..10 {
            assert!(b.withdraw());
        }
        assert!(!b.withdraw());
        // 100 requests earn 20 retries.
        for _ in 0..100 {
            b.deposit();
        }
        let allowed = (0..100).filter(|_| b.withdraw()).count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn budget_is_capped() {
        let b = RetryBudget::default();
        for _ in 0..10_000 {
            b.deposit();
        }
        let allowed = (0..1000).filter(|_| b.withdraw()).count();
        assert!((100..=101).contains(&allowed), "{allowed}");
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }

    #[test]
    fn budgets_are_kept_per_upstream_while_alive() {
        let reg = RetryBudgets::default();
        let id = Uuid::new_v4();
        let a = reg.get(id);
        assert!(Arc::ptr_eq(&a, &reg.get(id)));
        assert!(!Arc::ptr_eq(&a, &reg.get(Uuid::new_v4())));
    }
}
