//! Between a declarative document and a snapshot: names become ids and back.
//!
//! An import keeps the id of every entity that already exists, so that
//! importing an export is a no-op: upstreams, routes and consumers are
//! matched by name, credentials by consumer, type and key (digest, username
//! or JWT key), plugins by name and scope, certificates by the id they
//! carry, else by their first SNI (without SNIs: their PEM).

use std::collections::HashMap;

use uuid::Uuid;

use super::{CertificateEntry, ConsumerEntry, Document, FORMAT_VERSION, RouteEntry};
use crate::credential::sha256_hex;
use crate::{
    Certificate, Consumer, Credential, CredentialKind, CredentialSpec, Plugin, PluginSpec, Route,
    Snapshot, Upstream, ValidationErrors,
};

impl Document {
    /// The document of a snapshot, in canonical form: entities sorted by
    /// name, every field written out, references by name, secrets shown the
    /// way they are stored (never in clear).
    pub fn from_snapshot(s: &Snapshot) -> Document {
        let s = s.redacted();
        let upstream_names = names(s.upstreams.iter().map(|u| (u.id, u.spec.name.as_str())));
        let usernames = names(s.consumers.iter().map(|c| (c.id, c.spec.username.as_str())));
        // A validated snapshot has no dangling reference; if one slipped
        // through, the id is the most honest thing to show.
        let by_name = |names: &HashMap<String, &str>, id: &str| {
            names
                .get(id)
                .map_or_else(|| id.to_owned(), |n| (*n).to_owned())
        };
        let plugin = |p: &Plugin| {
            let mut spec = p.spec.clone();
            spec.route = None;
            spec.consumer = spec.consumer.map(|c| by_name(&usernames, &c));
            spec
        };
        let sort_plugins = |list: &mut Vec<PluginSpec>| {
            list.sort_by(|a, b| (&a.name, &a.consumer).cmp(&(&b.name, &b.consumer)));
        };

        let mut upstreams: Vec<_> = s.upstreams.iter().map(|u| u.spec.clone()).collect();
        upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        let mut routes: Vec<RouteEntry> = s
            .routes
            .iter()
            .map(|r| {
                let mut spec = r.spec.clone();
                spec.upstream = by_name(&upstream_names, &spec.upstream);
                let id = r.id.to_string();
                let scoped = s
                    .plugins
                    .iter()
                    .filter(|p| p.spec.route.as_ref() == Some(&id));
                let mut plugins: Vec<PluginSpec> = scoped.map(plugin).collect();
                sort_plugins(&mut plugins);
                RouteEntry { spec, plugins }
            })
            .collect();
        routes.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        let mut consumers: Vec<ConsumerEntry> = s
            .consumers
            .iter()
            .map(|c| {
                let id = c.id.to_string();
                let mine = s.credentials.iter().filter(|cr| cr.spec.consumer == id);
                let mut credentials: Vec<CredentialKind> =
                    mine.map(|cr| cr.spec.kind.clone()).collect();
                credentials
                    .sort_by(|a, b| (a.type_name(), a.lookup()).cmp(&(b.type_name(), b.lookup())));
                ConsumerEntry {
                    spec: c.spec.clone(),
                    credentials,
                }
            })
            .collect();
        consumers.sort_by(|a, b| a.spec.username.cmp(&b.spec.username));
        let mut plugins: Vec<PluginSpec> = s
            .plugins
            .iter()
            .filter(|p| p.spec.route.is_none())
            .map(plugin)
            .collect();
        sort_plugins(&mut plugins);
        let mut certificates: Vec<CertificateEntry> = s
            .certificates
            .iter()
            .map(|c| CertificateEntry {
                id: Some(c.id),
                spec: c.spec.clone(),
            })
            .collect();
        // By id among equal labels: certificates without SNIs share "".
        certificates.sort_by(|a, b| (a.spec.label(), a.id).cmp(&(b.spec.label(), b.id)));
        Document {
            format_version: FORMAT_VERSION.to_owned(),
            upstreams,
            routes,
            consumers,
            plugins,
            certificates,
        }
    }

