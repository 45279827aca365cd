//! Target selection. Round robin over the targets in rotation (weight > 0):
//! one relaxed atomic increment per pick, no lock. What is learnt about
//! each target (in flight, latency, health) is in `state`.

pub mod state;

use std::sync::atomic::{AtomicUsize, Ordering};

use http::uri::Authority;

#[derive(Debug)]
pub struct CompiledTarget {
    pub authority: Authority,
}

#[derive(Debug)]
pub struct RoundRobin {
    targets: Vec<CompiledTarget>,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(targets: Vec<CompiledTarget>) -> RoundRobin {
        RoundRobin {
            targets,
            next: AtomicUsize::new(0),
        }
    }

    pub fn pick(&self) -> Option<&CompiledTarget> {
        if self.targets.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(&self.targets[i % self.targets.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_evenly() {
        let rr = RoundRobin::new(
            ["a:1", "b:2", "c:3"]
                .iter()
                .map(|a| CompiledTarget {
                    authority: a.parse().unwrap(),
                })
                .collect(),
        );
        let picks: Vec<&str> = (0..6)
            .map(|_| rr.pick().unwrap().authority.as_str())
            .collect();
        assert_eq!(picks, ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3"]);
        assert!(RoundRobin::new(vec![]).pick().is_none());
    }
}
