//! From an imported declarative document to the snapshot it stands for:
//! the checks that need crypto (certificate PEMs and key match, upstream
//! CA bundles, JWT public keys), the sealing of secrets given in clear, then names to ids
//! (`Document::to_snapshot`).
//!
//! Sealing keeps what is already stored when it is the same secret: a
//! password that verifies against the current hash keeps that hash, so
//! applying the same file twice is a no-op.

use chrono::Utc;
use turnpike_model::declarative::Document;
use turnpike_model::{CredentialKind, Snapshot, ValidationErrors};

use crate::{Error, pki, seal};

/// The snapshot `doc` stands for, given the `current` one and the pepper.
/// Argon2 runs here, under the write lock: imports are rare, and the hash
/// of an unchanged password is reused without hashing.
pub fn target(mut doc: Document, current: &Snapshot, pepper: &str) -> Result<Snapshot, Error> {
    let mut errors = ValidationErrors::default();
    for (i, consumer) in doc.consumers.iter_mut().enumerate() {
        for (j, kind) in consumer.credentials.iter_mut().enumerate() {
            if let CredentialKind::Jwt(jwt) = kind
                && let Some(pem) = &jwt.public_key
                && let Err(msg) = pki::check_jwt_public_key(pem, jwt.algorithm)
            {
                errors.push(format!("consumers[{i}].credentials[{j}].public_key"), msg);
            }
            let current_hash = match &*kind {
                CredentialKind::BasicAuth(b) => current_password_hash(current, &b.username),
                _ => None,
            };
            seal::seal(kind, pepper, current_hash)?;
        }
    }
    for (i, upstream) in doc.upstreams.iter().enumerate() {
        if let Some(ca) = upstream.tls.as_ref().and_then(|t| t.ca.as_deref())
            && let Err(msg) = pki::check_ca(ca)
        {
            errors.push(format!("upstreams[{i}].tls.ca"), msg);
        }
    }
    errors.into_result()?;
    // Ids first, so each certificate of the document is found in the
    // target by id (those without SNIs have no other handle).
    doc.assign_certificate_ids(current);
    let target = doc.to_snapshot(current)?;
    check_certificates(&doc, current, &target)?;
    Ok(target)
}

fn current_password_hash<'a>(current: &'a Snapshot, username: &str) -> Option<&'a str> {
    current.credentials.iter().find_map(|c| match &c.spec.kind {
        CredentialKind::BasicAuth(b) if b.username == username => b.password_hash.as_deref(),
        _ => None,
    })
}

/// Checks the certificates that are new or changed (an unchanged one is
/// left alone, even if it expired since it was stored). A new certificate
/// PEM must be valid now.
fn check_certificates(doc: &Document, current: &Snapshot, target: &Snapshot) -> Result<(), Error> {
    let mut errors = ValidationErrors::default();
    for (i, written) in doc.certificates.iter().enumerate() {
        let Some(cert) = target
            .certificates
            .iter()
            .find(|c| Some(c.id) == written.id)
        else {
            continue;
        };
        let before = current.certificates.iter().find(|c| c.id == cert.id);
        if before.is_some_and(|b| b.spec == cert.spec) {
            continue;
        }
        let Some(key) = cert.spec.key.as_deref() else {
            continue;
        };
        let new_pem = before.is_none_or(|b| b.spec.cert != cert.spec.cert);
        if let Err(e) = pki::check_certificate(&cert.spec.cert, key, new_pem.then(Utc::now)) {
            errors.extend_prefixed(&format!("certificates[{i}]"), e);
        }
    }
    Ok(errors.into_result()?)
}
