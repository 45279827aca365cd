//! The whole config at one version: immutable, validated as a unit, and
//! content-hashed so control plane and data plane can tell they agree.

use std::collections::HashSet;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::{Certificate, Consumer, Credential, Plugin, Route, Upstream, ValidationErrors};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    /// Every list is sorted by id.
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub consumers: Vec<Consumer>,
    /// Each names its consumer (the wire nests them in their consumer).
    pub credentials: Vec<Credential>,
    pub plugins: Vec<Plugin>,
    pub certificates: Vec<Certificate>,
}

impl Snapshot {
    /// Builds a snapshot of upstreams and routes in canonical order.
    pub fn new(version: u64, upstreams: Vec<Upstream>, routes: Vec<Route>) -> Snapshot {
        Snapshot {
            version,
            upstreams,
            routes,
            ..Snapshot::default()
        }
        .canonical()
    }

    /// Puts every list in canonical order (sorted by id).
    pub fn canonical(mut self) -> Snapshot {
        self.upstreams.sort_by_key(|u| u.id);
        self.routes.sort_by_key(|r| r.id);
        self.consumers.sort_by_key(|c| c.id);
        self.credentials.sort_by_key(|c| c.id);
        self.plugins.sort_by_key(|p| p.id);
        self.certificates.sort_by_key(|c| c.id);
        self
    }

    /// The same config with what is stored in clear (certificate keys, JWT
    /// secrets) replaced by SHA-256 digests: what exports, diffs and history
    /// show. Never distributed or stored.
    pub fn redacted(&self) -> Snapshot {
        let mut s = self.clone();
        for c in &mut s.certificates {
            c.spec.redact();
        }
        for c in &mut s.credentials {
            c.spec.kind.redact();
        }
        s
    }

    /// Checks every entity and every reference between them, the way
    /// go-control-plane's `Consistent()` does, before a version is published
    /// or applied.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        let certificate_ids: HashSet<uuid::Uuid> = self.certificates.iter().map(|c| c.id).collect();
        for (i, u) in self.upstreams.iter().enumerate() {
            if let Err(e) = u.spec.validate() {
                errors.extend_prefixed(&format!("upstreams[{i}]"), e);
            }
            if let Some(id) = u.spec.tls.as_ref().and_then(|t| t.client_certificate)
                && !certificate_ids.contains(&id)
            {
                errors.push(
                    format!("upstreams[{i}].tls.client_certificate"),
                    format!("refers to unknown certificate {id}"),
                );
            }
            if !ids.insert(u.id) {
                errors.push(format!("upstreams[{i}].id"), "duplicate id");
            }
            if !names.insert(u.spec.name.as_str()) {
                errors.push(format!("upstreams[{i}].name"), "duplicate name");
            }
        }
        let upstream_ids: HashSet<String> =
            self.upstreams.iter().map(|u| u.id.to_string()).collect();
        let mut names = HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            if let Err(e) = r.spec.validate() {
                errors.extend_prefixed(&format!("routes[{i}]"), e);
            }
            if !ids.insert(r.id) {
                errors.push(format!("routes[{i}].id"), "duplicate id");
            }
            if !names.insert(r.spec.name.as_str()) {
                errors.push(format!("routes[{i}].name"), "duplicate name");
            }
            if !upstream_ids.contains(&r.spec.upstream) {
                errors.push(
                    format!("routes[{i}].upstream"),
                    format!("refers to unknown upstream {}", r.spec.upstream),
                );
            }
        }
        self.validate_consumers(&mut ids, &mut errors);
        self.validate_plugins(&mut ids, &mut errors);
        self.validate_certificates(&mut ids, &mut errors);
        errors.into_result()
    }

    fn validate_consumers(&self, ids: &mut HashSet<uuid::Uuid>, errors: &mut ValidationErrors) {
        let mut names = HashSet::new();
        for (i, c) in self.consumers.iter().enumerate() {
            if let Err(e) = c.spec.validate() {
                errors.extend_prefixed(&format!("consumers[{i}]"), e);
            }
            if !ids.insert(c.id) {
                errors.push(format!("consumers[{i}].id"), "duplicate id");
            }
            if !names.insert(c.spec.username.as_str()) {
                errors.push(format!("consumers[{i}].username"), "duplicate username");
            }
        }
        let consumer_ids: HashSet<String> =
            self.consumers.iter().map(|c| c.id.to_string()).collect();
        let mut lookups = HashSet::new();
        for (i, c) in self.credentials.iter().enumerate() {
            let prefix = format!("credentials[{i}]");
            let kind = &c.spec.kind;
            if let Err(e) = kind.validate().and_then(|()| kind.check_sealed()) {
                errors.extend_prefixed(&prefix, e);
            }
            if !ids.insert(c.id) {
                errors.push(format!("{prefix}.id"), "duplicate id");
            }
            if !consumer_ids.contains(&c.spec.consumer) {
                errors.push(
                    format!("{prefix}.consumer"),
                    format!("refers to unknown consumer {}", c.spec.consumer),
                );
            }
            if let Some(lookup) = kind.lookup()
                && !lookups.insert((kind.type_name(), lookup))
            {
                errors.push(
                    prefix,
                    format!("another {} credential has the same key", kind.type_name()),
                );
            }
        }
    }

    fn validate_plugins(&self, ids: &mut HashSet<uuid::Uuid>, errors: &mut ValidationErrors) {
        let route_ids: HashSet<String> = self.routes.iter().map(|r| r.id.to_string()).collect();
        let consumer_ids: HashSet<String> =
            self.consumers.iter().map(|c| c.id.to_string()).collect();
        let mut scopes = HashSet::new();
        for (i, p) in self.plugins.iter().enumerate() {
            let prefix = format!("plugins[{i}]");
            if let Err(e) = p.spec.validate() {
                errors.extend_prefixed(&prefix, e);
            }
            if !ids.insert(p.id) {
                errors.push(format!("{prefix}.id"), "duplicate id");
            }
            for (field, value, known) in [
                ("route", &p.spec.route, &route_ids),
                ("consumer", &p.spec.consumer, &consumer_ids),
            ] {
                if let Some(v) = value
                    && !known.contains(v)
                {
                    errors.push(
                        format!("{prefix}.{field}"),
                        format!("refers to unknown {field} {v}"),
                    );
                }
            }
            if !scopes.insert((&p.spec.name, &p.spec.route, &p.spec.consumer)) {
                errors.push(
                    format!("{prefix}.name"),
                    "another plugin of this name has the same scope",
                );
            }
        }
    }

    fn validate_certificates(&self, ids: &mut HashSet<uuid::Uuid>, errors: &mut ValidationErrors) {
        let mut snis = HashSet::new();
        for (i, c) in self.certificates.iter().enumerate() {
            let prefix = format!("certificates[{i}]");
            if let Err(e) = c.spec.validate() {
                errors.extend_prefixed(&prefix, e);
            }
            if c.spec.key.is_none() {
                errors.push(
                    format!("{prefix}.key"),
                    "a stored certificate holds its key",
                );
            }
            if !ids.insert(c.id) {
                errors.push(format!("{prefix}.id"), "duplicate id");
            }
            for (j, sni) in c.spec.snis.iter().enumerate() {
                if !snis.insert(sni.as_str()) {
                    errors.push(
                        format!("{prefix}.snis[{j}]"),
                        "another certificate has this SNI",
                    );
                }
            }
        }
    }

    /// SHA-256 (hex) of the canonical protobuf encoding of the content. The
    /// version is not part of it: a rollback to old content hashes the same
    /// as the old version did.
    pub fn hash(&self) -> String {
        hash_config(&self.to_proto_config())
    }
}

