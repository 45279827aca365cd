//! `jwt`: the consumer presents a signed JWT in `Authorization: Bearer`.
//! (The schema has no cookie or query parameter name, so the token is read
//! from that header only.) The consumer goes up as `X-Consumer-*` like every
//! authentication plugin's, and the claims `claims_to_headers` names as
//! request headers (`headers`).
//!
//! Which key verifies a token:
//! 1. The credential is the JWT credential whose `key` equals the token's
//!    `iss` claim, else the one whose `key` equals its `kid` header.
//! 2. With `jwks_uri`, when the token's `kid` is in the fetched key set and
//!    its `iss` names a credential, that JWKS key verifies it and the `iss`
//!    credential's consumer is the consumer (its own key is not used).
//!    There is no anonymous consumer: a JWKS-signed token whose `iss` names
//!    no credential falls back to rule 3, and so is refused unless its
//!    `kid` names a credential whose own key verifies it.
//! 3. Otherwise the credential's own key verifies it, with the credential's
//!    algorithm.
//! 4. With `jwks_uri`, a `kid` the key set lacks and an `iss` credential:
//!    the policy asks for an early refresh of the set (at most once a
//!    minute, see `jwks`) and, when it asked, waits for it (at most 5 s)
//!    before applying rule 2 or 3.
//!
//! The algorithm is the credential's (or one the JWKS key allows), never
//! the token's: a token whose header `alg` differs is refused, as is any
//! algorithm not in the plugin's `algorithms`. `alg: none` in any spelling
//! does not parse. `jwk`, `jku`, `x5u` and `x5c` headers are never used.
//!
//! Claims, checked after the signature with a JSON type check first (a
//! string `exp` is refused, not skipped): `exp` always, required; `nbf` when
//! `claims_to_verify` lists it, then required too (an `nbf` of the wrong
//! type is refused either way); both with `leeway_s`. `iss` must equal
//! `issuer` when set, `aud` (a string or an array of strings) must hold one
//! of `audience` when it is not empty.
//!
//! No bearer token → [`Flow::Absent`] (401, `WWW-Authenticate: Bearer`);
//! a bad one → 401 with a short reason, never the token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use claims::{Checks, system_now};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::{Map, Value};
use tokio::sync::watch;
use turnpike_model::credential::{JwtAlgorithm, JwtCredential};
use turnpike_model::plugin::jwt::{Claim, JwtConfig};

use super::{CompiledConsumer, CompiledConsumers, Flow, Phase, Policy, Rejection, RequestCtx};

#[path = "jwt_claims.rs"]
mod claims;
#[path = "jwt_crypto.rs"]
mod crypto;
#[path = "jwt_headers.rs"]
mod headers;
#[path = "jwks.rs"]
pub mod jwks;
#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
#[path = "jwt_verified.rs"]
mod verified;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token is refused: the 401's message.
type Reason = &'static str;

pub struct Jwt {
    checks: Arc<Checks>,
    jwks: Option<Arc<jwks::Jwks>>,
    /// Keys made from credentials (PEM parsed once), by credential key.
    keys: RwLock<HashMap<String, Arc<CredKey>>>,
    /// Tokens verified with a credential's key (`verified`).
    verified: verified::Verified,
    /// `claims_to_headers`.
    claim_headers: headers::ClaimHeaders,
}

struct CredKey {
    /// The secret or PEM it was made from, so a changed credential is seen.
    material: String,
    alg: Algorithm,
    key: DecodingKey,
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

impl Jwt {
    /// Builds the policy; with `jwks_uri`, joins (or starts) the process's
    /// fetcher of that URI.
    pub fn new(config: JwtConfig) -> Result<Jwt, String> {
        let jwks = match &config.jwks_uri {
            Some(uri) => Some(jwks::shared(uri)?),
            None => None,
        };
        Ok(Jwt::with_jwks(config, jwks))
    }

