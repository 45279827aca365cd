//! `jwt`: the consumer presents a signed JWT (`Authorization: Bearer`); the
//! credential is found by the token's `iss` claim or `kid` header.

use serde::{Deserialize, Serialize};

use super::Schema;
use crate::ValidationErrors;
use crate::credential::JwtAlgorithm;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted `alg` values; a token with any other is refused.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Required `iss`, when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; the token must carry one of them, when set.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Time claims checked: `exp` always, `nbf` when listed.
    #[serde(default = "default_claims")]
    pub claims_to_verify: Vec<Claim>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_s: u32,
    /// Where RS*/ES* keys may also come from (refetched at most once a minute).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Claims sent to the upstream, claim name → request header name. A
    /// header named here is always removed from the client's request first,
    /// so it cannot be forged; a claim the token lacks sends nothing.
    #[serde(default)]
    pub claims_to_headers: std::collections::BTreeMap<String, String>,
}

/// Claims forwarded per plugin, at most.
pub const MAX_CLAIMS_TO_HEADERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    Exp,
    Nbf,
}

fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![
        JwtAlgorithm::HS256,
        JwtAlgorithm::RS256,
        JwtAlgorithm::ES256,
    ]
}

fn default_claims() -> Vec<Claim> {
    vec![Claim::Exp]
}

fn default_leeway() -> u32 {
    60
}

pub const MAX_LEEWAY_S: u32 = 3600;

/// Headers a claim may not be sent in: framing, hop-by-hop, the token's
/// own, and those the proxy sets.
const RESERVED: [&str; 16] = [
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-consumer-id",
    "x-consumer-username",
    "x-forwarded-for",
    "x-request-id",
    "traceparent",
];

impl Schema for JwtConfig {
    fn check(&mut self, errors: &mut ValidationErrors) {
        if self.algorithms.is_empty() {
            errors.push("algorithms", "at least one algorithm");
        }
        let mut seen = std::collections::HashSet::new();
        self.algorithms.retain(|a| seen.insert(*a));
        // `exp` is always verified; writing it out keeps the stored config
        // honest about it.
        self.claims_to_verify.push(Claim::Exp);
        self.claims_to_verify.sort();
        self.claims_to_verify.dedup();
        if self.leeway_s > MAX_LEEWAY_S {
            errors.push("leeway_s", format!("must be 0 to {MAX_LEEWAY_S}"));
        }
        if self
            .issuer
            .as_deref()
            .is_some_and(|i| i.is_empty() || i.len() > 256)
        {
            errors.push("issuer", "must be 1 to 256 characters");
        }
        for (i, a) in self.audience.iter().enumerate() {
            if a.is_empty() || a.len() > 256 {
                errors.push(format!("audience[{i}]"), "must be 1 to 256 characters");
            }
        }
        if self.claims_to_headers.len() > MAX_CLAIMS_TO_HEADERS {
            errors.push(
                "claims_to_headers",
                format!("at most {MAX_CLAIMS_TO_HEADERS} claims"),
            );
        }
        let mut headers = std::collections::HashSet::new();
        for (claim, header) in &mut self.claims_to_headers {
            let path = format!("claims_to_headers.{claim}");
            if claim.is_empty() || claim.len() > 256 {
                errors.push(&path, "the claim name must be 1 to 256 characters");
            }
            *header = header.to_ascii_lowercase();
            match http::HeaderName::from_bytes(header.as_bytes()) {
                Err(_) => errors.push(&path, "not a valid header name"),
                Ok(name) if RESERVED.contains(&name.as_str()) => {
                    errors.push(&path, "a header the proxy sets or strips itself")
                }
                Ok(_) if !headers.insert(header.clone()) => {
                    errors.push(&path, "another claim is sent in this header")
                }
                Ok(_) => {}
            }
        }
        if let Some(uri) = &self.jwks_uri {
            let ok = uri
                .parse::<http::Uri>()
                .is_ok_and(|u| u.scheme_str() == Some("https") && u.host().is_some());
            if !ok {
                errors.push("jwks_uri", "must be an https:// URL");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::plugin::test_support::check;

    #[test]
    fn schema() {
        assert_eq!(
            check("jwt", json!({})).unwrap(),
            json!({"algorithms": ["HS256", "RS256", "ES256"], "issuer": null, "audience": [],
                   "claims_to_verify": ["exp"], "leeway_s": 60, "jwks_uri": null,
                   "claims_to_headers": {}})
        );
        let c = check(
            "jwt",
            json!({"claims_to_verify": ["nbf"], "algorithms": ["RS256", "RS256"]}),
        )
        .unwrap();
        assert_eq!(c["claims_to_verify"], json!(["exp", "nbf"]));
        assert_eq!(c["algorithms"], json!(["RS256"]));
        assert_eq!(
            check(
                "jwt",
                json!({"algorithms": [], "leeway_s": 7200, "jwks_uri": "http://x/keys", "audience": [""]})
            ),
            Err(vec![
                "config.algorithms".into(),
                "config.leeway_s".into(),
                "config.audience[0]".into(),
                "config.jwks_uri".into()
            ])
        );
        assert_eq!(
            check("jwt", json!({"algorithms": ["none"]})),
            Err(vec!["config.algorithms[0]".into()])
        );
        assert_eq!(
            check("jwt", json!({"claims_to_verify": ["iat"]})),
            Err(vec!["config.claims_to_verify[0]".into()])
        );
        let c = check(
            "jwt",
            json!({"claims_to_headers": {"sub": "X-User", "tier": "x-tier"}}),
        );
        assert_eq!(
            c.unwrap()["claims_to_headers"],
            json!({"sub": "x-user", "tier": "x-tier"})
        );
        assert_eq!(
            check(
                "jwt",
                json!({"claims_to_headers": {"a": "bad header", "b": "Authorization",
                                             "c": "x-same", "d": "X-Same", "": "x-e"}})
            ),
            Err(vec![
                "config.claims_to_headers.".into(),
                "config.claims_to_headers.a".into(),
                "config.claims_to_headers.b".into(),
                "config.claims_to_headers.d".into(),
            ])
        );
    }
}
