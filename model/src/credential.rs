//! Credentials: how a consumer proves who it is (`key-auth`, `basic-auth`,
//! `jwt`).
//!
//! One type serves input and storage. Input may carry a secret in clear
//! (`key`, `password`); the control plane seals it before storing (an
//! HMAC-SHA256 digest of the key, an Argon2id hash of the password), so a
//! stored or distributed credential only holds the sealed form
//! ([`CredentialSpec::check_sealed`]). JWT HS* secrets are stored as given:
//! data planes verify signatures with them. Exports show them as
//! `secret_sha256` ([`CredentialSpec::redact`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ValidationErrors;

/// A credential of one consumer. `consumer` holds the consumer's id once
/// stored, like a route's `upstream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSpec {
    pub consumer: String,
    #[serde(flatten)]
    pub kind: CredentialKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CredentialKind {
    KeyAuth(KeyAuth),
    BasicAuth(BasicAuth),
    Jwt(JwtCredential),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuth {
    /// The key in clear: input only, never stored. Generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// HMAC-SHA256 (hex) of the key, keyed with the cluster's pepper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_digest: Option<String>,
    /// The key's first characters, so operators can tell keys apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    /// In clear: input only, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Argon2id PHC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtCredential {
    /// The `iss` claim or `kid` header this credential answers to.
    pub key: String,
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// HS* shared secret (at least 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// SHA-256 (hex) of the secret, in exports; on import it stands for the
    /// current credential secret with that digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// RS*/PS256/ES*/EdDSA public key, PEM (`-----BEGIN PUBLIC KEY-----`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    ES256,
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 10] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::HS384,
        JwtAlgorithm::HS512,
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
        JwtAlgorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<JwtAlgorithm> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// HMAC algorithms verify with a shared secret, the others with a
    /// public key.
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

pub const MIN_KEY_LEN: usize = 16;
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MIN_HS_SECRET_BYTES: usize = 32;
const MAX_SECRET_LEN: usize = 4096;
const MAX_PEM_LEN: usize = 16 * 1024;

impl CredentialKind {
    /// Parses a request body or document entry. The `type` is read first so
    /// that errors name fields of that type (`password`, not `.`).
    pub fn from_value(value: Value) -> Result<CredentialKind, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Value::Object(mut map) = value else {
            errors.push("", "must be an object");
            return Err(errors);
        };
        let parsed = match map.remove("type") {
            Some(Value::String(t)) => match t.as_str() {
                "key-auth" => parse(map).map(CredentialKind::KeyAuth),
                "basic-auth" => parse(map).map(CredentialKind::BasicAuth),
                "jwt" => parse(map).map(CredentialKind::Jwt),
                _ => Err(("type".into(), "must be key-auth, basic-auth or jwt".into())),
            },
            None => Err((
                "type".into(),
                "is required: key-auth, basic-auth or jwt".into(),
            )),
            Some(_) => Err(("type".into(), "must be a string".into())),
        };
        parsed.map_err(|(field, message)| {
            errors.push(field, message);
            errors
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialKind::KeyAuth(_) => "key-auth",
            CredentialKind::BasicAuth(_) => "basic-auth",
            CredentialKind::Jwt(_) => "jwt",
        }
    }

    /// What a data plane finds the credential by, unique per type: the key
    /// digest, the basic-auth username, the JWT key. `None` for a key-auth
    /// credential not sealed yet.
    pub fn lookup(&self) -> Option<&str> {
        match self {
            CredentialKind::KeyAuth(k) => k.key_digest.as_deref(),
            CredentialKind::BasicAuth(b) => Some(&b.username),
            CredentialKind::Jwt(j) => Some(&j.key),
        }
    }

    /// A short label for diffs and logs; never a secret.
    pub fn label(&self) -> &str {
        match self {
            CredentialKind::KeyAuth(k) => k.key_prefix.as_deref().unwrap_or("key-auth"),
            CredentialKind::BasicAuth(b) => &b.username,
            CredentialKind::Jwt(j) => &j.key,
        }
    }

    /// Checks the fields as written (clear or sealed secrets both accepted).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        match self {
            CredentialKind::KeyAuth(k) => validate_key_auth(k, &mut errors),
            CredentialKind::BasicAuth(b) => validate_basic_auth(b, &mut errors),
            CredentialKind::Jwt(j) => validate_jwt(j, &mut errors),
        }
        errors.into_result()
    }

    /// Checks that no secret is in clear and every sealed field is there:
    /// the form that may be stored and distributed.
    pub fn check_sealed(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        match self {
            CredentialKind::KeyAuth(k) => {
                if k.key.is_some() || k.key_digest.is_none() {
                    errors.push(
                        "key_digest",
                        "a stored key-auth credential holds only the digest",
                    );
                }
            }
            CredentialKind::BasicAuth(b) => {
                if b.password.is_some() || b.password_hash.is_none() {
                    errors.push(
                        "password_hash",
                        "a stored basic-auth credential holds only the hash",
                    );
                }
            }
            CredentialKind::Jwt(j) => {
                if j.secret_sha256.is_some() {
                    errors.push("secret", "a stored jwt credential holds the secret itself");
                }
            }
        }
        errors.into_result()
    }

    /// Replaces what is stored in clear (a JWT secret) by its SHA-256, for
    /// exports and diffs.
    pub fn redact(&mut self) {
        if let CredentialKind::Jwt(j) = self
            && let Some(secret) = j.secret.take()
        {
            j.secret_sha256 = Some(sha256_hex(secret.as_bytes()));
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    map: serde_json::Map<String, Value>,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        (field, e.into_inner().to_string())
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Keys travel in headers and query strings: visible ASCII only.
fn is_visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn validate_key_auth(k: &KeyAuth, errors: &mut ValidationErrors) {
    match (&k.key, &k.key_digest) {
        (Some(_), Some(_)) => errors.push("key", "give either key or key_digest, not both"),
        (Some(key), None) => {
            if key.len() < MIN_KEY_LEN || key.len() > 1024 {
                errors.push("key", format!("must be {MIN_KEY_LEN} to 1024 characters"));
            } else if !is_visible_ascii(key) {
                errors.push(
                    "key",
                    "may only contain visible ASCII characters (no spaces)",
                );
            }
            if k.key_prefix.is_some() {
                errors.push("key_prefix", "is derived from the key; leave it out");
            }
        }
        (None, Some(d)) if !is_hex_digest(d) => {
            errors.push("key_digest", "must be 64 lowercase hex digits");
        }
        _ => {}
    }
    if let Some(p) = &k.key_prefix
        && (p.is_empty() || p.len() > 16 || !is_visible_ascii(p))
    {
        errors.push("key_prefix", "must be 1 to 16 visible ASCII characters");
    }
}

fn validate_basic_auth(b: &BasicAuth, errors: &mut ValidationErrors) {
    if b.username.is_empty() || b.username.len() > 128 {
        errors.push("username", "must be 1 to 128 characters long");
    } else if b.username.contains(':') || b.username.chars().any(char::is_control) {
        // RFC 7617: the user-id ends at the first colon.
        errors.push("username", "must not contain ':' or control characters");
    }
    match (&b.password, &b.password_hash) {
        (Some(_), Some(_)) => errors.push("password", "give either password or password_hash"),
        (None, None) => errors.push("password", "is required"),
        (Some(p), None) => {
            let n = p.chars().count();
            if n < MIN_PASSWORD_LEN || p.len() > 1024 {
                errors.push(
                    "password",
                    format!("must be {MIN_PASSWORD_LEN} to 1024 characters"),
                );
            }
        }
        (None, Some(h)) => {
            let argon2id = argon2::PasswordHash::new(h)
                .is_ok_and(|p| p.algorithm.as_str() == "argon2id" && p.hash.is_some());
            if !argon2id {
                errors.push("password_hash", "must be an Argon2id PHC string");
            }
        }
    }
}

fn validate_jwt(j: &JwtCredential, errors: &mut ValidationErrors) {
    if j.key.is_empty() || j.key.len() > 256 {
        errors.push("key", "must be 1 to 256 characters long");
    } else if j.key.chars().any(char::is_control) {
        errors.push("key", "must not contain control characters");
    }
    if j.algorithm.is_hmac() {
        if j.public_key.is_some() {
            errors.push(
                "public_key",
                "HS* algorithms use a secret, not a public key",
            );
        }
        match (&j.secret, &j.secret_sha256) {
            (Some(_), Some(_)) => errors.push("secret", "give either secret or secret_sha256"),
            (None, None) => errors.push("secret", "is required for HS* algorithms"),
            (Some(s), None) if s.len() < MIN_HS_SECRET_BYTES || s.len() > MAX_SECRET_LEN => {
                errors.push(
                    "secret",
                    format!("must be {MIN_HS_SECRET_BYTES} to {MAX_SECRET_LEN} bytes"),
                );
            }
            (None, Some(d)) if !is_hex_digest(d) => {
                errors.push("secret_sha256", "must be 64 lowercase hex digits");
            }
            _ => {}
        }
    } else {
        if j.secret.is_some() || j.secret_sha256.is_some() {
            errors.push(
                "secret",
                "RS*/ES* algorithms use a public key, not a secret",
            );
        }
        match &j.public_key {
            None => errors.push(
                "public_key",
                "is required for RS*, PS256, ES* and EdDSA algorithms",
            ),
            Some(p) if p.is_empty() || p.len() > MAX_PEM_LEN => {
                errors.push("public_key", "must be a PEM public key of at most 16 KiB");
            }
            Some(_) => {}
        }
    }
}

/// A credential as stored and distributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credential {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: CredentialSpec,
}

#[cfg(test)]
#[path = "credential_tests.rs"]
mod tests;
