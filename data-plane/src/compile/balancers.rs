//! Balancers kept across config versions: a version that leaves an
//! upstream's algorithm, hash key and targets as they were reuses its
//! balancer, so round-robin cursors keep their place, smooth weighted
//! sequences are not restarted, and a Maglev table (256 KiB, a millisecond
//! to fill) is not rebuilt on every unrelated change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use turnpike_model::{Algorithm, HashOn, UpstreamSpec};
use uuid::Uuid;

use crate::balancer::{CompiledBalancer, CompiledTarget};

/// What a balancer is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    algorithm: Algorithm,
    hash_on: Option<HashOn>,
    targets: Vec<(String, u32)>,
}

#[derive(Default)]
pub struct BalancerCache {
    balancers: Mutex<HashMap<Uuid, (Inputs, Weak<CompiledBalancer>)>>,
}

impl BalancerCache {
    /// The live balancer of upstream `id` if it was built from the same
    /// inputs, else a new one from `targets` (made only when needed).
    pub fn get(
        &self,
        id: Uuid,
        spec: &UpstreamSpec,
        targets: impl FnOnce() -> Vec<CompiledTarget>,
    ) -> Arc<CompiledBalancer> {
        let inputs = Inputs {
            algorithm: spec.algorithm,
            hash_on: spec.hash_on.clone(),
            targets: spec
                .targets
                .iter()
                .filter(|t| t.weight > 0)
                .map(|t| (t.address.clone(), t.weight))
                .collect(),
        };
        let mut balancers = self.balancers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, weak)) = balancers.get(&id)
            && *seen == inputs
            && let Some(b) = weak.upgrade()
        {
            return b;
        }
        balancers.retain(|_, (_, b)| b.strong_count() > 0);
        let b = Arc::new(CompiledBalancer::new(
            spec.algorithm,
            spec.hash_on.as_ref(),
            targets(),
        ));
        balancers.insert(id, (inputs, Arc::downgrade(&b)));
        b
    }
}
