//! `access-log` (log phase): whether an answer's access-log line is
//! written, for the routes and consumers it applies to. The access log
//! itself stays on or off by `--access-log`; this only thins it.
//!
//! The decision is made once per answer, where the line would be written
//! (`observe::exchange`), and costs no allocation, lock or shared write:
//! rate 0 and 1 decide without drawing; any other rate compares one draw
//! of the runtime thread's own generator with a threshold fixed at compile
//! time. Random rather than every n-th, so a client cannot line its
//! requests up with the sampler, and no counter is shared between threads.

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use turnpike_model::plugin::access_log::AccessLogConfig;

use super::{Phase, Policy};

pub struct AccessLogSampling {
    sampler: Sampler,
    always_log_errors: bool,
}

/// Which share of answers is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    Never,
    Always,
    /// Logged when a uniform `u64` draw is below this.
    Below(u64),
}

impl Sampler {
    /// The sampler of a rate in `[0, 1]` (the schema's range; outside it,
    /// clamped).
    pub fn new(rate: f64) -> Sampler {
        if rate.is_nan() || rate <= 0.0 {
            Sampler::Never
        } else if rate >= 1.0 {
            Sampler::Always
        } else {
            // rate × 2^64, exact to the 53 bits of the rate; `as`
            // saturates, and rate < 1 keeps it below u64::MAX anyway.
            Sampler::Below((rate * (u64::MAX as f64)) as u64)
        }
    }

    /// Whether this answer is in the sample.
    pub fn sample(self) -> bool {
        match self {
            Sampler::Never => false,
            Sampler::Always => true,
            Sampler::Below(t) => RNG.with(|r| r.borrow_mut().random::<u64>()) < t,
        }
    }
}

thread_local! {
    /// Per-thread generator: no lock, no contention between runtime
    /// threads. Seeded once from the OS-seeded thread RNG.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

impl AccessLogSampling {
    pub fn new(config: &AccessLogConfig) -> AccessLogSampling {
        AccessLogSampling {
            sampler: Sampler::new(config.sample_rate),
            always_log_errors: config.always_log_errors,
        }
    }
}

impl Policy for AccessLogSampling {
    fn name(&self) -> &'static str {
        "access-log"
    }

    fn phase(&self) -> Phase {
        Phase::Log
    }

    fn priority(&self) -> u16 {
        100
    }

    fn on_log(&self, status: u16) -> bool {
        (self.always_log_errors && status >= 400) || self.sampler.sample()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(sample_rate: f64, always_log_errors: bool) -> AccessLogSampling {
        AccessLogSampling::new(&AccessLogConfig {
            sample_rate,
            always_log_errors,
        })
    }

    fn logged(p: &AccessLogSampling, status: u16, n: usize) -> usize {
        (0..n).filter(|_| p.on_log(status)).count()
    }

    #[test]
    fn rate_zero_logs_nothing_and_one_everything() {
        assert_eq!(logged(&policy(0.0, false), 200, 10_000), 0);
        assert_eq!(logged(&policy(0.0, false), 503, 10_000), 0);
        assert_eq!(logged(&policy(1.0, false), 200, 10_000), 10_000);
        assert_eq!(Sampler::new(0.0), Sampler::Never);
        assert_eq!(Sampler::new(1.0), Sampler::Always);
        assert_eq!(Sampler::new(-1.0), Sampler::Never);
        assert_eq!(Sampler::new(f64::NAN), Sampler::Never);
    }

    #[test]
    fn a_quarter_is_about_a_quarter() {
        // Binomial(10,000, 0.25): σ ≈ 43; ±250 is beyond 5.7σ.
        let n = logged(&policy(0.25, false), 200, 10_000);
        assert!((2_250..=2_750).contains(&n), "{n} of 10,000");
        // Tiny and nearly-one rates are neither never nor always.
        assert!(matches!(Sampler::new(1e-9), Sampler::Below(t) if t > 0));
        assert!(matches!(Sampler::new(0.999_999), Sampler::Below(t) if t < u64::MAX));
    }

    #[test]
    fn errors_are_always_logged_when_asked() {
        let p = policy(0.0, true);
        for status in [400, 401, 404, 429, 500, 502, 504] {
            assert_eq!(logged(&p, status, 100), 100, "{status}");
        }
        for status in [101, 200, 204, 304] {
            assert_eq!(logged(&p, status, 100), 0, "{status}");
        }
        let sampled = logged(&policy(0.25, true), 503, 1_000);
        assert_eq!(sampled, 1_000);
    }

    #[test]
    fn the_most_specific_instance_decides() {
        use std::collections::HashMap;
        use std::sync::Arc;

        use turnpike_model::{Plugin, PluginSpec, Snapshot};
        use uuid::Uuid;

        use crate::policy::{CompiledConsumer, CompiledPolicies};

        let alice = Uuid::now_v7();
        let plugin = |route: Option<&str>, consumer: Option<Uuid>, rate: f64| Plugin {
            id: Uuid::now_v7(),
            spec: PluginSpec {
                name: "access-log".into(),
                config: serde_json::json!({"sample_rate": rate, "always_log_errors": true}),
                route: route.map(Into::into),
                consumer: consumer.map(|c| c.to_string()),
                enabled: true,
                tags: vec![],
            },
        };
        let snapshot = Snapshot {
            plugins: vec![
                plugin(None, None, 1.0),
                plugin(Some("quiet"), None, 0.0),
                plugin(Some("quiet"), Some(alice), 1.0),
            ],
            ..Snapshot::default()
        };
        let routes = HashMap::from([("quiet".into(), 0), ("loud".into(), 1)]);
        let p = CompiledPolicies::build(&snapshot, &routes, 2).unwrap();
        let consumer = |id: Uuid| {
            Arc::new(CompiledConsumer {
                id,
                username: "c".into(),
                groups: vec![],
                id_header: http::HeaderValue::from_static("c"),
                username_header: http::HeaderValue::from_static("c"),
            })
        };
        let (alice, bob) = (consumer(alice), consumer(Uuid::now_v7()));
        // The route's rate 0 replaces the global 1; errors still logged.
        assert!(!p.logs(0, None, 200));
        assert!(!p.logs(0, Some(&bob), 200));
        assert!(p.logs(0, None, 500));
        // The global instance elsewhere; the consumer's on its route.
        assert!(p.logs(1, None, 200));
        assert!(p.logs(0, Some(&alice), 200));
        // No plugin at all: every answer.
        assert!(CompiledPolicies::default().logs(0, None, 200));
    }
}
