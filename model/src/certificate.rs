//! Certificates: a PEM chain and its private key, served for the SNIs it
//! lists, and presented to upstreams whose `tls.client_certificate` names
//! it. One without SNIs is only such a client certificate: the proxy never
//! serves it. The key is stored and distributed as given (data planes
//! terminate TLS with it) but never shown: exports and diffs carry
//! `key_sha256` instead ([`CertificateSpec::redact`]).
//!
//! What needs X.509 and crypto (the PEM parses, the key matches the
//! certificate, the validity period) is checked by the control plane before
//! it stores a certificate; here are the rules that need neither.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::credential::sha256_hex;
use crate::{HostPattern, ValidationErrors, check_tags};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// PEM: the certificate first, then its intermediates.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// SHA-256 (hex) of `key`: shown instead of the key; given instead of
    /// it, it stands for the current key with that digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    /// Host names (or `*.example.com`) this certificate is served for;
    /// unique across certificates. Empty (or absent): never served to
    /// clients, for a certificate used only as an upstream's client
    /// certificate.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100, example = json!(["api.example.com"])))]
    pub snis: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

pub const MAX_SNIS: usize = 100;
pub const MAX_PEM_BYTES: usize = 64 * 1024;

impl CertificateSpec {
    /// Lowercases SNIs and drops a trailing dot, as for route hosts.
    pub fn normalize(&mut self) {
        for s in &mut self.snis {
            s.make_ascii_lowercase();
            if s.ends_with('.') {
                s.pop();
            }
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.cert.trim().is_empty() || self.cert.len() > MAX_PEM_BYTES {
            errors.push("cert", "must be a PEM certificate chain of at most 64 KiB");
        }
        match (&self.key, &self.key_sha256) {
            (Some(_), Some(_)) => errors.push("key", "give either key or key_sha256"),
            (None, None) => errors.push("key", "is required"),
            (Some(k), None) if k.trim().is_empty() || k.len() > MAX_PEM_BYTES => {
                errors.push("key", "must be a PEM private key of at most 64 KiB");
            }
            (None, Some(d)) if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                errors.push("key_sha256", "must be 64 hex digits");
            }
            _ => {}
        }
        if self.snis.len() > MAX_SNIS {
            errors.push("snis", format!("at most {MAX_SNIS} host names"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.snis.iter().enumerate() {
            if let Err(msg) = HostPattern::parse(s) {
                errors.push(format!("snis[{i}]"), msg);
            } else if !seen.insert(s.as_str()) {
                errors.push(format!("snis[{i}]"), "duplicate SNI");
            }
        }
        check_tags(&self.tags, &mut errors);
        errors.into_result()
    }

    /// The name diffs and the audit log use: the first SNI (empty for a
    /// certificate without SNIs; those are told apart by id).
    pub fn label(&self) -> &str {
        self.snis.first().map(String::as_str).unwrap_or("")
    }

    /// Replaces the key by its SHA-256, for exports, diffs and reads.
    pub fn redact(&mut self) {
        if let Some(key) = self.key.take() {
            self.key_sha256 = Some(sha256_hex(key.as_bytes()));
        }
    }
}

/// A certificate as stored and distributed (with its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: CertificateSpec,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: serde_json::Value) -> CertificateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rules_and_redaction() {
        let mut s =
            spec(json!({"cert": "C", "key": "K", "snis": ["API.example.com.", "*.example.com"]}));
        s.normalize();
        assert_eq!(s.snis, ["api.example.com", "*.example.com"]);
        assert!(s.validate().is_ok());
        assert_eq!(s.label(), "api.example.com");
        s.redact();
        assert_eq!(s.key, None);
        assert_eq!(s.key_sha256.as_deref(), Some(sha256_hex(b"K").as_str()));
        assert!(s.validate().is_ok(), "a redacted spec is valid input");

        let bad = spec(json!({"cert": "", "snis": ["a.com", "a.com", "bad host", "*.*.x"]}));
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["cert", "key", "snis[1]", "snis[2]", "snis[3]"]);
        let many: Vec<String> = (0..=MAX_SNIS)
            .map(|i| format!("h{i}.example.com"))
            .collect();
        let too_many = spec(json!({"cert": "C", "key": "K", "snis": many}));
        assert_eq!(too_many.validate().unwrap_err().0[0].field, "snis");
    }

    #[test]
    fn a_client_certificate_needs_no_snis() {
        // Empty or absent: a certificate only upstreams present.
        let none = spec(json!({"cert": "C", "key": "K", "snis": []}));
        assert_eq!(none.validate(), Ok(()));
        let absent = spec(json!({"cert": "C", "key": "K"}));
        assert_eq!(absent, none);
        assert_eq!(absent.label(), "");
    }
}
