//! Upstream health: `active` probes each target on a timer and keeps its
//! `healthy` flag; `passive` ejects targets that fail on live traffic. Both
//! write the per-target atomics of `balancer::state`, which the balancer
//! reads through `TargetState::available`. [`HealthRegistry`] keeps the
//! active checkers across config versions, so a reload that changes
//! neither an upstream's active config nor its targets neither restarts
//! its probes nor forgets their streaks.

pub mod active;
pub mod passive;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use http::uri::Authority;
use turnpike_model::ActiveHealthCheck;
use uuid::Uuid;

pub use active::{ActiveChecker, ProbeFn};
pub use passive::{Outcome, PassiveChecker};

use crate::balancer::state::TargetState;

/// What must be equal for a running checker to be reused.
#[derive(PartialEq, Eq, Hash)]
struct ActiveKey {
    upstream: Uuid,
    /// In the key so the logs name the upstream as it is called now.
    name: String,
    cfg: ActiveHealthCheck,
    /// Address and state (by pointer) of each target. A live entry's
    /// checker holds these states, so equal pointers are the same states.
    targets: Vec<(Authority, usize)>,
}

/// The active checkers in use, shared by every config version alive. A
/// config holds strong references, the registry weak ones (as
/// `proxy::client::ClientRegistry` does), so a checker no live config
/// uses drops and stops.
#[derive(Default)]
pub struct HealthRegistry {
    active: Mutex<HashMap<ActiveKey, Weak<ActiveChecker>>>,
}

impl HealthRegistry {
    /// The checker of upstream `upstream_id` with this config and these
    /// targets: the one a live config already runs (its probe replaced by
    /// `probe`, so it uses the newest client), or a new one. Called while
    /// compiling, inside the tokio runtime; never on the request path.
    pub fn active(
        &self,
        upstream_id: Uuid,
        upstream_name: &str,
        cfg: &ActiveHealthCheck,
        targets: Vec<(Authority, Arc<TargetState>)>,
        probe: ProbeFn,
    ) -> Arc<ActiveChecker> {
        let key = ActiveKey {
            upstream: upstream_id,
            name: upstream_name.to_owned(),
            cfg: cfg.clone(),
            targets: targets
                .iter()
                .map(|(a, s)| (a.clone(), Arc::as_ptr(s) as usize))
                .collect(),
        };
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active.retain(|_, c| c.strong_count() > 0);
        if let Some(c) = active.get(&key).and_then(Weak::upgrade) {
            c.set_probe(probe);
            return c;
        }
        let c = Arc::new(ActiveChecker::start(upstream_name, cfg, targets, probe));
        active.insert(key, Arc::downgrade(&c));
        c
    }
}
