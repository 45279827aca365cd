//! `access-log`: thins the access log (`--access-log`) of the requests it
//! applies to. `sample_rate` is the share of answers logged (0 turns the
//! log off for them, 1 logs every one); with `always_log_errors`, 4xx and
//! 5xx answers are logged whatever the sample says. It never turns a log on
//! that the data plane runs without.

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Share of answers logged, from 0 (none) to 1 (all).
    #[serde(default = "default_sample_rate")]
    pub sample_rate: f64,
    /// 4xx and 5xx answers are logged even when sampled out.
    #[serde(default = "default_always_log_errors")]
    pub always_log_errors: bool,
}

fn default_sample_rate() -> f64 {
    1.0
}

fn default_always_log_errors() -> bool {
    true
}

impl Schema for AccessLogConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            errors.push("sample_rate", "must be between 0 and 1");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        assert_eq!(
            check("access-log", json!({})).unwrap(),
            json!({"sample_rate": 1.0, "always_log_errors": true})
        );
        assert_eq!(
            check(
                "access-log",
                json!({"sample_rate": 0, "always_log_errors": false})
            )
            .unwrap(),
            json!({"sample_rate": 0.0, "always_log_errors": false})
        );
        assert_eq!(
            check("access-log", json!({"sample_rate": 0.25})).unwrap()["sample_rate"],
            json!(0.25)
        );
        for bad in [json!(-0.1), json!(1.5), json!("half"), json!(null)] {
            assert_eq!(
                check("access-log", json!({"sample_rate": bad})),
                Err(vec!["config.sample_rate".into()]),
                "{bad}"
            );
        }
        assert_eq!(
            check("access-log", json!({"always_log_errors": "yes"})),
            Err(vec!["config.always_log_errors".into()])
        );
        assert_eq!(
            check("access-log", json!({"rate": 0.5})),
            Err(vec!["config.rate".into()])
        );
    }
}
