//! `rate-limit`: at most `limit` requests per window and key, with a burst
//! allowance (GCRA), counted locally or in Redis.

use serde::{Deserialize, Serialize};

use super::{Schema, check_header_name};
use crate::ValidationErrors;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per window.
    pub limit: u64,
    /// The window, as `per` (second, minute, hour) or `window_s`; one of
    /// them, `per: minute` when neither is given.
    #[serde(default)]
    pub per: Option<Per>,
    #[serde(default)]
    pub window_s: Option<u32>,
    /// Requests allowed at once; null means `limit`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// What is counted: `consumer`, `ip`, `route` or `header:NAME`.
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default)]
    pub policy: Policy,
    /// With `policy: redis`, let requests through when Redis fails.
    #[serde(default = "yes")]
    pub fault_tolerant: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    Second,
    Minute,
    Hour,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Local,
    Redis,
}

fn default_key() -> String {
    "ip".to_owned()
}

fn yes() -> bool {
    true
}

pub const MAX_WINDOW_S: u32 = 86_400;

impl Schema for RateLimitConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.limit == 0 || self.limit > 1_000_000_000 {
            errors.push("limit", "must be 1 to 1000000000");
        }
        match (self.per, self.window_s) {
            (Some(_), Some(_)) => errors.push("window_s", "give per or window_s, not both"),
            (None, None) => self.per = Some(Per::Minute),
            (None, Some(w)) if w == 0 || w > MAX_WINDOW_S => {
                errors.push("window_s", format!("must be 1 to {MAX_WINDOW_S}"));
            }
            _ => {}
        }
        if self.burst.is_some_and(|b| b == 0 || b > 1_000_000_000) {
            errors.push("burst", "must be 1 to 1000000000");
        }
        match self.key.as_str() {
            "consumer" | "ip" | "route" => {}
            k => match k.strip_prefix("header:") {
                Some(name) => check_header_name("key", name, errors),
                None => errors.push("key", "must be consumer, ip, route or header:NAME"),
            },
        }
        if let Some(name) = self.key.strip_prefix("header:") {
            // Header names are case-insensitive: store one spelling.
            self.key = format!("header:{}", name.to_ascii_lowercase());
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
            check("rate-limit", json!({"limit": 100})).unwrap(),
            json!({"limit": 100, "per": "minute", "window_s": null, "burst": null, "key": "ip",
                   "policy": "local", "fault_tolerant": true})
        );
        let c = check(
            "rate-limit",
            json!({"limit": 5, "window_s": 10, "key": "header:X-User", "policy": "redis"}),
        )
        .unwrap();
        assert_eq!(
            (c["per"].clone(), c["key"].clone()),
            (json!(null), json!("header:x-user"))
        );
        assert_eq!(check("rate-limit", json!({})), Err(vec!["config".into()]));
        assert_eq!(
            check(
                "rate-limit",
                json!({"limit": 0, "per": "minute", "window_s": 5, "burst": 0, "key": "user"})
            ),
            Err(vec![
                "config.limit".into(),
                "config.window_s".into(),
                "config.burst".into(),
                "config.key".into()
            ])
        );
        assert_eq!(
            check("rate-limit", json!({"limit": 1, "per": "day"})),
            Err(vec!["config.per".into()])
        );
        assert_eq!(
            check("rate-limit", json!({"limit": 1, "policy": "cluster"})),
            Err(vec!["config.policy".into()])
        );
    }
}