    /// The snapshot this document stands for, given the `current` one.
    /// Expects a document that passed [`Document::parse`] and whose key-auth
    /// keys and basic-auth passwords the control plane has sealed (digested,
    /// hashed). Fails on a `key_sha256`/`secret_sha256` that matches no
    /// current secret, and on a secret still in clear.
    pub fn to_snapshot(&self, current: &Snapshot) -> Result<Snapshot, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let ids = |it: &mut dyn Iterator<Item = (&str, Uuid)>| -> HashMap<String, Uuid> {
            it.map(|(n, id)| (n.to_owned(), id)).collect()
        };
        let id_of = |known: &HashMap<String, Uuid>, name: &str| {
            known.get(name).copied().unwrap_or_else(Uuid::now_v7)
        };
        let current_upstreams = ids(&mut current
            .upstreams
            .iter()
            .map(|u| (u.spec.name.as_str(), u.id)));
        let current_routes = ids(&mut current.routes.iter().map(|r| (r.spec.name.as_str(), r.id)));
        let current_consumers = ids(&mut current
            .consumers
            .iter()
            .map(|c| (c.spec.username.as_str(), c.id)));

        let upstreams: Vec<Upstream> = self
            .upstreams
            .iter()
            .map(|spec| Upstream {
                id: id_of(&current_upstreams, &spec.name),
                spec: spec.clone(),
            })
            .collect();
        let upstream_ids = ids(&mut upstreams.iter().map(|u| (u.spec.name.as_str(), u.id)));
        let routes: Vec<Route> = self
            .routes
            .iter()
            .map(|r| {
                let mut spec = r.spec.clone();
                if let Some(id) = upstream_ids.get(&spec.upstream) {
                    spec.upstream = id.to_string();
                }
                Route {
                    id: id_of(&current_routes, &spec.name),
                    spec,
                }
            })
            .collect();
        let consumers: Vec<Consumer> = self
            .consumers
            .iter()
            .map(|c| Consumer {
                id: id_of(&current_consumers, &c.spec.username),
                spec: c.spec.clone(),
            })
            .collect();
        let consumer_ids = ids(&mut consumers.iter().map(|c| (c.spec.username.as_str(), c.id)));
        let route_ids = ids(&mut routes.iter().map(|r| (r.spec.name.as_str(), r.id)));

