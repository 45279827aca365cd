//! The whole config at one version: immutable, validated as a unit, and
//! content-hashed so control plane and data plane can tell they agree.

use std::collections::HashSet;

use prost::Message;
use sha2::{Digest, Sha256};

use crate::{Route, Upstream, ValidationErrors};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    /// Sorted by id.
    pub upstreams: Vec<Upstream>,
    /// Sorted by id.
    pub routes: Vec<Route>,
}

impl Snapshot {
    /// Builds a snapshot in canonical order (entities sorted by id).
    pub fn new(version: u64, mut upstreams: Vec<Upstream>, mut routes: Vec<Route>) -> Snapshot {
        upstreams.sort_by_key(|u| u.id);
        routes.sort_by_key(|r| r.id);
        Snapshot {
            version,
            upstreams,
            routes,
        }
    }

    /// Checks every entity and every reference between them, the way
    /// go-control-plane's `Consistent()` does, before a version is published
    /// or applied.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            if let Err(e) = u.spec.validate() {
                errors.extend_prefixed(&format!("upstreams[{i}]"), e);
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
        errors.into_result()
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
