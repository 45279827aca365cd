//! Upstreams on the wire: the domain [`Upstream`] to and from
//! `proto::Upstream`, field by field, so nothing an operator set is lost
//! between the control plane and the data planes.

use turnpike_proto as proto;

use crate::{
    ActiveHealthCheck, Algorithm, CircuitBreaker, HashOn, HealthChecks, ModelError,
    PassiveHealthCheck, Target, Timeouts, Upstream, UpstreamProtocol, UpstreamSpec, UpstreamTls,
};

pub(crate) fn to_proto(u: &Upstream) -> proto::Upstream {
    let s = &u.spec;
    proto::Upstream {
        id: u.id.to_string(),
        name: s.name.clone(),
        algorithm: match s.algorithm {
            Algorithm::RoundRobin => proto::Algorithm::RoundRobin,
            Algorithm::WeightedRoundRobin => proto::Algorithm::WeightedRoundRobin,
            Algorithm::LeastConnections => proto::Algorithm::LeastConnections,
            Algorithm::ConsistentHash => proto::Algorithm::ConsistentHash,
            Algorithm::Latency => proto::Algorithm::Latency,
        } as i32,
        targets: s
            .targets
            .iter()
            .map(|t| proto::Target {
                address: t.address.clone(),
                weight: t.weight,
            })
            .collect(),
        timeouts: Some(proto::Timeouts {
            connect_ms: s.timeouts.connect_ms,
            read_ms: s.timeouts.read_ms,
            write_ms: s.timeouts.write_ms,
        }),
        retries: s.retries,
        tags: s.tags.clone(),
        hash_on: s.hash_on.as_ref().map(|h| proto::HashOn {
            key: Some(match h {
                HashOn::Header(n) => proto::hash_on::Key::Header(n.clone()),
                HashOn::Cookie(n) => proto::hash_on::Key::Cookie(n.clone()),
                HashOn::Ip => proto::hash_on::Key::Ip(true),
                HashOn::Consumer => proto::hash_on::Key::Consumer(true),
            }),
        }),
        // Absent when unset, so a config without health checks encodes (and
        // hashes) as before they existed.
        health_checks: (s.health_checks != HealthChecks::default()).then(|| proto::HealthChecks {
            active: s
                .health_checks
                .active
                .as_ref()
                .map(|a| proto::ActiveHealthCheck {
                    path: a.path.clone(),
                    interval_ms: a.interval_ms,
                    timeout_ms: a.timeout_ms,
                    healthy_threshold: a.healthy_threshold,
                    unhealthy_threshold: a.unhealthy_threshold,
                    expected_statuses: a.expected_statuses.iter().map(|&c| c.into()).collect(),
                }),
            passive: s
                .health_checks
                .passive
                .as_ref()
                .map(|p| proto::PassiveHealthCheck {
                    consecutive_failures: p.consecutive_failures,
                    ejection_ms: p.ejection_ms,
                    max_ejection_ms: p.max_ejection_ms,
                    max_ejected_percent: p.max_ejected_percent,
                }),
        }),
        protocol: match s.protocol {
            UpstreamProtocol::Http1 => proto::UpstreamProtocol::Http1,
            UpstreamProtocol::Http2 => proto::UpstreamProtocol::Http2,
        } as i32,
        circuit_breaker: s.circuit_breaker.map(|c| proto::CircuitBreaker {
            max_requests: c.max_requests,
            max_pending: c.max_pending,
        }),
        tls: s.tls.as_ref().map(|t| proto::UpstreamTls {
            server_name: t.server_name.clone(),
            verify: t.verify,
            ca: t.ca.clone(),
            client_certificate: t.client_certificate.map(|id| id.to_string()),
        }),
    }
}

