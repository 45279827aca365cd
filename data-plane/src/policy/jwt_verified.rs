//! Tokens already verified, by their exact text. An RS256 signature costs
//! more CPU than the whole rest of a proxied request (ring rebuilds the
//! modulus's constants on every verification; `bench/policies.sh`), and a
//! client sends the same token for its whole life, so a token verified
//! once is accepted again without the signature or the JSON: only its time
//! claims are checked again (`exp`, and `nbf` when the plugin checks it,
//! both with the leeway), so an expired token is refused the moment it
//! expires, through the full path with its precise reason.
//!
//! Safe to key by the token because the key is the whole token, compared
//! byte for byte (the hash only finds the slot): a different token, even
//! one byte, is a miss. A cache belongs to one policy instance, which one
//! compiled config owns: a new version (changed credentials, consumers or
//! plugin config) builds a new policy and starts empty. Tokens verified by
//! a JWKS key are not kept (the key set can rotate within a version).
//! Bounded: past [`MAX`] entries the expired ones go, and if that is not
//! enough, all of them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::CompiledConsumer;
use super::claims::Checks;
use super::headers::Forwarded;

/// Tokens kept per policy.
pub(super) const MAX: usize = 10_000;

#[derive(Default)]
pub(super) struct Verified {
    tokens: RwLock<HashMap<Box<str>, Entry, foldhash::fast::RandomState>>,
}

struct Entry {
    consumer: Arc<CompiledConsumer>,
    /// Its `claims_to_headers`.
    forwarded: Forwarded,
    exp: f64,
    nbf: Option<f64>,
}

impl Entry {
    /// The time claims, as `Checks` judges them (their presence and types
    /// were checked when the token was verified).
    fn valid_at(&self, now: f64, checks: &Checks) -> bool {
        !checks.expired(self.exp, now) && !self.nbf.is_some_and(|nbf| checks.early(nbf, now))
    }
}

impl Verified {
    /// The consumer of `raw` (and its claims' headers) if it was verified
    /// and its time claims still hold.
    pub(super) fn get(
        &self,
        raw: &str,
        checks: &Checks,
    ) -> Option<(Arc<CompiledConsumer>, Forwarded)> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let entry = tokens.get(raw)?;
        let now = (checks.now)() as f64;
        entry
            .valid_at(now, checks)
            .then(|| (entry.consumer.clone(), entry.forwarded.clone()))
    }

    /// Keeps `raw`, just verified (signature and every claim) for `consumer`.
    pub(super) fn put(
        &self,
        raw: &str,
        claims: &serde_json::Map<String, Value>,
        consumer: &Arc<CompiledConsumer>,
        forwarded: &Forwarded,
        checks: &Checks,
    ) {
        // The claims passed their checks, so `exp` is a number.
        let Some(exp) = claims.get("exp").and_then(Value::as_f64) else {
            return;
        };
        let entry = Entry {
            consumer: consumer.clone(),
            forwarded: forwarded.clone(),
            exp,
            nbf: claims.get("nbf").and_then(Value::as_f64),
        };
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= MAX {
            let now = (checks.now)() as f64;
            tokens.retain(|_, e| e.valid_at(now, checks));
            if tokens.len() >= MAX {
                tokens.clear();
            }
        }
        tokens.insert(raw.into(), entry);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.tokens.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
