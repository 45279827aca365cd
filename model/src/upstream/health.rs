//! Upstream health checks: active probes each data plane sends, and passive
//! outlier detection from the traffic it proxies; and the circuit breaker
//! that caps what one upstream may hold. All are off unless set.

use serde::{Deserialize, Serialize};

use crate::ValidationErrors;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthChecks {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict::optional_object"
    )]
    pub active: Option<ActiveHealthCheck>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict::optional_object"
    )]
    pub passive: Option<PassiveHealthCheck>,
}

/// An HTTP probe of every target: taken out after `unhealthy_threshold`
/// failed probes in a row, back after `healthy_threshold` good ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthCheck {
    /// Path (and query) probed with `GET`.
    #[serde(default = "default_path")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = "/", max_length = 1024, pattern = "^/")
    )]
    pub path: String,
    #[serde(default = "default_interval_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 5000, minimum = 100, maximum = 3600000)
    )]
    pub interval_ms: u32,
    #[serde(default = "default_timeout_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 1000, minimum = 1, maximum = 3600000)
    )]
    pub timeout_ms: u32,
    #[serde(default = "default_healthy")]
    #[cfg_attr(feature = "openapi", schema(default = 2, minimum = 1, maximum = 100))]
    pub healthy_threshold: u32,
    #[serde(default = "default_unhealthy")]
    #[cfg_attr(feature = "openapi", schema(default = 3, minimum = 1, maximum = 100))]
    pub unhealthy_threshold: u32,
    /// Statuses that count as healthy; empty means any 2xx or 3xx.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub expected_statuses: Vec<u16>,
}

/// Outlier detection: `consecutive_failures` connection failures or 5xx
/// answers in a row eject a target for `ejection_ms`, longer on each repeat
/// ejection up to `max_ejection_ms`; never more than
/// `max_ejected_percent` of the targets at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthCheck {
    #[serde(default = "default_consecutive")]
    #[cfg_attr(feature = "openapi", schema(default = 5, minimum = 1, maximum = 1000))]
    pub consecutive_failures: u32,
    #[serde(default = "default_ejection_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 30000, minimum = 1, maximum = 3600000)
    )]
    pub ejection_ms: u32,
    #[serde(default = "default_max_ejection_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 300000, minimum = 1, maximum = 3600000)
    )]
    pub max_ejection_ms: u32,
    #[serde(default = "default_max_ejected_percent")]
    #[cfg_attr(feature = "openapi", schema(default = 50, minimum = 0, maximum = 100))]
    pub max_ejected_percent: u32,
}

/// Caps per upstream and per data plane: requests beyond them are answered
/// 503 at once instead of queueing behind a struggling upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Requests in progress (sent, response not finished).
    #[serde(default = "default_max_requests")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 1024, minimum = 1, maximum = 1000000)
    )]
    pub max_requests: u32,
    /// Requests waiting for their response to start (connecting, or sent
    /// and not yet answered).
    #[serde(default = "default_max_pending")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 1024, minimum = 1, maximum = 1000000)
    )]
    pub max_pending: u32,
}

fn default_max_requests() -> u32 {
    1024
}
fn default_max_pending() -> u32 {
    1024
}

impl CircuitBreaker {
    pub(crate) fn validate(&self, errors: &mut ValidationErrors) {
        for (field, v) in [
            ("circuit_breaker.max_requests", self.max_requests),
            ("circuit_breaker.max_pending", self.max_pending),
        ] {
            if v == 0 || v > 1_000_000 {
                errors.push(field, "must be 1 to 1000000");
            }
        }
    }
}

impl Default for ActiveHealthCheck {
    fn default() -> Self {
        ActiveHealthCheck {
            path: default_path(),
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            healthy_threshold: default_healthy(),
            unhealthy_threshold: default_unhealthy(),
            expected_statuses: Vec::new(),
        }
    }
}

impl Default for PassiveHealthCheck {
    fn default() -> Self {
        PassiveHealthCheck {
            consecutive_failures: default_consecutive(),
            ejection_ms: default_ejection_ms(),
            max_ejection_ms: default_max_ejection_ms(),
            max_ejected_percent: default_max_ejected_percent(),
        }
    }
}

fn default_path() -> String {
    "/".into()
}
fn default_interval_ms() -> u32 {
    5_000
}
fn default_timeout_ms() -> u32 {
    1_000
}
fn default_healthy() -> u32 {
    2
}
fn default_unhealthy() -> u32 {
    3
}
fn default_consecutive() -> u32 {
    5
}
fn default_ejection_ms() -> u32 {
    30_000
}
fn default_max_ejection_ms() -> u32 {
    300_000
}
fn default_max_ejected_percent() -> u32 {
    50
}

const MAX_MS: u32 = 3_600_000;

impl HealthChecks {
    pub(crate) fn validate(&self, errors: &mut ValidationErrors) {
        let mut range = |field: &str, v: u32, min: u32, max: u32| {
            if v < min || v > max {
                errors.push(
                    format!("health_checks.{field}"),
                    format!("must be {min} to {max}"),
                );
            }
        };
        if let Some(a) = &self.active {
            range("active.interval_ms", a.interval_ms, 100, MAX_MS);
            range("active.timeout_ms", a.timeout_ms, 1, MAX_MS);
            range("active.healthy_threshold", a.healthy_threshold, 1, 100);
            range("active.unhealthy_threshold", a.unhealthy_threshold, 1, 100);
        }
        if let Some(p) = &self.passive {
            range(
                "passive.consecutive_failures",
                p.consecutive_failures,
                1,
                1000,
            );
            range("passive.ejection_ms", p.ejection_ms, 1, MAX_MS);
            range("passive.max_ejection_ms", p.max_ejection_ms, 1, MAX_MS);
            range("passive.max_ejected_percent", p.max_ejected_percent, 0, 100);
            if p.max_ejection_ms < p.ejection_ms {
                errors.push(
                    "health_checks.passive.max_ejection_ms",
                    "must be at least ejection_ms",
                );
            }
        }
        if let Some(a) = &self.active {
            let path_ok = a.path.starts_with('/')
                && a.path.len() <= 1024
                && http::uri::PathAndQuery::try_from(a.path.as_str()).is_ok();
            if !path_ok {
                errors.push(
                    "health_checks.active.path",
                    "must be a path starting with /, at most 1024 bytes",
                );
            }
            if a.expected_statuses.len() > 100 {
                errors.push("health_checks.active.expected_statuses", "at most 100");
            }
            for (i, s) in a.expected_statuses.iter().enumerate() {
                if !(100..=599).contains(s) {
                    errors.push(
                        format!("health_checks.active.expected_statuses[{i}]"),
                        "must be 100 to 599",
                    );
                }
            }
        }
    }
}
