//! Wire conversion of the policy entities: consumers (the proto nests each
//! consumer's credentials in it; the snapshot keeps them in one list),
//! plugins (config as JSON text) and certificates.

use std::collections::HashMap;

use turnpike_proto as proto;
use uuid::Uuid;

use crate::credential::{BasicAuth, JwtCredential, KeyAuth};
use crate::{
    Certificate, CertificateSpec, Consumer, ConsumerSpec, Credential, CredentialKind,
    CredentialSpec, JwtAlgorithm, ModelError, Plugin, PluginSpec, Snapshot,
};

pub(crate) fn consumers_to_proto(s: &Snapshot) -> Vec<proto::Consumer> {
    // Grouped in one pass: a scan of every credential per consumer is
    // quadratic, and at 10,000 consumers it was most of the time spent
    // hashing a snapshot. Credentials are sorted by id, so each consumer's
    // list is too.
    let mut by_consumer: HashMap<&str, Vec<proto::Credential>> = HashMap::new();
    for cr in &s.credentials {
        by_consumer
            .entry(cr.spec.consumer.as_str())
            .or_default()
            .push(credential_to_proto(cr));
    }
    s.consumers
        .iter()
        .map(|c| {
            let id = c.id.to_string();
            proto::Consumer {
                credentials: by_consumer.remove(id.as_str()).unwrap_or_default(),
                id,
                username: c.spec.username.clone(),
                groups: c.spec.groups.clone(),
                tags: c.spec.tags.clone(),
            }
        })
        .collect()
}

fn credential_to_proto(c: &Credential) -> proto::Credential {
    use proto::credential::Credential as Oneof;
    let credential = match &c.spec.kind {
        CredentialKind::KeyAuth(k) => Oneof::KeyAuth(proto::KeyAuth {
            key_digest: k.key_digest.clone().unwrap_or_default(),
            key_prefix: k.key_prefix.clone().unwrap_or_default(),
        }),
        CredentialKind::BasicAuth(b) => Oneof::BasicAuth(proto::BasicAuth {
            username: b.username.clone(),
            password_hash: b.password_hash.clone().unwrap_or_default(),
        }),
        CredentialKind::Jwt(j) => Oneof::Jwt(proto::JwtCredential {
            key: j.key.clone(),
            algorithm: j.algorithm.as_str().to_owned(),
            secret: j.secret.clone().unwrap_or_default().into_bytes(),
            public_key: j.public_key.clone().unwrap_or_default(),
        }),
    };
    proto::Credential {
        id: c.id.to_string(),
        credential: Some(credential),
    }
}

pub(crate) fn plugins_to_proto(s: &Snapshot) -> Vec<proto::Plugin> {
    s.plugins
        .iter()
        .map(|p| proto::Plugin {
            id: p.id.to_string(),
            name: p.spec.name.clone(),
            // serde_json's map is a BTreeMap (no `preserve_order`), so the
            // text is canonical: keys sorted, no whitespace.
            config_json: p.spec.config.to_string(),
            route: p.spec.route.clone().unwrap_or_default(),
            consumer: p.spec.consumer.clone().unwrap_or_default(),
            enabled: p.spec.enabled,
            tags: p.spec.tags.clone(),
        })
        .collect()
}

pub(crate) fn certificates_to_proto(s: &Snapshot) -> Vec<proto::Certificate> {
    s.certificates
        .iter()
        .map(|c| proto::Certificate {
            id: c.id.to_string(),
            cert_pem: c.spec.cert.clone(),
            key_pem: c.spec.key.clone().unwrap_or_default(),
            snis: c.spec.snis.clone(),
            tags: c.spec.tags.clone(),
        })
        .collect()
}

/// The policy entities of a wire config, in the snapshot's shape.
#[derive(Default)]
pub(crate) struct Policies {
    pub consumers: Vec<Consumer>,
    pub credentials: Vec<Credential>,
    pub plugins: Vec<Plugin>,
    pub certificates: Vec<Certificate>,
}

fn id(field: String, raw: &str) -> Result<Uuid, ModelError> {
    Uuid::parse_str(raw).map_err(|_| ModelError::wire(field, "not a UUID"))
}

/// Proto's empty string is the model's `None`.
fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn policies_from_proto(config: &mut proto::Config) -> Result<Policies, ModelError> {
    let mut out = Policies::default();
    for (i, c) in std::mem::take(&mut config.consumers)
        .into_iter()
        .enumerate()
    {
        let consumer_id = id(format!("consumers[{i}].id"), &c.id)?;
        for (j, cr) in c.credentials.into_iter().enumerate() {
            let field = format!("consumers[{i}].credentials[{j}]");
            out.credentials.push(Credential {
                id: id(format!("{field}.id"), &cr.id)?,
                spec: CredentialSpec {
                    consumer: consumer_id.to_string(),
                    kind: credential_from_proto(&field, cr.credential)?,
                },
            });
        }
        out.consumers.push(Consumer {
            id: consumer_id,
            spec: ConsumerSpec {
                username: c.username,
                groups: c.groups,
                tags: c.tags,
            },
        });
    }
    for (i, p) in std::mem::take(&mut config.plugins).into_iter().enumerate() {
        let config = serde_json::from_str(&p.config_json)
            .map_err(|e| ModelError::wire(format!("plugins[{i}].config_json"), e.to_string()))?;
        out.plugins.push(Plugin {
            id: id(format!("plugins[{i}].id"), &p.id)?,
            spec: PluginSpec {
                name: p.name,
                config,
                route: some(p.route),
                consumer: some(p.consumer),
                enabled: p.enabled,
                tags: p.tags,
            },
        });
    }
    for (i, c) in std::mem::take(&mut config.certificates)
        .into_iter()
        .enumerate()
    {
        out.certificates.push(Certificate {
            id: id(format!("certificates[{i}].id"), &c.id)?,
            spec: CertificateSpec {
                cert: c.cert_pem,
                key: some(c.key_pem),
                key_sha256: None,
                snis: c.snis,
                tags: c.tags,
            },
        });
    }
    Ok(out)
}

fn credential_from_proto(
    field: &str,
    credential: Option<proto::credential::Credential>,
) -> Result<CredentialKind, ModelError> {
    use proto::credential::Credential as Oneof;
    Ok(match credential {
        None => return Err(ModelError::wire(field, "no credential type")),
        Some(Oneof::KeyAuth(k)) => CredentialKind::KeyAuth(KeyAuth {
            key: None,
            key_digest: some(k.key_digest),
            key_prefix: some(k.key_prefix),
        }),
        Some(Oneof::BasicAuth(b)) => CredentialKind::BasicAuth(BasicAuth {
            username: b.username,
            password: None,
            password_hash: some(b.password_hash),
        }),
        Some(Oneof::Jwt(j)) => CredentialKind::Jwt(JwtCredential {
            algorithm: JwtAlgorithm::parse(&j.algorithm).ok_or_else(|| {
                ModelError::wire(
                    format!("{field}.algorithm"),
                    format!("algorithm '{}' is not supported", j.algorithm),
                )
            })?,
            key: j.key,
            secret: some(
                String::from_utf8(j.secret)
                    .map_err(|_| ModelError::wire(format!("{field}.secret"), "not UTF-8"))?,
            ),
            secret_sha256: None,
            public_key: some(j.public_key),
        }),
    })
}