    pub fn with_jwks(config: JwtConfig, jwks: Option<Arc<jwks::Jwks>>) -> Jwt {
        crypto::install();
        let validations = config
            .algorithms
            .iter()
            .map(|a| {
                let alg = algorithm(*a);
                let mut v = Validation::new(alg);
                v.validate_exp = false;
                v.validate_nbf = false;
                v.validate_aud = false;
                v.required_spec_claims.clear();
                v.leeway = 0;
                (alg, v)
            })
            .collect();
        Jwt {
            checks: Arc::new(Checks {
                validations,
                issuer: config.issuer,
                audience: config.audience,
                nbf: config.claims_to_verify.contains(&Claim::Nbf),
                leeway: f64::from(config.leeway_s),
                now: system_now,
            }),
            jwks,
            keys: RwLock::default(),
            verified: verified::Verified::default(),
            claim_headers: headers::ClaimHeaders::new(&config.claims_to_headers),
        }
    }

    fn authenticate(&self, raw: &str, consumers: &CompiledConsumers) -> Outcome {
        if let Some((consumer, forwarded)) = self.verified.get(raw, &self.checks) {
            return Outcome::Pass(consumer, forwarded);
        }
        let token = match Token::parse(raw) {
            Ok(t) => t,
            Err(r) => return Outcome::Fail(r),
        };
        let iss = match token.claims.get("iss") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Outcome::Fail("iss claim is not a string"),
        };
        let kid = token.header.kid.as_deref();
        let by_iss = iss.and_then(|i| consumers.jwt.get(i));
        let by_kid = kid.and_then(|k| consumers.jwt.get(k));
        if let (Some(jwks), Some(kid), Some((cred, consumer))) = (&self.jwks, kid, by_iss) {
            if let Some(key) = jwks.get(kid) {
                return match self.checks.verify_jwks(raw, &token.header, &key) {
                    Ok(()) => {
                        Outcome::Pass(consumer.clone(), self.claim_headers.values(&token.claims))
                    }
                    Err(r) => Outcome::Fail(r),
                };
            }
            let refreshed = jwks.refreshed();
            if jwks.request_refresh() {
                let wait = Wait {
                    consumer: consumer.clone(),
                    checks: self.checks.clone(),
                    jwks: jwks.clone(),
                    refreshed,
                    raw: raw.to_owned(),
                    header: token.header.clone(),
                    kid: kid.to_owned(),
                    fallback: self.cred_key(cred),
                };
                // Sent only if the wait verifies the token (else 401).
                let forwarded = self.claim_headers.values(&token.claims);
                return Outcome::Wait(Box::pin(wait.run()), forwarded);
            }
        }
        let Some((cred, consumer)) = by_iss.or(by_kid) else {
            return Outcome::Fail("no credential for this token's iss or kid");
        };
        let result = self
            .cred_key(cred)
            .and_then(|k| self.checks.verify(raw, &token.header, k.alg, &k.key));
        match result {
            Ok(()) => {
                let forwarded = self.claim_headers.values(&token.claims);
                self.verified
                    .put(raw, &token.claims, consumer, &forwarded, &self.checks);
                Outcome::Pass(consumer.clone(), forwarded)
            }
            Err(r) => Outcome::Fail(r),
        }
    }

    /// The credential's key, parsed once per credential and config.
    fn cred_key(&self, cred: &JwtCredential) -> Result<Arc<CredKey>, Reason> {
        let alg = algorithm(cred.algorithm);
        let material = if cred.algorithm.is_hmac() {
            cred.secret.as_deref()
        } else {
            cred.public_key.as_deref()
        }
        .ok_or("the credential has no key")?;
        {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = keys.get(&cred.key)
                && k.alg == alg
                && k.material == material
            {
                return Ok(k.clone());
            }
        }
        let key = match alg.family() {
            AlgorithmFamily::Hmac => DecodingKey::from_secret(material.as_bytes()),
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(material.as_bytes()),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(material.as_bytes()),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(material.as_bytes()),
        }
        .map_err(|_| "the credential's key is not usable")?;
        let k = Arc::new(CredKey {
            material: material.to_owned(),
            alg,
            key,
        });
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cred.key.clone(), k.clone());
        Ok(k)
    }
}

type WaitFuture = Pin<Box<dyn Future<Output = Result<Arc<CompiledConsumer>, Rejection>> + Send>>;

enum Outcome {
    Pass(Arc<CompiledConsumer>, headers::Forwarded),
    Fail(Reason),
    /// Rule 4 of the module: decided after a JWKS refresh.
    Wait(WaitFuture, headers::Forwarded),
}

