//! Turnpike's domain config: the entities operators write (`*Spec`), their
//! validation with field paths, the immutable [`Snapshot`] a version stands
//! for, its canonical hash, and conversion to and from the wire types of
//! `turnpike-proto`; and the route matcher ([`router`]) both planes run, so
//! the control plane can tell which route a request would hit.
//!
//! No I/O happens here: the control plane validates with this crate before it
//! stores anything, and the data plane validates again before it compiles.

pub mod backoff;
pub mod certificate;
pub mod consumer;
pub mod credential;
pub mod declarative;
pub mod delta;
pub mod diff;
pub mod error;
pub mod pattern;
pub mod plugin;
pub mod route;
pub mod router;
pub mod snapshot;
pub mod strict;
pub mod upstream;
mod wire;
mod wire_policy;
mod wire_upstream;

pub use certificate::{Certificate, CertificateSpec};
pub use consumer::{Consumer, ConsumerSpec};
pub use credential::{Credential, CredentialKind, CredentialSpec, JwtAlgorithm};
pub use declarative::Document;
pub use delta::Delta;
pub use diff::{ConfigDiff, FieldChange};
pub use error::{FieldError, ModelError, ValidationErrors};
pub use pattern::{HostPattern, PathPattern};
pub use plugin::{Plugin, PluginSpec};
pub use route::{Route, RouteSpec};
pub use snapshot::Snapshot;
pub use upstream::{
    ActiveHealthCheck, Algorithm, CircuitBreaker, HashOn, HealthChecks, PassiveHealthCheck, Target,
    Timeouts, Upstream, UpstreamProtocol, UpstreamSpec, UpstreamTls,
};

/// Checks shared by every named entity: 1 to 128 characters from the set
/// Kong and APISIX users already know (`A-Z a-z 0-9 . _ ~ -`).
pub fn check_name(field: &str, name: &str, errors: &mut ValidationErrors) {
    if name.is_empty() || name.len() > 128 {
        errors.push(field, "must be 1 to 128 characters long");
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
    {
        errors.push(
            field,
            "may only contain letters, digits, '.', '_', '~' and '-'",
        );
    } else if uuid::Uuid::parse_str(name).is_ok() {
        // Names and ids share one lookup path in the admin API.
        errors.push(field, "must not be a UUID");
    }
}

/// Tags filter lists (`?tags=a,b`), so they must not contain commas.
pub(crate) fn check_tags(tags: &[String], errors: &mut ValidationErrors) {
    if tags.len() > 32 {
        errors.push("tags", "at most 32 tags");
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.is_empty() || tag.len() > 128 {
            errors.push(format!("tags[{i}]"), "must be 1 to 128 characters long");
        } else if tag
            .chars()
            .any(|c| c == ',' || c.is_control() || c.is_whitespace())
        {
            errors.push(
                format!("tags[{i}]"),
                "must not contain commas, spaces or control characters",
            );
        }
    }
}

#[cfg(test)]
mod policy_tests;

#[cfg(test)]
mod client_cert_tests;
