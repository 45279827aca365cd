//! Least connections: the target with the fewest requests in flight per
//! unit of weight (`in_flight_a * weight_b < in_flight_b * weight_a`,
//! integers, no division).
//!
//! Ties are the common case (an idle upstream has 0 in flight everywhere),
//! so how they break decides the spread. Like nginx, we break them by
//! weighted round robin: the scan starts at the target whose turn it is in
//! the smooth sequence and keeps the first best it meets. An idle upstream
//! thus gets exactly the weighted shares, a loaded one the least loaded.
//!
//! Up to [`FULL_SCAN_MAX`] targets a pick scans them all (a few ns each).
//! Above, it compares two targets drawn in proportion to their weights
//! (power of two choices, as Envoy's least-request does): O(1) per pick,
//! and still steers away from loaded targets, which is what matters; the
//! exact minimum is not worth a scan of hundreds of atomics.

use super::Candidates;
use super::weighted::Weighted;

/// Most targets for which a pick scans them all.
const FULL_SCAN_MAX: usize = 32;

/// Draws per candidate before falling back to a scan, when the draws keep
/// landing on unavailable or tried targets.
const DRAWS: usize = 4;

#[derive(Debug)]
pub(super) struct LeastConnections {
    turns: Weighted,
}

impl LeastConnections {
    pub(super) fn new(weights: &[u32]) -> LeastConnections {
        LeastConnections {
            turns: Weighted::new(weights),
        }
    }

    pub(super) fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        if c.len() <= FULL_SCAN_MAX {
            return self.scan(c);
        }
        let Some(a) = self.draw(c, None) else {
            return self.scan(c);
        };
        match self.draw(c, Some(a)) {
            Some(b) if lighter(c, b, a) => Some(b),
            _ => Some(a),
        }
    }

    /// The least loaded candidate, first met from the target whose turn
    /// it is.
    fn scan(&self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.len();
        let start = self.turns.next_turn()?;
        let mut best: Option<usize> = None;
        for i in (0..n).map(|k| (start + k) % n) {
            if c.ok(i) && best.is_none_or(|b| lighter(c, i, b)) {
                best = Some(i);
            }
        }
        best
    }

    /// A candidate other than `not`, drawn by weight.
    fn draw(&self, c: &Candidates<'_>, not: Option<usize>) -> Option<usize> {
        (0..DRAWS)
            .filter_map(|_| self.turns.sample())
            .find(|&i| Some(i) != not && c.ok(i))
    }
}

/// Whether `a` has fewer requests in flight than `b` per unit of weight.
fn lighter(c: &Candidates<'_>, a: usize, b: usize) -> bool {
    u64::from(c.in_flight(a)) * u64::from(c.weight(b))
        < u64::from(c.in_flight(b)) * u64::from(c.weight(a))
}
