//! The X.509 and key checks of what operators upload: certificates (the PEM
//! parses, the key matches the certificate, it is valid now), the CA
//! bundles of upstream TLS, and JWT public keys (a `PUBLIC KEY` PEM of the
//! algorithm's family and curve).
//!
//! PEM comes apart with `rustls-pki-types`, X.509 with `x509-parser`, and
//! the key match is rustls' `CertifiedKey::keys_match` on the ring provider
//! (the one the data plane's TLS will use), so nothing here parses by hand.

use chrono::{DateTime, Utc};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use turnpike_model::{JwtAlgorithm, ValidationErrors};
use x509_parser::oid_registry::{OID_EC_P256, OID_NIST_EC_P384, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// What the admin API shows of a certificate besides its PEM.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// Checks the CA bundle an upstream's TLS trusts: PEM certificates that
/// all parse as X.509.
pub fn check_ca(pem: &str) -> Result<(), String> {
    chain(pem).map(|_| ())
}

/// Parses the chain's PEM and returns the leaf's details; errors on `cert`.
pub fn certificate_info(cert_pem: &str) -> Result<CertInfo, String> {
    let chain = chain(cert_pem)?;
    info(&chain[0])
}

fn chain(cert_pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    for (i, der) in chain.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok(([], _)) => {}
            _ => {
                return Err(format!(
                    "certificate {} of the chain is not valid X.509",
                    i + 1
                ));
            }
        }
    }
    Ok(chain)
}

fn info(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let time =
        |t: i64| DateTime::from_timestamp(t, 0).ok_or_else(|| "validity out of range".to_owned());
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: time(cert.validity().not_before.timestamp())?,
        not_after: time(cert.validity().not_after.timestamp())?,
    })
}

/// Checks a certificate chain and its private key: both parse, the key is
/// of a type TLS can use and matches the leaf certificate. When `now` is
/// given, the leaf must also be valid at that time. Errors name `cert` or
/// `key`.
pub fn check_certificate(
    cert_pem: &str,
    key_pem: &str,
    now: Option<DateTime<Utc>>,
) -> Result<CertInfo, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let chain = chain(cert_pem).map_err(|m| errors.push("cert", m));
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| errors.push("key", "not a PEM private key (PKCS#8, PKCS#1 or SEC1)"))
        .and_then(|k| {
            any_supported_type(&k)
                .map_err(|_| errors.push("key", "not an RSA, ECDSA or Ed25519 key TLS can use"))
        });
    let (Ok(chain), Ok(key)) = (chain, key) else {
        return Err(errors);
    };
    let leaf = match info(&chain[0]) {
        Ok(i) => i,
        Err(m) => {
            errors.push("cert", m);
            return Err(errors);
        }
    };
    if CertifiedKey::new(chain, key).keys_match().is_err() {
        errors.push("key", "does not match the certificate's public key");
    }
    if let Some(now) = now {
        if leaf.not_after <= now {
            errors.push(
                "cert",
                format!("expired on {}", leaf.not_after.to_rfc3339()),
            );
        } else if leaf.not_before > now {
            errors.push(
                "cert",
                format!("not valid before {}", leaf.not_before.to_rfc3339()),
            );
        }
    }
    errors.into_result().map(|()| leaf)
}

/// Checks a JWT credential's public key: a `PUBLIC KEY` (SPKI) PEM, RSA for
/// RS* and PS256, the algorithm's curve for ES* (P-256 for ES256, P-384 for
/// ES384), Ed25519 for EdDSA.
pub fn check_jwt_public_key(pem: &str, algorithm: JwtAlgorithm) -> Result<(), String> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "not a PEM public key (-----BEGIN PUBLIC KEY-----)".to_owned())?;
    let spki = match SubjectPublicKeyInfo::from_der(&der) {
        Ok(([], spki)) => spki,
        _ => return Err("not a valid SubjectPublicKeyInfo".into()),
    };
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let fits = match (algorithm, spki.parsed()) {
        (
            JwtAlgorithm::RS256 | JwtAlgorithm::RS384 | JwtAlgorithm::RS512 | JwtAlgorithm::PS256,
            Ok(PublicKey::RSA(_)),
        ) => true,
        (JwtAlgorithm::ES256, Ok(PublicKey::EC(_))) => curve == Some(OID_EC_P256),
        (JwtAlgorithm::ES384, Ok(PublicKey::EC(_))) => curve == Some(OID_NIST_EC_P384),
        (JwtAlgorithm::EdDSA, _) => spki.algorithm.algorithm == OID_SIG_ED25519,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "is not a key for {} (RS* and PS256 need RSA, ES256 P-256, ES384 P-384, EdDSA Ed25519)",
            algorithm.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_public_keys_match_their_algorithm() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .public_key_pem();
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .public_key_pem();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .public_key_pem();
        assert!(check_jwt_public_key(&p256, JwtAlgorithm::ES256).is_ok());
        assert!(check_jwt_public_key(&p384, JwtAlgorithm::ES384).is_ok());
        assert!(check_jwt_public_key(&ed, JwtAlgorithm::EdDSA).is_ok());
        assert!(check_jwt_public_key(&p256, JwtAlgorithm::ES384).is_err());
        assert!(check_jwt_public_key(&p256, JwtAlgorithm::EdDSA).is_err());
        assert!(check_jwt_public_key(&ed, JwtAlgorithm::ES256).is_err());
        assert!(check_jwt_public_key(&ed, JwtAlgorithm::PS256).is_err());
        assert!(check_jwt_public_key(&p256, JwtAlgorithm::PS256).is_err());
    }
}
