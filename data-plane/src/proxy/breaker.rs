//! The circuit breaker of an upstream (`circuit_breaker`): caps on the
//! requests in progress and on those still waiting for their response to
//! start, per data plane. A request over either cap is answered 503 at once
//! instead of queueing behind a struggling upstream. The counts are kept
//! per upstream id across config versions, so a reload neither forgets the
//! requests in progress nor lets a second wave through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Load {
    requests: AtomicU32,
    pending: AtomicU32,
}

/// One request in progress on an upstream; held until its response body
/// ends.
#[derive(Debug)]
pub struct Admitted(Arc<Load>);

/// One request waiting for its response head.
#[derive(Debug)]
pub struct Pending(Arc<Load>);

impl Load {
    /// Counts one more request in progress, unless that passes `max`.
    pub fn admit(self: &Arc<Self>, max: u32) -> Option<Admitted> {
        take(&self.requests, max).then(|| Admitted(Arc::clone(self)))
    }

    /// Counts one more request waiting, unless that passes `max`.
    pub fn wait(self: &Arc<Self>, max: u32) -> Option<Pending> {
        take(&self.pending, max).then(|| Pending(Arc::clone(self)))
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }
}

fn take(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Loads by upstream id, alive while a config holds them.
#[derive(Debug, Default)]
pub struct Loads {
    loads: Mutex<HashMap<Uuid, Weak<Load>>>,
}

impl Loads {
    pub fn get(&self, upstream: Uuid) -> Arc<Load> {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = loads.get(&upstream).and_then(Weak::upgrade) {
            return l;
        }
        loads.retain(|_, l| l.strong_count() > 0);
        let l = Arc::new(Load::default());
        loads.insert(upstream, Arc::downgrade(&l));
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_release() {
        let load = Arc::new(Load::default());
        let a = load.admit(2).unwrap();
        let b = load.admit(2).unwrap();
        assert!(load.admit(2).is_none());
        drop(a);
        let c = load.admit(2);
        assert!(c.is_some());
        assert_eq!(load.requests(), 2);
        drop((b, c));
        assert_eq!(load.requests(), 0);
        let p = load.wait(1).unwrap();
        assert!(load.wait(1).is_none());
        drop(p);
        assert_eq!(load.pending(), 0);
    }
}
