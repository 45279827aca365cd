//! Target selection: the five load-balancing algorithms of an upstream
//! behind one [`CompiledBalancer::pick`]. Built once per config version
//! (tables and sequences are precomputed there); a pick takes no lock and
//! allocates nothing: it reads atomics, bumps at most one cursor and draws
//! from a thread-local RNG. What is learnt about each target (in flight,
//! latency, health) lives in [`state`] and outlives the config.
//!
//! Every algorithm skips targets that are unavailable (active health check
//! failed, passively ejected) or already tried by this request, and says
//! `None` when no target is left, which the proxy answers with a 503.

pub mod state;

mod latency;
mod least_connections;
mod maglev;
mod round_robin;
mod weighted;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use turnpike_model::{Algorithm, HashOn};

use self::latency::Latency;
use self::least_connections::LeastConnections;
use self::maglev::Maglev;
use self::round_robin::RoundRobin;
use self::weighted::Weighted;

use crate::proxy::headers::Added;

#[derive(Debug)]
pub struct CompiledTarget {
    pub authority: Authority,
    /// Greater than 0: weight-0 targets are left out when compiling.
    pub weight: u32,
    pub state: Arc<state::TargetState>,
}

/// What consistent hashing may hash on, from the request.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    pub headers: &'a HeaderMap,
    /// The fields the proxy adds beside `headers` (`X-Forwarded-*`, the
    /// request id): hashing sees the request as it goes upstream.
    pub added: Option<&'a Added>,
    pub client_ip: IpAddr,
    pub consumer: Option<&'a str>,
}

impl<'a> PickContext<'a> {
    /// The first value of `name`: the proxy's added field if it is one,
    /// else the request's (for `Host`, the client's, also where the
    /// target's replaces it upstream). Not the proxy's `traceparent`: new
    /// for every request, it would spread a key's requests over all
    /// targets; the client's is taken out of the map, so none is seen.
    pub fn header(&self, name: &HeaderName) -> Option<&'a HeaderValue> {
        let added = self
            .added
            .and_then(|a| a.fields().find(|(n, _)| *n == name));
        added.map(|(_, v)| v).or_else(|| self.headers.get(name))
    }
}

#[derive(Debug)]
pub struct CompiledBalancer {
    targets: Vec<CompiledTarget>,
    algorithm: Inner,
}

#[derive(Debug)]
enum Inner {
    RoundRobin(RoundRobin),
    Weighted(Weighted),
    LeastConnections(LeastConnections),
    ConsistentHash(Maglev),
    Latency(Latency),
}

impl CompiledBalancer {
    /// Precomputes what `algorithm` needs (the smooth sequence, the Maglev
    /// table). `hash_on` is only read by consistent hashing; without it
    /// every request lacks a key and is spread round robin.
    pub fn new(
        algorithm: Algorithm,
        hash_on: Option<&HashOn>,
        targets: Vec<CompiledTarget>,
    ) -> CompiledBalancer {
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        let algorithm = match algorithm {
            Algorithm::RoundRobin => Inner::RoundRobin(RoundRobin::default()),
            Algorithm::WeightedRoundRobin => Inner::Weighted(Weighted::new(&weights)),
            Algorithm::LeastConnections => Inner::LeastConnections(LeastConnections::new(&weights)),
            Algorithm::ConsistentHash => Inner::ConsistentHash(Maglev::new(hash_on, &targets)),
            Algorithm::Latency => Inner::Latency(Latency),
        };
        CompiledBalancer { targets, algorithm }
    }

    pub fn targets(&self) -> &[CompiledTarget] {
        &self.targets
    }

    /// Index of a target that is available now (`state.available(now_ms)`)
    /// and not in `tried` (indices already tried by earlier attempts of
    /// this request, usually empty); `None` when there is none.
    pub fn pick(&self, ctx: &PickContext<'_>, tried: &[usize]) -> Option<usize> {
        if self.targets.is_empty() {
            return None;
        }
        let c = Candidates {
            targets: &self.targets,
            now_ms: state::now_ms(),
            tried,
        };
        match &self.algorithm {
            Inner::RoundRobin(a) => a.pick(&c),
            Inner::Weighted(a) => a.pick(&c),
            Inner::LeastConnections(a) => a.pick(&c),
            Inner::ConsistentHash(a) => a.pick(ctx, &c),
            Inner::Latency(a) => a.pick(&c),
        }
    }
}

/// The targets one pick may return: available at `now_ms` and not tried.
/// Read once per pick so every algorithm applies the same rule.
struct Candidates<'a> {
    targets: &'a [CompiledTarget],
    now_ms: u64,
    tried: &'a [usize],
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        self.targets.len()
    }

    fn ok(&self, i: usize) -> bool {
        !self.tried.contains(&i)
            && self
                .targets
                .get(i)
                .is_some_and(|t| t.state.available(self.now_ms))
    }

    /// The first candidate at or after `start`, wrapping around: the
    /// bounded fallback when an algorithm's own choice is out.
    fn first_ok_from(&self, start: usize) -> Option<usize> {
        let n = self.len();
        (0..n).map(|k| (start + k) % n).find(|&i| self.ok(i))
    }

    fn in_flight(&self, i: usize) -> u32 {
        self.targets[i].state.in_flight.load(Ordering::Relaxed)
    }

    fn weight(&self, i: usize) -> u32 {
        self.targets[i].weight.max(1)
    }
}

thread_local! {
    /// Per-thread generator for the random choices (power of two choices):
    /// no lock, no contention between runtime threads. Seeded once from
    /// the OS-seeded thread RNG.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// A uniform index in `0..n`; `n` must be greater than 0.
fn random_below(n: usize) -> usize {
    RNG.with(|r| r.borrow_mut().random_range(0..n))
}
