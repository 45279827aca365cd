//! How an upstream spreads requests over its targets: the algorithm, what
//! consistent hashing hashes on, and how requests reach a target (protocol,
//! TLS, retries).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationErrors;

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Each target in turn, ignoring weights.
    #[default]
    RoundRobin,
    /// Smooth weighted round robin (as nginx): shares follow the weights
    /// and no target gets a burst.
    WeightedRoundRobin,
    /// The target with the fewest requests in flight per unit of weight.
    LeastConnections,
    /// A Maglev table over `hash_on`: one key keeps its target, and
    /// removing one of N targets moves about 1/N of the keys.
    ConsistentHash,
    /// Power of two choices over a peak-EWMA of response time.
    Latency,
}

/// What `consistent_hash` hashes: `{"header": "x-user"}`,
/// `{"cookie": "sid"}`, `"ip"` (the client address) or `"consumer"` (the
/// authenticated consumer). Requests without the key are spread round
/// robin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    Header(String),
    Cookie(String),
    Ip,
    Consumer,
}

/// The protocol spoken to the targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// HTTP/2: over TLS when `tls` is set (ALPN h2), else cleartext with
    /// prior knowledge (h2c). Needed for gRPC upstreams.
    Http2,
}

/// TLS to the targets. Present means on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Name sent as SNI and checked against the target's certificate;
    /// defaults to the target's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 253, example = "users.internal")
    )]
    pub server_name: Option<String>,
    /// Check the target's certificate chain and name. Turning this off is
    /// for tests only: the traffic can then be intercepted.
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM certificates trusted for this upstream instead of the bundled
    /// public roots (Mozilla's, from `webpki-roots`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 65536))]
    pub ca: Option<String>,
    /// Id of a certificate (`/certificates`) whose chain and key are
    /// presented to targets that ask for a client certificate (mutual
    /// TLS). Referring to it, rather than holding a key here, keeps the key
    /// write-only and in one place, as Kong does. The certificate needs no
    /// SNIs: one without is never served by the proxy's TLS listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<Uuid>,
}

fn yes() -> bool {
    true
}

pub const MAX_RETRIES: u32 = 10;
pub const MAX_CA_BYTES: usize = 64 * 1024;

/// Checks what the balancing fields need from each other; address and
/// PEM parsing happen elsewhere (`ca` is parsed by the control plane), and
/// so does the `client_certificate` reference (it needs the other
/// entities: `Snapshot::validate`, the control plane, the document).
pub(crate) fn validate(
    algorithm: Algorithm,
    hash_on: Option<&HashOn>,
    retries: u32,
    tls: Option<&UpstreamTls>,
    errors: &mut ValidationErrors,
) {
    match (algorithm, hash_on) {
        (Algorithm::ConsistentHash, None) => {
            errors.push("hash_on", "required when algorithm is consistent_hash");
        }
        (Algorithm::ConsistentHash, Some(HashOn::Header(h))) => {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                errors.push("hash_on.header", "not a valid header name");
            }
        }
        (Algorithm::ConsistentHash, Some(HashOn::Cookie(c))) => {
            let token = |b: u8| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b);
            if c.is_empty() || c.len() > 256 || !c.bytes().all(token) {
                errors.push("hash_on.cookie", "not a valid cookie name");
            }
        }
        (Algorithm::ConsistentHash, Some(_)) => {}
        (_, Some(_)) => errors.push("hash_on", "only used with algorithm consistent_hash"),
        (_, None) => {}
    }
    if retries > MAX_RETRIES {
        errors.push("retries", format!("must be 0 to {MAX_RETRIES}"));
    }
    if let Some(tls) = tls {
        if let Some(name) = &tls.server_name
            && rustls_name_ok(name).is_err()
        {
            errors.push("tls.server_name", "must be a DNS name or IP address");
        }
        if let Some(ca) = &tls.ca
            && (ca.len() > MAX_CA_BYTES || !ca.contains("-----BEGIN CERTIFICATE-----"))
        {
            errors.push(
                "tls.ca",
                format!("PEM certificates, at most {MAX_CA_BYTES} bytes"),
            );
        }
    }
}

/// A server name as TLS takes it: an IP address or a DNS name of
/// letters, digits, `-` and `.`.
fn rustls_name_ok(name: &str) -> Result<(), ()> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok { Ok(()) } else { Err(()) }
}
