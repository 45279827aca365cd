//! Sealing of consumer secrets before they are stored: a key-auth key
//! becomes an HMAC-SHA256 digest keyed with the cluster's pepper, a
//! basic-auth password an Argon2id PHC string. The clear values are dropped
//! right after; only a create response ever shows a key, once.
//!
//! Why a pepper: keys are high-entropy, but an operator may also set short
//! ones; with the pepper (kept in `cluster_settings`, not beside the
//! digests) a leaked credentials table alone does not allow guessing them.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use turnpike_model::CredentialKind;

use crate::{Error, secret};

/// `cluster_settings` key of the key-auth pepper (hex, 256 bits).
pub const PEPPER_SETTING: &str = "key_auth_pepper";

/// A new pepper: 256 random bits, hex.
pub fn new_pepper() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// HMAC-SHA256 of a key-auth key, hex.
pub fn key_digest(pepper: &str, key: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(pepper.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What operators see of a key: at most 8 characters and at most a quarter
/// of it (`tpk_ab12` for a generated key).
pub fn key_prefix(key: &str) -> String {
    key.chars().take((key.len() / 4).min(8)).collect()
}

/// Argon2id with the crate's defaults (OWASP's m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Seals a validated credential in place: generates a key-auth key when
/// none was given, digests it, hashes a password. A basic-auth password
/// that `current_hash` already verifies keeps that hash, so re-importing
/// the same file changes nothing. Returns the clear key of a key-auth
/// credential, for the create response. Slow (Argon2): run it off the
/// async threads.
pub fn seal(
    kind: &mut CredentialKind,
    pepper: &str,
    current_hash: Option<&str>,
) -> Result<Option<String>, Error> {
    match kind {
        CredentialKind::KeyAuth(k) => {
            if k.key_digest.is_some() {
                return Ok(None);
            }
            let key = k.key.take().unwrap_or_else(|| secret::generate("tpk_"));
            k.key_digest = Some(key_digest(pepper, &key));
            k.key_prefix = Some(key_prefix(&key));
            Ok(Some(key))
        }
        CredentialKind::BasicAuth(b) => {
            if let Some(password) = b.password.take() {
                b.password_hash = Some(match current_hash {
                    Some(h) if verify_password(&password, h) => h.to_owned(),
                    _ => hash_password(&password)?,
                });
            }
            Ok(None)
        }
        CredentialKind::Jwt(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use turnpike_model::credential::{BasicAuth, KeyAuth};

    use super::*;

    #[test]
    fn keys_are_generated_digested_and_dropped() {
        let pepper = new_pepper();
        let mut kind = CredentialKind::KeyAuth(KeyAuth::default());
        let key = seal(&mut kind, &pepper, None).unwrap().unwrap();
        assert!(
            key.starts_with("tpk_") && key.len() == 68,
            "256 random bits"
        );
        let CredentialKind::KeyAuth(k) = &kind else {
            unreachable!()
        };
        assert_eq!(k.key, None);
        assert_eq!(
            k.key_digest.as_deref(),
            Some(key_digest(&pepper, &key).as_str())
        );
        assert_eq!(k.key_prefix.as_deref(), Some(&key[..8]));
        assert_ne!(key_digest(&new_pepper(), &key), key_digest(&pepper, &key));
        assert_eq!(key_prefix("alice-secret-key"), "alic");
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_reused_when_they_verify() {
        let mut kind = CredentialKind::BasicAuth(BasicAuth {
            username: "alice".into(),
            password: Some("correct horse".into()),
            password_hash: None,
        });
        seal(&mut kind, "p", None).unwrap();
        let CredentialKind::BasicAuth(b) = &kind else {
            unreachable!()
        };
        let hash = b.password_hash.clone().unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(b.password.is_none());
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));

        let mut again = CredentialKind::BasicAuth(BasicAuth {
            username: "alice".into(),
            password: Some("correct horse".into()),
            password_hash: None,
        });
        seal(&mut again, "p", Some(&hash)).unwrap();
        let CredentialKind::BasicAuth(b) = &again else {
            unreachable!()
        };
        assert_eq!(b.password_hash.as_deref(), Some(hash.as_str()));
    }
}
