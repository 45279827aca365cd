//! `request-size-limit`: refuses request bodies over `max_bytes` with 413.

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSizeLimitConfig {
    /// Largest body accepted; Kong's default, 128 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_bytes() -> u64 {
    128 * 1024 * 1024
}

impl Schema for RequestSizeLimitConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.max_bytes == 0 {
            errors.push("max_bytes", "must be at least 1");
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
            check("request-size-limit", json!({})).unwrap(),
            json!({"max_bytes": 134217728})
        );
        assert_eq!(
            check("request-size-limit", json!({"max_bytes": 0})),
            Err(vec!["config.max_bytes".into()])
        );
        assert_eq!(
            check("request-size-limit", json!({"max_bytes": -1})),
            Err(vec!["config.max_bytes".into()])
        );
    }
}
