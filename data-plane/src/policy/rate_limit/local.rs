//! `policy: local`: GCRA counters in this process (governor), so N data
//! planes allow N times the limit.
//!
//! A limiter is `SHARDS` governor keyed limiters, each over governor's own
//! `Mutex<HashMap>` store; a key goes to one shard by its hash, so requests
//! for different keys rarely wait on the same lock (what dashmap would do,
//! without a second hashbrown in the build). Keys are 128-bit keyed hashes
//! of what is counted (two SipHash instances seeded per limiter), so a
//! check never allocates, and a map entry is 16 bytes plus governor's 8.
//! Two keys colliding would share one counter; with random per-process
//! seeds nobody can aim for that, and by chance it is ~2⁻⁶⁴ per pair.
//!
//! Limiters live in the [`LocalRegistry`], by plugin id and rate: a config
//! version that keeps a plugin's rate keeps its counters (`Weak`, so a
//! limiter no config uses any more goes away). Keys whose counter is back
//! to full are pruned by [`LocalRegistry::prune`], which the data plane
//! runs every [`PRUNE_EVERY`] (`retain_recent` + `shrink_to_fit`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use super::{Decision, Rate};

/// Shards per limiter (a power of two).
const SHARDS: usize = 16;

/// How often idle keys are dropped from every live limiter.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

type Shard<C> =
    RateLimiter<u128, HashMapStateStore<u128, Prehashed>, C, StateInformationMiddleware>;

pub struct LocalLimiter<C: Clock + Clone = DefaultClock> {
    shards: Box<[Shard<C>]>,
    seeds: (RandomState, RandomState),
    clock: C,
    rate: Rate,
}

impl LocalLimiter {
    pub fn new(rate: Rate) -> LocalLimiter {
        LocalLimiter::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock + Clone> LocalLimiter<C> {
    /// A limiter reading `clock` (tests pass governor's fake clock).
    pub fn with_clock(rate: Rate, clock: C) -> LocalLimiter<C> {
        let burst = NonZeroU32::new(u32::try_from(rate.burst).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        let shards = (0..SHARDS)
            .map(|_| {
                let store = HashMapStateStore::new(HashMap::with_hasher(Prehashed));
                RateLimiter::<u128, _, C, NoOpMiddleware<C::Instant>>::new(
                    quota,
                    store,
                    clock.clone(),
                )
                .with_middleware::<StateInformationMiddleware>()
            })
            .collect();
        LocalLimiter {
            shards,
            seeds: (RandomState::new(), RandomState::new()),
            clock,
            rate,
        }
    }

    /// The counter's key for what is counted.
    pub fn key(&self, what: &impl Hash) -> u128 {
        (u128::from(self.seeds.0.hash_one(what)) << 64) | u128::from(self.seeds.1.hash_one(what))
    }

    /// Counts one request for `key` and says whether it may pass.
    pub fn check(&self, key: u128) -> Decision {
        // The high half picks the shard, the low half the map bucket.
        let shard = &self.shards[(key >> 64) as usize & (SHARDS - 1)];
        let t = self.rate.interval();
        match shard.check_key(&key) {
            Ok(state) => {
                let remaining = u64::from(state.remaining_burst_capacity());
                Decision {
                    allowed: true,
                    remaining,
                    // Within one interval: governor shows the remaining
                    // count, not the exact arrival time.
                    reset: t.saturating_mul(sat32(self.rate.burst.saturating_sub(remaining))),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    reset: wait + t.saturating_mul(sat32(self.rate.burst.saturating_sub(1))),
                    retry_after: wait,
                }
            }
        }
    }

    /// Drops the keys whose counter is back to full (they are the same as
    /// absent ones) and gives the memory back.
    pub fn prune(&self) {
        for s in &self.shards {
            s.retain_recent();
            s.shrink_to_fit();
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn sat32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The map's hasher: keys are already uniform 128-bit hashes, so their low
/// half is the hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prehashed;

#[derive(Default)]
pub struct PrehashedHasher(u64);

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u128 keys; a fallback that still mixes.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// Local limiters by plugin id and rate, kept while a config uses them.
#[derive(Default)]
pub struct LocalRegistry {
    limiters: Mutex<HashMap<(Uuid, Rate), Weak<LocalLimiter>>>,
}

impl LocalRegistry {
    /// The limiter of plugin `id` at `rate`: the one a live config already
    /// holds, or a new one. Called while compiling, never per request.
    pub fn get(&self, id: Uuid, rate: Rate) -> Arc<LocalLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, l| l.strong_count() > 0);
        if let Some(l) = map.get(&(id, rate)).and_then(Weak::upgrade) {
            return l;
        }
        let l = Arc::new(LocalLimiter::new(rate));
        map.insert((id, rate), Arc::downgrade(&l));
        l
    }

    /// Prunes every live limiter (see [`LocalLimiter::prune`]).
    pub fn prune(&self) {
        let live: Vec<Arc<LocalLimiter>> = {
            let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, l| l.strong_count() > 0);
            map.values().filter_map(Weak::upgrade).collect()
        };
        for l in live {
            l.prune();
        }
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
