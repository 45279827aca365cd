//! Admin and cluster tokens: generated when not given, stored only as
//! SHA-256 digests, compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;
use crate::store::Store;

/// A new random token: 256 bits, hex, with a prefix that tells its kind in
/// a secret scanner.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares a presented token against a stored digest in constant time.
pub fn matches(presented: &str, stored_digest: &str) -> bool {
    digest(presented)
        .as_bytes()
        .ct_eq(stored_digest.as_bytes())
        .into()
}

/// The outcome of [`bootstrap`]: the cluster token's digest, and the tokens
/// generated on this start (to be printed once).
pub struct Tokens {
    pub cluster_token_hash: String,
    generated_admin: Option<String>,
    generated_cluster: Option<String>,
}

impl Tokens {
    pub fn announcements(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(t) = &self.generated_admin {
            lines.push(format!(
                "Generated admin token (shown once, stored hashed): {t}\n  use it as: Authorization: Bearer {t}"
            ));
        }
        if let Some(t) = &self.generated_cluster {
            lines.push(format!(
                "Generated cluster token (shown once, stored hashed): {t}\n  start data planes with --cluster-token {t}"
            ));
        }
        lines
    }
}

/// Installs the tokens given by flags, or generates them on first start.
/// A token given by flag replaces the stored one of the same role, so an
/// operator can always regain access by restarting with a new token.
pub async fn bootstrap(
    store: &Store,
    admin: Option<&str>,
    cluster: Option<&str>,
) -> Result<Tokens, Error> {
    for (flag, t) in [("--admin-token", admin), ("--cluster-token", cluster)] {
        if t.is_some_and(|t| t.len() < 16) {
            return Err(Error::BadRequest(format!(
                "{flag} must be at least 16 characters"
            )));
        }
    }
    let mut generated_admin = None;
    match admin {
        Some(t) => {
            store
                .put_admin_token("bootstrap", &digest(t), "admin")
                .await?
        }
        None if !store.has_admin_token().await? => {
            let t = generate("tpa_");
            store
                .put_admin_token("bootstrap", &digest(&t), "admin")
                .await?;
            generated_admin = Some(t);
        }
        None => {}
    }
    let mut generated_cluster = None;
    let cluster_token_hash = match cluster {
        Some(t) => {
            let h = digest(t);
            store.put_setting("cluster_token_hash", &h).await?;
            h
        }
        None => match store.get_setting("cluster_token_hash").await? {
            Some(h) => h,
            None => {
                let t = generate("tpc_");
                let h = digest(&t);
                store.put_setting("cluster_token_hash", &h).await?;
                generated_cluster = Some(t);
                h
            }
        },
    };
    Ok(Tokens {
        cluster_token_hash,
        generated_admin,
        generated_cluster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_match() {
        let t = generate("tpa_");
        assert!(t.starts_with("tpa_") && t.len() == 68);
        let d = digest(&t);
        assert!(matches(&t, &d));
        assert!(!matches("tpa_wrong", &d));
        assert_ne!(d, t, "never stored in clear");
    }
}
