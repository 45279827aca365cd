//! The `jwt` policy's checks after parsing: the signature (through
//! jsonwebtoken, with the algorithm the policy chose) and the claims (here,
//! with a clock the tests can set), each claim's JSON type first.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::Reason;
use super::jwks::JwksKey;

/// What a token must satisfy besides its signature; shared with the
/// requests that wait for a JWKS refresh.
pub(super) struct Checks {
    /// One per allowed algorithm: only that algorithm, no time or claim
    /// checks (they are done here, with [`Checks::now`]).
    pub(super) validations: Vec<(Algorithm, Validation)>,
    pub(super) issuer: Option<String>,
    pub(super) audience: Vec<String>,
    pub(super) nbf: bool,
    pub(super) leeway: f64,
    pub(super) now: fn() -> u64,
}

pub(super) fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checks {
    /// Verifies the signature with `key` and `alg` (the credential's, or
    /// one the JWKS key allows), then the claims.
    pub(super) fn verify(
        &self,
        raw: &str,
        header: &Header,
        alg: Algorithm,
        key: &DecodingKey,
    ) -> Result<(), Reason> {
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Err("the key's algorithm is not allowed by the plugin");
        };
        if header.alg != alg {
            return Err("token algorithm does not match the key's");
        }
        let data =
            jsonwebtoken::decode::<Value>(raw, key, validation).map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => "invalid signature",
                ErrorKind::InvalidAlgorithm => "token algorithm does not match the key's",
                _ => "invalid token",
            })?;
        self.claims(&data.claims)
    }

    /// A JWKS key: the token's `alg` picks among the algorithms the key
    /// allows (its `alg`, or its type's), which must be allowed here too.
    pub(super) fn verify_jwks(
        &self,
        raw: &str,
        header: &Header,
        key: &JwksKey,
    ) -> Result<(), Reason> {
        if !key.algorithms.contains(&header.alg) {
            return Err("token algorithm does not match the key's");
        }
        self.verify(raw, header, header.alg, &key.key)
    }

    /// `exp` has passed, leeway included.
    pub(super) fn expired(&self, exp: f64, now: f64) -> bool {
        now >= exp + self.leeway
    }

    /// `nbf` is checked and still ahead, leeway included.
    pub(super) fn early(&self, nbf: f64, now: f64) -> bool {
        self.nbf && nbf > now + self.leeway
    }

    fn claims(&self, claims: &Value) -> Result<(), Reason> {
        let Value::Object(c) = claims else {
            return Err("token claims are not a JSON object");
        };
        let now = (self.now)() as f64;
        let exp = match numeric_date(c, "exp") {
            Ok(Some(t)) => t,
            Ok(None) => return Err("token has no exp claim"),
            Err(()) => return Err("exp claim is not a NumericDate"),
        };
        if self.expired(exp, now) {
            return Err("token expired");
        }
        match numeric_date(c, "nbf") {
            Err(()) => return Err("nbf claim is not a NumericDate"),
            Ok(None) if self.nbf => return Err("token has no nbf claim"),
            Ok(Some(nbf)) if self.early(nbf, now) => {
                return Err("token not valid yet (nbf)");
            }
            _ => {}
        }
        if numeric_date(c, "iat").is_err() {
            return Err("iat claim is not a NumericDate");
        }
        match (c.get("iss"), &self.issuer) {
            (Some(v), _) if !v.is_string() => return Err("iss claim is not a string"),
            (None, Some(_)) => return Err("token has no iss claim"),
            (Some(v), Some(want)) if v.as_str() != Some(want.as_str()) => {
                return Err("token issuer not accepted");
            }
            _ => {}
        }
        let aud: Vec<&str> = match c.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()
                .ok_or("aud claim is not a string or an array of strings")?,
            Some(_) => return Err("aud claim is not a string or an array of strings"),
        };
        if !self.audience.is_empty() && !aud.iter().any(|a| self.audience.iter().any(|w| w == a)) {
            return Err(if aud.is_empty() {
                "token has no aud claim"
            } else {
                "token audience not accepted"
            });
        }
        Ok(())
    }
}

/// A NumericDate claim: absent, or a non-negative finite JSON number
/// (RFC 7519 §2); anything else (a string, `null`, an array) is an error.
fn numeric_date(c: &Map<String, Value>, name: &str) -> Result<Option<f64>, ()> {
    match c.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Some)
            .ok_or(()),
    }
}
