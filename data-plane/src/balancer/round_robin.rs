//! Round robin: each target in turn, weights ignored. One relaxed atomic
//! increment per pick; an unavailable or tried target hands its turn to
//! the next candidate after it (at most one pass over the targets).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Candidates;

#[derive(Debug, Default)]
pub(super) struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub(super) fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        // Relaxed: the cursor only spreads picks, it orders nothing else.
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        c.first_ok_from(start)
    }
}
