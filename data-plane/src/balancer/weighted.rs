//! Smooth weighted round robin, as nginx does it: shares follow the
//! weights and no target gets a burst (weights 5, 1, 1 give
//! `a a b a c a a`, not `a a a a a b c`).
//!
//! nginx runs the algorithm under a lock on every pick. We run it once per
//! config version instead, for one whole period (sum of the weights over
//! their gcd), and a pick walks that precomputed sequence with one atomic
//! cursor: lock-free, and the same sequence nginx would produce. The
//! period is capped at [`MAX_PERIOD`] entries (or one per target, if there
//! are more targets); above it the weights are scaled down proportionally,
//! every target keeping at least one slot, so the shares stay within
//! about `1 / MAX_PERIOD` of the configured ones.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, random_below};

/// Longest precomputed period, in entries of 4 bytes (32 KiB).
const MAX_PERIOD: u64 = 8192;

/// Sequence entries a pick looks at past an unavailable target before it
/// falls back to scanning the targets: keeps a pick's cost bounded when
/// a heavy target is out and its entries crowd the sequence.
const MAX_WALK: usize = 64;

pub(super) struct Weighted {
    /// Target indices, one period of the smooth sequence.
    seq: Box<[u32]>,
    cursor: AtomicUsize,
}

impl fmt::Debug for Weighted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weighted")
            .field("period", &self.seq.len())
            .finish_non_exhaustive()
    }
}

impl Weighted {
    pub(super) fn new(weights: &[u32]) -> Weighted {
        Weighted {
            seq: smooth_sequence(&scaled(weights)).into_boxed_slice(),
            cursor: AtomicUsize::new(0),
        }
    }

    pub(super) fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let len = self.seq.len();
        if len == 0 {
            return None;
        }
        let base = self.cursor.fetch_add(1, Ordering::Relaxed) % len;
        // An unavailable target's turns go to the entries after its own,
        // which in a smooth sequence belong to the others in proportion
        // to their weights.
        for k in 0..len.min(MAX_WALK) {
            let i = self.at((base + k) % len);
            if c.ok(i) {
                return Some(i);
            }
        }
        c.first_ok_from(self.at(base))
    }

    /// The target the next turn belongs to: least connections starts its
    /// scan there, so that ties (an idle upstream) follow the weights.
    pub(super) fn next_turn(&self) -> Option<usize> {
        let len = self.seq.len();
        (len > 0).then(|| self.at(self.cursor.fetch_add(1, Ordering::Relaxed) % len))
    }

    /// A target drawn at random in proportion to its weight.
    pub(super) fn sample(&self) -> Option<usize> {
        let len = self.seq.len();
        (len > 0).then(|| self.at(random_below(len)))
    }

    #[cfg(test)]
    pub(super) fn period(&self) -> usize {
        self.seq.len()
    }

    fn at(&self, pos: usize) -> usize {
        self.seq[pos] as usize
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The weights divided by their gcd and, when their sum would exceed the
/// period cap, scaled down to it (at least 1 each).
fn scaled(weights: &[u32]) -> Vec<u64> {
    let w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
    let g = w.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = w.into_iter().map(|x| x / g).collect();
    let sum: u64 = w.iter().sum();
    let cap = MAX_PERIOD.max(w.len() as u64);
    if sum > cap {
        // x <= u32::MAX and cap <= max(8192, targets), so no overflow.
        w = w.into_iter().map(|x| (x * cap / sum).max(1)).collect();
        let g = w.iter().copied().fold(0, gcd).max(1);
        w = w.into_iter().map(|x| x / g).collect();
    }
    w
}

/// One period of nginx's smooth weighted round robin: at each step every
/// target's current weight grows by its weight, the largest (first on a
/// tie) is picked and loses the total. Costs targets × period, once per
/// config version.
fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    let signed = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    let mut current = vec![0i64; weights.len()];
    let mut seq = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let (mut best, mut best_value) = (0, i64::MIN);
        for (i, (cur, &w)) in current.iter_mut().zip(weights).enumerate() {
            *cur += signed(w);
            if *cur > best_value {
                (best, best_value) = (i, *cur);
            }
        }
        current[best] -= signed(total);
        seq.push(u32::try_from(best).unwrap_or(u32::MAX));
    }
    seq
}