/// Hashes a wire config the way [`Snapshot::hash`] does. Prost encodes fields
/// in tag order and the generated maps are `BTreeMap`s, so the encoding of
/// the same content is always the same bytes.
pub fn hash_config(config: &turnpike_proto::Config) -> String {
    hex::encode(Sha256::digest(config.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::{RouteSpec, UpstreamSpec};

    pub(crate) fn sample() -> Snapshot {
        let upstream = Upstream {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<UpstreamSpec>(serde_json::json!({
                "name": "users", "targets": [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:9002", "weight": 3}]
            }))
            .unwrap(),
        };
        let route = Route {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<RouteSpec>(serde_json::json!({
                "name": "users-api", "paths": ["/users"], "hosts": ["*.example.com"], "upstream": upstream.id.to_string()
            }))
            .unwrap(),
        };
        Snapshot::new(7, vec![upstream], vec![route])
    }

    #[test]
    fn valid_sample() {
        assert_eq!(sample().validate(), Ok(()));
    }

    #[test]
    fn dangling_upstream_and_duplicates_are_refused() {
        let mut s = sample();
        s.routes[0].spec.upstream = Uuid::now_v7().to_string();
        let mut dup = s.upstreams[0].clone();
        dup.id = Uuid::now_v7();
        s.upstreams.push(dup);
        let fields: Vec<String> = s
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["upstreams[1].name", "routes[0].upstream"]);
    }

    #[test]
    fn hash_depends_on_content_not_version_or_order() {
        let a = sample();
        let mut b = a.clone();
        b.version = 99;
        assert_eq!(a.hash(), b.hash());
        let c = Snapshot::new(1, a.upstreams.clone(), a.routes.clone());
        assert_eq!(a.hash(), c.hash());
        let mut d = a.clone();
        d.routes[0].spec.priority = 1;
        assert_ne!(a.hash(), d.hash());
    }

    #[test]
    fn wire_round_trip_keeps_content_and_checks_hash() {
        let a = sample();
        let wire = a.to_proto();
        let back = Snapshot::try_from(wire.clone()).unwrap();
        assert_eq!(a, back);
        let mut tampered = wire;
        tampered.config.as_mut().unwrap().routes[0].priority = 5;
        assert!(matches!(
            Snapshot::try_from(tampered),
            Err(crate::ModelError::HashMismatch { .. })
        ));
    }
}