        let credentials = self.credentials(current, &consumers, &mut errors);
        let plugins = self.plugins(current, &route_ids, &consumer_ids);
        let certificates = self.certificates(current, &mut errors);
        errors.into_result()?;
        Ok(Snapshot {
            version: current.version,
            upstreams,
            routes,
            consumers,
            credentials,
            plugins,
            certificates,
        }
        .canonical())
    }

    fn credentials(
        &self,
        current: &Snapshot,
        consumers: &[Consumer],
        errors: &mut ValidationErrors,
    ) -> Vec<Credential> {
        let known: HashMap<(String, &str, &str), Uuid> = current
            .credentials
            .iter()
            .filter_map(|c| {
                let k = &c.spec.kind;
                Some(((c.spec.consumer.clone(), k.type_name(), k.lookup()?), c.id))
            })
            .collect();
        let secrets: HashMap<String, &str> = current
            .credentials
            .iter()
            .filter_map(|c| match &c.spec.kind {
                CredentialKind::Jwt(j) => j.secret.as_deref(),
                _ => None,
            })
            .map(|s| (sha256_hex(s.as_bytes()), s))
            .collect();
        let mut out = Vec::new();
        for (i, (entry, consumer)) in self.consumers.iter().zip(consumers).enumerate() {
            let consumer_id = consumer.id.to_string();
            for (j, kind) in entry.credentials.iter().enumerate() {
                let path = format!("consumers[{i}].credentials[{j}]");
                let mut kind = kind.clone();
                match &mut kind {
                    CredentialKind::KeyAuth(k) if k.key.is_some() => {
                        errors.push(format!("{path}.key"), "not sealed by the control plane");
                    }
                    CredentialKind::BasicAuth(b) if b.password.is_some() => {
                        errors.push(
                            format!("{path}.password"),
                            "not sealed by the control plane",
                        );
                    }
                    CredentialKind::Jwt(jwt) => {
                        if let Some(d) = jwt.secret_sha256.take() {
                            match secrets.get(&d) {
                                Some(s) => jwt.secret = Some((*s).to_owned()),
                                None => errors.push(
                                    format!("{path}.secret_sha256"),
                                    "matches no secret of the current config; give the secret",
                                ),
                            }
                        }
                    }
                    _ => {}
                }
                let id = kind
                    .lookup()
                    .and_then(|l| known.get(&(consumer_id.clone(), kind.type_name(), l)))
                    .copied()
                    .unwrap_or_else(Uuid::now_v7);
                out.push(Credential {
                    id,
                    spec: CredentialSpec {
                        consumer: consumer_id.clone(),
                        kind,
                    },
                });
            }
        }
        out
    }

    fn plugins(
        &self,
        current: &Snapshot,
        route_ids: &HashMap<String, Uuid>,
        consumer_ids: &HashMap<String, Uuid>,
    ) -> Vec<Plugin> {
        let known: HashMap<(&str, Option<&str>, Option<&str>), Uuid> = current
            .plugins
            .iter()
            .map(|p| {
                let s = &p.spec;
                (
                    (s.name.as_str(), s.route.as_deref(), s.consumer.as_deref()),
                    p.id,
                )
            })
            .collect();
        let global = self.plugins.iter().map(|p| (None, p));
        let scoped = self.routes.iter().flat_map(|r| {
            let route = route_ids.get(&r.spec.name).map(Uuid::to_string);
            r.plugins.iter().map(move |p| (route.clone(), p))
        });
        global
            .chain(scoped)
            .map(|(route, p)| {
                let mut spec = p.clone();
                spec.route = route;
                spec.consumer = spec
                    .consumer
                    .map(|c| consumer_ids.get(&c).map_or(c, Uuid::to_string));
                let scope = (
                    spec.name.as_str(),
                    spec.route.as_deref(),
                    spec.consumer.as_deref(),
                );
                let id = known.get(&scope).copied().unwrap_or_else(Uuid::now_v7);
                Plugin { id, spec }
            })
            .collect()
    }

    /// Gives every certificate entry without an `id` the one an import
    /// would (see [`Document::to_snapshot`]), so that the caller can find
    /// each entry in the snapshot by id.
    pub fn assign_certificate_ids(&mut self, current: &Snapshot) {
        let ids = self.certificate_ids(current);
        for (entry, id) in self.certificates.iter_mut().zip(ids) {
            entry.id = Some(id);
        }
    }

    /// The id of each certificate entry: its own; else that of the current
    /// certificate with the same first SNI (without SNIs: the same PEM),
    /// unless another entry has it; else a new one.
    fn certificate_ids(&self, current: &Snapshot) -> Vec<Uuid> {
        let mut taken: std::collections::HashSet<Uuid> =
            self.certificates.iter().filter_map(|c| c.id).collect();
        let by_sni: HashMap<&str, Uuid> = current
            .certificates
            .iter()
            .flat_map(|c| c.spec.snis.iter().map(move |s| (s.as_str(), c.id)))
            .collect();
        let by_pem: HashMap<&str, Uuid> = current
            .certificates
            .iter()
            .filter(|c| c.spec.snis.is_empty())
            .map(|c| (c.spec.cert.as_str(), c.id))
            .collect();
        self.certificates
            .iter()
            .map(|c| {
                if let Some(id) = c.id {
                    return id;
                }
                let matched = match c.spec.snis.first() {
                    Some(sni) => by_sni.get(sni.as_str()),
                    None => by_pem.get(c.spec.cert.as_str()),
                };
                match matched {
                    Some(id) if taken.insert(*id) => *id,
                    _ => Uuid::now_v7(),
                }
            })
            .collect()
    }

    fn certificates(&self, current: &Snapshot, errors: &mut ValidationErrors) -> Vec<Certificate> {
        let keys: HashMap<String, &str> = current
            .certificates
            .iter()
            .filter_map(|c| c.spec.key.as_deref())
            .map(|k| (sha256_hex(k.as_bytes()), k))
            .collect();
        let ids = self.certificate_ids(current);
        let mut out = Vec::new();
        for (i, (entry, id)) in self.certificates.iter().zip(ids).enumerate() {
            let mut spec = entry.spec.clone();
            if let Some(d) = spec.key_sha256.take() {
                match keys.get(&d.to_ascii_lowercase()) {
                    Some(k) => spec.key = Some((*k).to_owned()),
                    None => errors.push(
                        format!("certificates[{i}].key_sha256"),
                        "matches no key of the current config; give the key",
                    ),
                }
            }
            out.push(Certificate { id, spec });
        }
        out
    }
}

/// Names by id (as strings, the way specs refer to them).
fn names<'a>(it: impl Iterator<Item = (Uuid, &'a str)>) -> HashMap<String, &'a str> {
    it.map(|(id, n)| (id.to_string(), n)).collect()
}
