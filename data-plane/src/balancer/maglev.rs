//! Consistent hashing with a Maglev lookup table (Eisenbud et al., NSDI
//! 2016): a pick is one hash of the request's key and one table read; one
//! key keeps its target, and removing one of N targets moves about 1/N of
//! the keys (plus a little: Maglev trades some of that for balance).
//!
//! The table has [`TABLE_SIZE`] entries (a prime, so every target's
//! preference list, `offset + j * skip`, visits every slot). Targets take
//! turns claiming their next preferred free slot; weights set how often a
//! target gets a turn, so entry shares follow the weights.
//!
//! Every data plane must map a key to the same target, whatever process
//! or binary version it runs: the hash ([`stable_hash`]) is ours, fixed
//! and pinned by a test, and the fill goes through the targets in address
//! order, so the table depends on the set of (address, weight) only.
//!
//! A request without the key is spread round robin. When the key's target
//! is unavailable or tried, the pick walks on through the table from the
//! key's slot: the same key always fails over to the same backup.

use std::fmt;
use std::net::IpAddr;

use http::HeaderName;
use http::header::COOKIE;
use turnpike_model::HashOn;

use super::round_robin::RoundRobin;
use super::{Candidates, CompiledTarget, PickContext};

/// Entries in the lookup table: a prime, about 100 × a large upstream's
/// targets (the paper's rule for balance within ~1%). Fixed, so a key's
/// slot does not move when the number of targets changes.
pub(super) const TABLE_SIZE: usize = 65_537;

/// Table entries a pick walks past an unavailable key target before it
/// scans the targets instead.
const MAX_WALK: usize = 64;

/// Seeds of the three uses of [`stable_hash`]. Part of the contract
/// between data planes: changing one remaps every key.
const SEED_KEY: u64 = 0x7475_726e_7069_6b65; // "turnpike"
const SEED_OFFSET: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SEED_SKIP: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

pub(super) struct Maglev {
    /// Target index per slot; empty when there are no targets.
    table: Box<[u32]>,
    key: Key,
    keyless: RoundRobin,
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("table", &self.table.len())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// [`HashOn`] made ready for the request path (the header name parsed).
#[derive(Debug)]
enum Key {
    Header(HeaderName),
    Cookie(String),
    Ip,
    Consumer,
    /// No usable `hash_on`: every request is keyless.
    None,
}

impl Maglev {
    pub(super) fn new(hash_on: Option<&HashOn>, targets: &[CompiledTarget]) -> Maglev {
        let key = match hash_on {
            Some(HashOn::Header(h)) => {
                HeaderName::from_bytes(h.as_bytes()).map_or(Key::None, Key::Header)
            }
            Some(HashOn::Cookie(c)) => Key::Cookie(c.clone()),
            Some(HashOn::Ip) => Key::Ip,
            Some(HashOn::Consumer) => Key::Consumer,
            None => Key::None,
        };
        Maglev {
            table: build_table(targets).into_boxed_slice(),
            key,
            keyless: RoundRobin::default(),
        }
    }

    pub(super) fn pick(&self, ctx: &PickContext<'_>, c: &Candidates<'_>) -> Option<usize> {
        match self.key_hash(ctx) {
            Some(h) => self.lookup(h, c),
            None => self.keyless.pick(c),
        }
    }

    /// The key's target, or the first candidate after its slot.
    fn lookup(&self, hash: u64, c: &Candidates<'_>) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let slot = (hash % TABLE_SIZE as u64) as usize;
        for k in 0..MAX_WALK {
            let i = self.table[(slot + k) % TABLE_SIZE] as usize;
            if c.ok(i) {
                return Some(i);
            }
        }
        c.first_ok_from(self.table[slot] as usize + 1)
    }

    /// The hash of the request's key; `None` when the request has none
    /// (or an empty one, which would pile every such request on one
    /// target).
    fn key_hash(&self, ctx: &PickContext<'_>) -> Option<u64> {
        let hash = |b: &[u8]| (!b.is_empty()).then(|| stable_hash(b, SEED_KEY));
        match &self.key {
            Key::Header(name) => hash(ctx.header(name)?.as_bytes()),
            Key::Cookie(name) => hash(cookie(ctx.headers, name)?),
            // Canonical: a v4 client seen through a dual-stack socket
            // (::ffff:a.b.c.d) keeps the target it has over v4.
            Key::Ip => match ctx.client_ip.to_canonical() {
                IpAddr::V4(a) => hash(&a.octets()),
                IpAddr::V6(a) => hash(&a.octets()),
            },
            Key::Consumer => hash(ctx.consumer?.as_bytes()),
            Key::None => None,
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` header(s): a
/// lookup only, so a split on `;` and `=` does (no decoding, no
/// allocation); the first occurrence wins.
fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

/// Fills the table: in address order, each target in turn claims the next
/// free slot of its preference list. A target of weight `w` gets a turn
/// in `w / max_weight` of the rounds (integer credits), so its share of
/// entries is its share of the weights.
fn build_table(targets: &[CompiledTarget]) -> Vec<u32> {
    const EMPTY: u32 = u32::MAX;
    if targets.is_empty() {
        return Vec::new();
    }
    let m = TABLE_SIZE as u64;
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by(|&a, &b| {
        targets[a]
            .authority
            .as_str()
            .cmp(targets[b].authority.as_str())
    });
    let prefs: Vec<(u64, u64)> = targets
        .iter()
        .map(|t| {
            let name = t.authority.as_str().as_bytes();
            let offset = stable_hash(name, SEED_OFFSET) % m;
            let skip = stable_hash(name, SEED_SKIP) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight.max(1))).collect();
    let max_weight = weights.iter().copied().max().unwrap_or(1);
    let mut next = vec![0u64; targets.len()];
    let mut credit = vec![0u64; targets.len()];
    let mut table = vec![EMPTY; TABLE_SIZE];
    let mut filled = 0;
    while filled < TABLE_SIZE {
        for &i in &order {
            credit[i] += weights[i];
            if credit[i] < max_weight {
                continue;
            }
            credit[i] -= max_weight;
            // Ends within m steps: m is prime, so the list visits every
            // slot, and one is free while filled < m.
            let (offset, skip) = prefs[i];
            loop {
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if table[slot] == EMPTY {
                    table[slot] = u32::try_from(i).unwrap_or(EMPTY);
                    filled += 1;
                    break;
                }
            }
            if filled == TABLE_SIZE {
                break;
            }
        }
    }
    table
}

/// A 64-bit hash that is the same on every platform, process and build:
/// 8-byte little-endian words folded by a 128-bit multiply (as wyhash and
/// foldhash do), then MurmurHash3's finaliser. Not DoS-resistant, and
/// need not be: a client choosing its key only chooses its own target.
pub(super) fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xbf58_476d_1ce4_e5b9;
    let fold = |a: u64, b: u64| {
        let p = u128::from(a) * u128::from(b);
        (p as u64) ^ ((p >> 64) as u64)
    };
    let mut h = fold(seed ^ K, (bytes.len() as u64) ^ K2);
    let (words, rest) = bytes.as_chunks::<8>();
    for w in words {
        h = fold(h ^ u64::from_le_bytes(*w), K2) ^ K;
    }
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(last), K2) ^ K;
    }
    // fmix64: every input bit reaches every output bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
