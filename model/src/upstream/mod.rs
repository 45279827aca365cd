//! Upstreams: a named set of targets and how to reach them. How requests
//! are spread and sent is in `balancing`, health checks in `health`.

pub mod balancing;
pub mod health;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::balancing::{Algorithm, HashOn, UpstreamProtocol, UpstreamTls};
pub use self::health::{ActiveHealthCheck, CircuitBreaker, HealthChecks, PassiveHealthCheck};
use crate::{ValidationErrors, check_name, check_tags};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `host:port`; the host is an IP address or a DNS name.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "10.0.0.1:8080",
            max_length = 261,
            pattern = r"^(\[[0-9A-Fa-f:.]+\]|([0-9]{1,3}\.){3}[0-9]{1,3}|([A-Za-z0-9-]+\.)*[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9-]*):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
        )
    )]
    pub address: String,
    /// Relative share of traffic; 0 takes the target out of rotation.
    #[serde(default = "default_weight")]
    #[cfg_attr(feature = "openapi", schema(default = 1, minimum = 0, maximum = 1000))]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Time allowed to open a TCP connection to a target.
    #[serde(default = "default_connect_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 5000, minimum = 1, maximum = 3600000)
    )]
    pub connect_ms: u32,
    /// Time allowed from sending the request until the response head
    /// arrives (connection time included).
    #[serde(default = "default_read_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 60000, minimum = 1, maximum = 3600000)
    )]
    pub read_ms: u32,
    /// Time a write of the request to a target may stall (the target not
    /// taking bytes) before the request fails with 504.
    #[serde(default = "default_write_ms")]
    #[cfg_attr(
        feature = "openapi",
        schema(default = 60000, minimum = 1, maximum = 3600000)
    )]
    pub write_ms: u32,
}

fn default_connect_ms() -> u32 {
    5_000
}

fn default_read_ms() -> u32 {
    60_000
}

fn default_write_ms() -> u32 {
    60_000
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: default_connect_ms(),
            read_ms: default_read_ms(),
            write_ms: default_write_ms(),
        }
    }
}

/// What an operator writes for an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// Unique; letters, digits, `.`, `_`, `~`, `-`; not a UUID.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "users",
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9._~-]+$"
        )
    )]
    pub name: String,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// What `consistent_hash` hashes; only with that algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    #[serde(default, deserialize_with = "crate::strict::objects")]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub targets: Vec<Target>,
    #[serde(default, deserialize_with = "crate::strict::object")]
    pub health_checks: HealthChecks,
    /// Caps on requests in progress and waiting; none when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict::optional_object"
    )]
    pub circuit_breaker: Option<CircuitBreaker>,
    #[serde(default, deserialize_with = "crate::strict::object")]
    pub timeouts: Timeouts,
    /// How many more targets an idempotent request may try after a
    /// connection failure, within the upstream's retry budget.
    #[serde(default = "default_retries")]
    #[cfg_attr(feature = "openapi", schema(default = 1, minimum = 0, maximum = 10))]
    pub retries: u32,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// TLS to the targets; off when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict::optional_object"
    )]
    pub tls: Option<UpstreamTls>,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_retries() -> u32 {
    1
}

pub const MAX_TARGETS: usize = 1_000;
pub const MAX_WEIGHT: u32 = 1_000;
pub const MAX_TIMEOUT_MS: u32 = 3_600_000;

impl UpstreamSpec {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        check_name("name", &self.name, &mut errors);
        if self.targets.len() > MAX_TARGETS {
            errors.push("targets", format!("at most {MAX_TARGETS} targets"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if let Err(msg) = parse_address(&t.address) {
                errors.push(format!("targets[{i}].address"), msg);
            } else if !seen.insert(t.address.as_str()) {
                errors.push(format!("targets[{i}].address"), "duplicate target");
            }
            if t.weight > MAX_WEIGHT {
                errors.push(
                    format!("targets[{i}].weight"),
                    format!("must be 0 to {MAX_WEIGHT}"),
                );
            }
        }
        for (field, v) in [
            ("timeouts.connect_ms", self.timeouts.connect_ms),
            ("timeouts.read_ms", self.timeouts.read_ms),
            ("timeouts.write_ms", self.timeouts.write_ms),
        ] {
            if v == 0 || v > MAX_TIMEOUT_MS {
                errors.push(field, format!("must be 1 to {MAX_TIMEOUT_MS}"));
            }
        }
        balancing::validate(
            self.algorithm,
            self.hash_on.as_ref(),
            self.retries,
            self.tls.as_ref(),
            &mut errors,
        );
        self.health_checks.validate(&mut errors);
        if let Some(cb) = &self.circuit_breaker {
            cb.validate(&mut errors);
        }
        check_tags(&self.tags, &mut errors);
        errors.into_result()
    }
}

/// Parses `host:port` into an authority the proxy can dial. The port is
/// required: a gateway should not guess it.
pub fn parse_address(address: &str) -> Result<http::uri::Authority, String> {
    let authority: http::uri::Authority = address
        .parse()
        .map_err(|_| "must be host:port".to_owned())?;
    if authority.as_str().contains('@') {
        return Err("must not contain user information".into());
    }
    match authority.port_u16() {
        None => Err("must include a port, as in 10.0.0.1:8080".into()),
        Some(0) => Err("port must be 1 to 65535".into()),
        Some(_) => {
            check_host(authority.host())?;
            Ok(authority)
        }
    }
}

/// A target host is an IPv4 literal, a bracketed IPv6 literal, or a DNS
/// name whose last label is not all digits (RFC 3696 §2). This refuses
/// `127.1` or `2`, which resolvers read as odd IPv4 forms and YAML 1.1
/// tools misread in `2:37`.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("must include a host".into());
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "the IPv6 address in brackets is not valid".into());
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    let tld_has_letter = host
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    if labels_ok && tld_has_letter && host.len() <= 253 {
        Ok(())
    } else {
        Err("the host must be an IPv4 address, [IPv6] address or DNS name".into())
    }
}

