//! Consumers and their credentials, compiled for lookup by the
//! authentication policies: key-auth keys by their HMAC digest (the
//! control plane stores only digests; the data plane digests a presented
//! key with the cluster's pepper and looks the digest up), basic-auth users
//! by username, JWT credentials by their `iss`/`kid` key.

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use turnpike_model::credential::{BasicAuth, JwtCredential};
use turnpike_model::{CredentialKind, Snapshot};
use uuid::Uuid;

use crate::Error;

/// An identified consumer, as later policies and the upstream see it.
#[derive(Debug)]
pub struct CompiledConsumer {
    pub id: Uuid,
    pub username: String,
    /// Sorted, for the ACL's lookups.
    pub groups: Vec<String>,
    /// `X-Consumer-Id` / `X-Consumer-Username` values, made once.
    pub id_header: http::HeaderValue,
    pub username_header: http::HeaderValue,
}

#[derive(Default)]
pub struct CompiledConsumers {
    pub by_id: HashMap<Uuid, Arc<CompiledConsumer>>,
    /// HMAC-SHA256(pepper, key) → consumer.
    key_auth: HashMap<[u8; 32], Arc<CompiledConsumer>>,
    /// The HMAC key, from the control plane's cluster secrets.
    pepper: Option<Hmac<Sha256>>,
    pub basic_auth: HashMap<String, (BasicAuth, Arc<CompiledConsumer>)>,
    pub jwt: HashMap<String, (JwtCredential, Arc<CompiledConsumer>)>,
}

impl CompiledConsumers {
    pub fn build(snapshot: &Snapshot, pepper: &str) -> Result<CompiledConsumers, Error> {
        let mut out = CompiledConsumers {
            pepper: (!pepper.is_empty())
                .then(|| Hmac::<Sha256>::new_from_slice(pepper.as_bytes()))
                .transpose()
                .map_err(|e| Error::Compile(format!("key-auth pepper: {e}")))?,
            ..CompiledConsumers::default()
        };
        for c in &snapshot.consumers {
            let mut groups = c.spec.groups.clone();
            groups.sort();
            let header = |v: &str| {
                http::HeaderValue::from_str(v)
                    .map_err(|_| Error::Compile(format!("consumer {}: not a header value", c.id)))
            };
            out.by_id.insert(
                c.id,
                Arc::new(CompiledConsumer {
                    id: c.id,
                    username: c.spec.username.clone(),
                    groups,
                    id_header: header(&c.id.to_string())?,
                    username_header: header(&c.spec.username)?,
                }),
            );
        }
        for cred in &snapshot.credentials {
            let owner = Uuid::parse_str(&cred.spec.consumer)
                .ok()
                .and_then(|id| out.by_id.get(&id).cloned())
                .ok_or_else(|| {
                    Error::Compile(format!("credential {}: unknown consumer", cred.id))
                })?;
            match &cred.spec.kind {
                CredentialKind::KeyAuth(k) => {
                    let digest = k
                        .key_digest
                        .as_deref()
                        .and_then(|d| hex::decode(d).ok())
                        .and_then(|d| <[u8; 32]>::try_from(d).ok())
                        .ok_or_else(|| {
                            Error::Compile(format!("credential {}: no key digest", cred.id))
                        })?;
                    out.key_auth.insert(digest, owner);
                }
                CredentialKind::BasicAuth(b) => {
                    out.basic_auth
                        .insert(b.username.clone(), (b.clone(), owner));
                }
                CredentialKind::Jwt(j) => {
                    out.jwt.insert(j.key.clone(), (j.clone(), owner));
                }
            }
        }
        Ok(out)
    }

    /// Whether key-auth can work: without the pepper no presented key can
    /// be digested.
    pub fn has_pepper(&self) -> bool {
        self.pepper.is_some()
    }

    /// The consumer whose key-auth key this is. The map is keyed by a
    /// keyed digest the client cannot compute, so the lookup's timing
    /// tells nothing about stored keys.
    pub fn by_key(&self, key: &[u8]) -> Option<&Arc<CompiledConsumer>> {
        let mut mac = self.pepper.clone()?;
        mac.update(key);
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        self.key_auth.get(&digest)
    }
}