/// The spec of a wire upstream (its id is parsed by the caller). Unknown
/// enum values are refused with the field path: a newer control plane's
/// algorithm must not silently become round robin.
pub(crate) fn spec_from_proto(i: usize, u: proto::Upstream) -> Result<UpstreamSpec, ModelError> {
    let unsupported = |field: &str, what: &str, v: i32| {
        ModelError::wire(
            format!("upstreams[{i}].{field}"),
            format!("{what} {v} is not supported by this data plane version"),
        )
    };
    let algorithm = match proto::Algorithm::try_from(u.algorithm) {
        Ok(proto::Algorithm::RoundRobin) => Algorithm::RoundRobin,
        Ok(proto::Algorithm::WeightedRoundRobin) => Algorithm::WeightedRoundRobin,
        Ok(proto::Algorithm::LeastConnections) => Algorithm::LeastConnections,
        Ok(proto::Algorithm::ConsistentHash) => Algorithm::ConsistentHash,
        Ok(proto::Algorithm::Latency) => Algorithm::Latency,
        _ => return Err(unsupported("algorithm", "algorithm", u.algorithm)),
    };
    let protocol = match proto::UpstreamProtocol::try_from(u.protocol) {
        Ok(proto::UpstreamProtocol::Http1) => UpstreamProtocol::Http1,
        Ok(proto::UpstreamProtocol::Http2) => UpstreamProtocol::Http2,
        Err(_) => return Err(unsupported("protocol", "protocol", u.protocol)),
    };
    let hash_on = match u.hash_on.and_then(|h| h.key) {
        None => None,
        Some(proto::hash_on::Key::Header(n)) => Some(HashOn::Header(n)),
        Some(proto::hash_on::Key::Cookie(n)) => Some(HashOn::Cookie(n)),
        Some(proto::hash_on::Key::Ip(_)) => Some(HashOn::Ip),
        Some(proto::hash_on::Key::Consumer(_)) => Some(HashOn::Consumer),
    };
    let health = u.health_checks.unwrap_or_default();
    let mut expected_statuses = Vec::new();
    for (j, c) in health
        .active
        .as_ref()
        .map(|a| a.expected_statuses.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        expected_statuses.push(u16::try_from(*c).map_err(|_| {
            ModelError::wire(
                format!("upstreams[{i}].health_checks.active.expected_statuses[{j}]"),
                "not an HTTP status",
            )
        })?);
    }
    let timeouts = u.timeouts.unwrap_or_default();
    let tls = match u.tls {
        None => None,
        Some(t) => Some(UpstreamTls {
            server_name: t.server_name,
            verify: t.verify,
            ca: t.ca,
            client_certificate: t
                .client_certificate
                .map(|raw| {
                    uuid::Uuid::parse_str(&raw).map_err(|_| {
                        ModelError::wire(
                            format!("upstreams[{i}].tls.client_certificate"),
                            "not a UUID",
                        )
                    })
                })
                .transpose()?,
        }),
    };
    Ok(UpstreamSpec {
        name: u.name,
        algorithm,
        hash_on,
        targets: u
            .targets
            .into_iter()
            .map(|t| Target {
                address: t.address,
                weight: t.weight,
            })
            .collect(),
        health_checks: HealthChecks {
            active: health.active.map(|a| ActiveHealthCheck {
                path: a.path,
                interval_ms: a.interval_ms,
                timeout_ms: a.timeout_ms,
                healthy_threshold: a.healthy_threshold,
                unhealthy_threshold: a.unhealthy_threshold,
                expected_statuses,
            }),
            passive: health.passive.map(|p| PassiveHealthCheck {
                consecutive_failures: p.consecutive_failures,
                ejection_ms: p.ejection_ms,
                max_ejection_ms: p.max_ejection_ms,
                max_ejected_percent: p.max_ejected_percent,
            }),
        },
        timeouts: Timeouts {
            connect_ms: timeouts.connect_ms,
            read_ms: timeouts.read_ms,
            write_ms: timeouts.write_ms,
        },
        circuit_breaker: u.circuit_breaker.map(|c| CircuitBreaker {
            max_requests: c.max_requests,
            max_pending: c.max_pending,
        }),
        retries: u.retries,
        protocol,
        tls,
        tags: u.tags,
    })
}
