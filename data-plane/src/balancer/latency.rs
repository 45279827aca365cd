//! Latency: power of two choices over Finagle's cost, peak-EWMA response
//! time × (requests in flight + 1), divided by the weight. Two distinct
//! available targets are drawn at random and the cheaper one wins: a slow
//! target is avoided as soon as it is slow (the EWMA jumps to a slow
//! sample), without the herd a "pick the fastest" rule sends to whichever
//! target looked best a moment ago. The draw uses the thread's own RNG.

use std::sync::atomic::Ordering;

use super::{Candidates, random_below};

/// Cost per request in flight of a target with no latency sample yet
/// (1,000 s, in ns): more than any measured target, so a new target gets
/// one request at a time until its first response tells what it costs,
/// instead of the whole load at a cost of 0 (Finagle's penalty).
const UNMEASURED_NS: f64 = 1e12;

/// Random draws per candidate before falling back to a scan, when the
/// draws keep landing on unavailable or tried targets.
const DRAWS: usize = 4;

#[derive(Debug)]
pub(super) struct Latency;

impl Latency {
    pub(super) fn pick(&self, c: &Candidates<'_>) -> Option<usize> {
        let a = draw(c, None)?;
        match draw(c, Some(a)) {
            Some(b) if cost(c, b) < cost(c, a) => Some(b),
            _ => Some(a),
        }
    }
}

/// A random candidate other than `not`; after a few misses, the first one
/// from a random place, so a mostly unavailable upstream still finds its
/// last targets in one bounded pass.
fn draw(c: &Candidates<'_>, not: Option<usize>) -> Option<usize> {
    let n = c.len();
    let others = n - usize::from(not.is_some());
    if others == 0 {
        return None;
    }
    // Uniform over 0..n without `not`: draw among n - 1 and skip over it.
    let skip = |i: usize| match not {
        Some(x) if i >= x => i + 1,
        _ => i,
    };
    if let Some(i) = (0..DRAWS)
        .map(|_| skip(random_below(others)))
        .find(|&i| c.ok(i))
    {
        return Some(i);
    }
    let start = random_below(n);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| Some(i) != not && c.ok(i))
}

fn cost(c: &Candidates<'_>, i: usize) -> f64 {
    let t = &c.targets[i];
    let ewma = t.state.ewma_ns();
    let in_flight = f64::from(t.state.in_flight.load(Ordering::Relaxed));
    let cost = if ewma <= 0.0 && in_flight > 0.0 {
        UNMEASURED_NS * in_flight
    } else {
        ewma * (in_flight + 1.0)
    };
    cost / f64::from(c.weight(i))
}