/// An upstream as stored and distributed: its id plus what was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: UpstreamSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> UpstreamSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults() {
        let s =
            spec(serde_json::json!({"name": "users", "targets": [{"address": "127.0.0.1:9001"}]}));
        assert_eq!(s.algorithm, Algorithm::RoundRobin);
        assert_eq!(s.targets[0].weight, 1);
        assert_eq!(s.timeouts, Timeouts::default());
        assert!(s.validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let s = spec(serde_json::json!({
            "name": "bad name",
            "targets": [
                {"address": "127.0.0.1"},
                {"address": "a:1", "weight": 5000},
                {"address": "a:1"},
                {"address": "user@h:80"},
                {"address": "2:37"},
                {"address": "[::zz]:80"}
            ],
            "timeouts": {"connect_ms": 0},
            "tags": ["a,b"]
        }));
        let errors = s.validate().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "targets[0].address",
                "targets[1].weight",
                "targets[2].address",
                "targets[3].address",
                "targets[4].address",
                "targets[5].address",
                "timeouts.connect_ms",
                "tags[0]"
            ]
        );
    }

    #[test]
    fn unknown_fields_and_algorithms_are_refused() {
        assert!(
            serde_json::from_value::<UpstreamSpec>(serde_json::json!({"name": "a", "nope": 1}))
                .is_err()
        );
        let err = serde_json::from_value::<UpstreamSpec>(
            serde_json::json!({"name": "a", "algorithm": "magic"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("round_robin"), "{err}");
    }

    #[test]
    fn balancing_and_health_fields() {
        let s = spec(serde_json::json!({
            "name": "a",
            "algorithm": "consistent_hash",
            "hash_on": {"header": "x-user"},
            "health_checks": {"active": {"path": "/health"}, "passive": {}},
            "retries": 2,
            "protocol": "http2",
            "tls": {"server_name": "a.internal"}
        }));
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        assert_eq!(s.hash_on, Some(HashOn::Header("x-user".into())));
        assert_eq!(s.health_checks.active.as_ref().unwrap().interval_ms, 5000);
        assert_eq!(
            s.health_checks
                .passive
                .as_ref()
                .unwrap()
                .consecutive_failures,
            5
        );
        assert!(s.tls.as_ref().unwrap().verify);
        assert_eq!(
            spec(serde_json::json!({"name": "a", "algorithm": "consistent_hash", "hash_on": "ip"}))
                .hash_on,
            Some(HashOn::Ip)
        );

        let bad = spec(serde_json::json!({
            "name": "a",
            "algorithm": "round_robin",
            "hash_on": "ip",
            "health_checks": {
                "active": {"path": "nope", "interval_ms": 1, "expected_statuses": [99]},
                "passive": {"ejection_ms": 10, "max_ejection_ms": 5, "max_ejected_percent": 101}
            },
            "retries": 11,
            "tls": {"server_name": "bad name", "ca": "x"}
        }));
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "hash_on",
                "retries",
                "tls.server_name",
                "tls.ca",
                "health_checks.active.interval_ms",
                "health_checks.passive.max_ejected_percent",
                "health_checks.passive.max_ejection_ms",
                "health_checks.active.path",
                "health_checks.active.expected_statuses[0]",
            ]
        );
        let missing = spec(serde_json::json!({"name": "a", "algorithm": "consistent_hash"}));
        assert_eq!(missing.validate().unwrap_err().0[0].field, "hash_on");
    }
}