/// A request waiting for a JWKS refresh.
struct Wait {
    consumer: Arc<CompiledConsumer>,
    checks: Arc<Checks>,
    jwks: Arc<jwks::Jwks>,
    refreshed: watch::Receiver<u64>,
    raw: String,
    header: Header,
    kid: String,
    fallback: Result<Arc<CredKey>, Reason>,
}

impl Wait {
    async fn run(mut self) -> Result<Arc<CompiledConsumer>, Rejection> {
        // A closed channel (the fetcher stopped) or the deadline: decide
        // with what is there.
        let _ = tokio::time::timeout(jwks::WAIT_FOR_REFRESH, self.refreshed.changed()).await;
        let result = match self.jwks.get(&self.kid) {
            Some(key) => self.checks.verify_jwks(&self.raw, &self.header, &key),
            None => self
                .fallback
                .and_then(|k| self.checks.verify(&self.raw, &self.header, k.alg, &k.key)),
        };
        result.map(|()| self.consumer).map_err(invalid)
    }
}

/// A token taken apart, not yet verified: the header and claims only pick
/// the key.
struct Token {
    header: Header,
    claims: Map<String, Value>,
}

impl Token {
    fn parse(raw: &str) -> Result<Token, Reason> {
        if raw.len() > MAX_TOKEN_BYTES {
            return Err("token too large");
        }
        // JWS compact serialization: base64url without padding, so no `=`,
        // `+`, `/` or whitespace anywhere.
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err("token is not base64url");
        }
        let mut parts = raw.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("token must have three segments");
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err("token has an empty segment");
        }
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|_| "malformed or unsupported token header")?;
        let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(raw)
            .map_err(|_| "token claims are not a JSON object")?;
        Ok(Token { header, claims })
    }
}

fn challenge(error: bool) -> HeaderValue {
    if error {
        HeaderValue::from_static("Bearer realm=\"turnpike\", error=\"invalid_token\"")
    } else {
        HeaderValue::from_static("Bearer realm=\"turnpike\"")
    }
}

fn invalid(reason: Reason) -> Rejection {
    Rejection::new(StatusCode::UNAUTHORIZED, reason).with_header(WWW_AUTHENTICATE, challenge(true))
}

enum Bearer<'a> {
    None,
    One(&'a str),
    Bad(Reason),
}

/// The token of the `Authorization: Bearer` header; other schemes are left
/// to the other authentication plugins.
fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let mut found = Bearer::None;
    for v in headers.get_all(AUTHORIZATION) {
        let b = v.as_bytes();
        if b.len() < 7 || !b[..7].eq_ignore_ascii_case(b"bearer ") {
            continue;
        }
        if !matches!(found, Bearer::None) {
            return Bearer::Bad("more than one bearer token");
        }
        found = match std::str::from_utf8(&b[7..]) {
            Ok(t) => Bearer::One(t.trim_matches(' ')),
            Err(_) => Bearer::Bad("token is not base64url"),
        };
    }
    found
}

impl Policy for Jwt {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn priority(&self) -> u16 {
        1100
    }

    fn authenticates(&self) -> bool {
        true
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        self.claim_headers.strip(&mut ctx.parts.headers);
        let raw = match bearer(&ctx.parts.headers) {
            Bearer::None => {
                return Flow::Absent(
                    Rejection::new(StatusCode::UNAUTHORIZED, "no bearer token in the request")
                        .with_header(WWW_AUTHENTICATE, challenge(false)),
                );
            }
            Bearer::Bad(r) => return Flow::Reject(invalid(r)),
            Bearer::One(t) => t,
        };
        match self.authenticate(raw, ctx.consumers) {
            Outcome::Pass(consumer, forwarded) => {
                headers::apply(&forwarded, &mut ctx.parts.headers);
                ctx.consumer = Some(consumer);
                Flow::Continue
            }
            Outcome::Fail(r) => Flow::Reject(invalid(r)),
            Outcome::Wait(wait, forwarded) => {
                headers::apply(&forwarded, &mut ctx.parts.headers);
                Flow::Identify(wait)
            }
        }
    }
}
