//! The certificate table the TLS listener serves from: the snapshot's
//! certificates parsed into rustls `CertifiedKey`s (ring provider) and
//! indexed by SNI. Built off the request path with the rest of
//! [`Compiled`](super::Compiled), so it is swapped with the config in one
//! `ArcSwap::store`; a handshake reads whichever version is current.
//!
//! Which certificate a handshake gets, from its SNI (lowercased, a trailing
//! dot ignored):
//! 1. a certificate listing that exact name;
//! 2. else one listing `*.` + the name without its first label (a wildcard
//!    covers exactly one label, as in X.509: `*.example.com` serves
//!    `a.example.com`, not `example.com` nor `a.b.example.com`);
//! 3. else none: the handshake fails. No SNI (a client dialing an IP)
//!    finds none either. There is no default certificate, as in APISIX;
//!    Kong's fallback is a self-signed certificate no client trusts, which
//!    fails the same way, only later.
//!
//! A certificate without SNIs is in no map, so it is never served: it is
//! an upstream client certificate only (`compile::client_cert`). It is
//! still loaded here, so a broken one refuses the config all the same.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use turnpike_model::Certificate;

use crate::Error;

/// The compiled certificates of one config version, by SNI.
#[derive(Default)]
pub struct CompiledCertificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is kept under `example.com`: a lookup takes one
    /// label off the SNI and looks for the rest.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    count: usize,
}

impl CompiledCertificates {
    /// Parses every certificate (or takes it from `keys` when its PEM is
    /// unchanged). A chain or key that does not load refuses the whole
    /// config: the control plane checked it, but a data plane does not
    /// serve what it cannot verify itself.
    pub fn build(certificates: &[Certificate], keys: &KeyCache) -> Result<Self, Error> {
        let mut table = CompiledCertificates {
            count: certificates.len(),
            ..Default::default()
        };
        for c in certificates {
            let refused = |what: String| {
                Error::Compile(format!("certificate {} ({}): {what}", c.id, c.spec.label()))
            };
            let key_pem = c
                .spec
                .key
                .as_deref()
                .ok_or_else(|| refused("the snapshot does not carry its key".into()))?;
            let key = keys.get_or_load(&c.spec.cert, key_pem).map_err(refused)?;
            for sni in &c.spec.snis {
                let sni = sni.trim_end_matches('.').to_ascii_lowercase();
                let (map, name) = match sni.strip_prefix("*.") {
                    Some(suffix) => (&mut table.wildcard, suffix.to_owned()),
                    None => (&mut table.exact, sni.clone()),
                };
                if map.insert(name, key.clone()).is_some() {
                    return Err(refused(format!(
                        "SNI {sni} is listed by another certificate too"
                    )));
                }
            }
        }
        Ok(table)
    }

    /// The certificate for a handshake's SNI (see the module docs).
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let sni = sni?;
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        // rustls hands the SNI over lowercased already; this is for other callers.
        let sni = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(sni.to_ascii_lowercase())
        } else {
            Cow::Borrowed(sni)
        };
        if let Some(key) = self.exact.get(sni.as_ref()) {
            return Some(key.clone());
        }
        let (label, parent) = sni.split_once('.')?;
        if label.is_empty() || label == "*" {
            return None;
        }
        self.wildcard.get(parent).cloned()
    }

    /// How many certificates the config holds (for `/status`).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Parsed keys by SHA-256 of their certificate and key PEM, kept while a
/// compiled config uses them: a config push that leaves a certificate
/// alone reuses its `CertifiedKey` instead of parsing the PEM and loading
/// the key again (an RSA key load is not free, and there may be many).
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<[u8; 32], Weak<CertifiedKey>>>,
}

impl KeyCache {
    fn get_or_load(&self, cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, String> {
        let mut digest = Sha256::new();
        // The length first, so no (cert, key) split of the same bytes collides.
        digest.update((cert_pem.len() as u64).to_le_bytes());
        digest.update(cert_pem.as_bytes());
        digest.update(key_pem.as_bytes());
        let id: [u8; 32] = digest.finalize().into();
        if let Some(key) = self.lookup(&id) {
            return Ok(key);
        }
        // Parsed outside the lock: loading is the slow part.
        let key = Arc::new(load(cert_pem, key_pem)?);
        let mut keys = self.keys.lock().unwrap();
        keys.retain(|_, k| k.strong_count() > 0);
        keys.insert(id, Arc::downgrade(&key));
        Ok(key)
    }

    fn lookup(&self, id: &[u8; 32]) -> Option<Arc<CertifiedKey>> {
        self.keys.lock().unwrap().get(id).and_then(Weak::upgrade)
    }
}

/// Parses a PEM chain and key with the ring provider and checks that the
/// key belongs to the leaf. Validity dates are not checked: an expired
/// certificate must not block every later config push; clients judge it.
fn load(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cert is not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("cert holds no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("key is not a PEM private key: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| format!("key does not load or does not match the certificate: {e}"))
}

/// The one crypto provider of the data plane's TLS (also used by
/// `listener::tls`): ring, named explicitly rather than taken from the
/// process default, so a library user gets the same behaviour as the binary.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
pub(crate) mod tests {
    use turnpike_model::CertificateSpec;
    use uuid::Uuid;

    use super::*;

    /// A self-signed certificate for `snis` (with the SANs it names).
    pub(crate) fn certificate(snis: &[&str]) -> Certificate {
        let sans: Vec<String> = snis.iter().map(|s| s.replace("*.", "wild.")).collect();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(sans).unwrap();
        Certificate {
            id: Uuid::now_v7(),
            spec: CertificateSpec {
                cert: cert.pem(),
                key: Some(signing_key.serialize_pem()),
                key_sha256: None,
                snis: snis.iter().map(|s| s.to_string()).collect(),
                tags: Vec::new(),
            },
        }
    }

    /// Which of `certs` the table answered with (by leaf DER).
    fn which(
        table: &CompiledCertificates,
        sni: Option<&str>,
        certs: &[Certificate],
    ) -> Option<usize> {
        let key = table.resolve(sni)?;
        certs.iter().position(|c| {
            CertificateDer::from_pem_slice(c.spec.cert.as_bytes()).unwrap() == key.cert[0]
        })
    }

    #[test]
    fn exact_then_one_label_wildcard_then_nothing() {
        let certs = [
            certificate(&["a.example.test"]),
            certificate(&["*.example.test", "other.test"]),
            certificate(&["*.b.example.test"]),
        ];
        let table = CompiledCertificates::build(&certs, &KeyCache::default()).unwrap();
        assert_eq!(table.len(), 3);
        // Exact beats the wildcard that also covers the name.
        assert_eq!(which(&table, Some("a.example.test"), &certs), Some(0));
        assert_eq!(which(&table, Some("x.example.test"), &certs), Some(1));
        assert_eq!(which(&table, Some("other.test"), &certs), Some(1));
        assert_eq!(which(&table, Some("x.b.example.test"), &certs), Some(2));
        // One label only: neither the bare parent nor two labels deep.
        assert_eq!(which(&table, Some("example.test"), &certs), None);
        assert_eq!(which(&table, Some("y.x.b.example.test"), &certs), None);
        assert_eq!(
            which(&table, Some("b.example.test"), &certs),
            Some(1),
            "b is one label under *.example.test"
        );
        // Case and a trailing dot do not matter.
        assert_eq!(which(&table, Some("A.Example.TEST."), &certs), Some(0));
        assert_eq!(which(&table, Some("X.B.EXAMPLE.TEST"), &certs), Some(2));
        // No default: an unknown name or no SNI gets nothing.
        assert_eq!(which(&table, Some("unknown.test"), &certs), None);
        assert_eq!(which(&table, None, &certs), None);
        assert_eq!(which(&table, Some("*.example.test"), &certs), None);
        assert!(
            CompiledCertificates::default()
                .resolve(Some("a.example.test"))
                .is_none()
        );
    }

    #[test]
    fn a_certificate_without_snis_is_never_served() {
        let certs = [certificate(&[]), certificate(&["a.example.test"])];
        let table = CompiledCertificates::build(&certs, &KeyCache::default()).unwrap();
        assert_eq!(table.len(), 2, "loaded and counted");
        assert_eq!(which(&table, Some("a.example.test"), &certs), Some(1));
        // Not as a default either: no SNI, or one nothing lists, gets none.
        for sni in [None, Some("unknown.test"), Some("localhost"), Some("")] {
            assert_eq!(which(&table, sni, &certs), None, "{sni:?}");
        }
        let alone = CompiledCertificates::build(&certs[..1], &KeyCache::default()).unwrap();
        assert_eq!(which(&alone, None, &certs), None);
        assert_eq!(which(&alone, Some("x.test"), &certs), None);
    }

    #[test]
    fn keys_are_reused_while_the_pem_is_unchanged() {
        let keys = KeyCache::default();
        let a = certificate(&["a.example.test"]);
        let first = CompiledCertificates::build(std::slice::from_ref(&a), &keys).unwrap();
        let second = CompiledCertificates::build(std::slice::from_ref(&a), &keys).unwrap();
        let key = |t: &CompiledCertificates| t.resolve(Some("a.example.test")).unwrap();
        assert!(
            Arc::ptr_eq(&key(&first), &key(&second)),
            "same PEM, same parsed key"
        );

        let mut renewed = certificate(&["a.example.test"]);
        renewed.id = a.id;
        let third = CompiledCertificates::build(&[renewed], &keys).unwrap();
        assert!(!Arc::ptr_eq(&key(&first), &key(&third)), "new PEM, new key");

        // Nothing holds the first key any more: it is not kept.
        drop((first, second));
        let _fourth = CompiledCertificates::build(&[certificate(&["c.test"])], &keys).unwrap();
        assert_eq!(keys.keys.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_certificate_that_does_not_load_refuses_the_config() {
        let refused = |c: Certificate| match CompiledCertificates::build(
            &[certificate(&["ok.test"]), c],
            &KeyCache::default(),
        ) {
            Err(Error::Compile(m)) => m,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a broken certificate was accepted"),
        };
        let mut other_key = certificate(&["x.test"]);
        other_key.spec.key = certificate(&["y.test"]).spec.key;
        let m = refused(other_key);
        assert!(
            m.contains("(x.test)") && m.contains("does not match"),
            "{m}"
        );

        let mut garbage = certificate(&["x.test"]);
        garbage.spec.cert =
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into();
        assert!(refused(garbage).contains("cert"));

        let mut no_block = certificate(&["x.test"]);
        no_block.spec.cert = "hello".into();
        assert!(refused(no_block).contains("no CERTIFICATE block"));

        let mut bad_key = certificate(&["x.test"]);
        bad_key.spec.key =
            Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into());
        assert!(refused(bad_key).contains("key"));

        let mut keyless = certificate(&["x.test"]);
        keyless.spec.key = None;
        assert!(refused(keyless).contains("does not carry its key"));

        assert!(refused(certificate(&["ok.test"])).contains("another certificate"));
    }
}
