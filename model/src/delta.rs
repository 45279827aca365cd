//! Deltas: the change from one snapshot to a newer one in the shape the
//! config stream sends it (entities new or changed, whole; the ids of those
//! removed; the target's hash), so a one-route change in a large config
//! moves one route, not the config.
//!
//! The control plane computes one with [`Delta::between`]; the data plane
//! applies it to the snapshot it runs with [`Delta::apply`], which checks
//! the result against the hash and validates it before anything compiles
//! it. Unlike [`crate::ConfigDiff`] (for people: names and field paths), a
//! delta carries only what a machine needs to rebuild the target.

use std::collections::{HashMap, HashSet};

use turnpike_proto as proto;
use uuid::Uuid;

use crate::{Consumer, Credential, ModelError, Snapshot};

/// The change from the snapshot at `base_version` to the one at `version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub base_version: u64,
    pub version: u64,
    /// [`Snapshot::hash`] of the whole config at `version`.
    pub hash: String,
    /// Entities new or changed since `base_version`, whole. A consumer is
    /// here when it or any of its credentials changed, with all of its
    /// credentials: the wire nests credentials in their consumer, so
    /// `upserts.credentials` are exactly those of `upserts.consumers`.
    pub upserts: Snapshot,
    pub removed: Removed,
}

/// Ids of the entities gone since the base, per kind. Credentials have no
/// list: a consumer's credentials go with it, or are replaced whole when it
/// is upserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub upstreams: Vec<Uuid>,
    pub routes: Vec<Uuid>,
    pub consumers: Vec<Uuid>,
    pub plugins: Vec<Uuid>,
    pub certificates: Vec<Uuid>,
}

impl Delta {
    /// What turns `base` into `target`.
    pub fn between(base: &Snapshot, target: &Snapshot) -> Delta {
        let mut upserts = Snapshot {
            version: target.version,
            ..Snapshot::default()
        };
        let mut removed = Removed::default();
        (upserts.upstreams, removed.upstreams) =
            changes(&base.upstreams, &target.upstreams, |u| u.id);
        (upserts.routes, removed.routes) = changes(&base.routes, &target.routes, |r| r.id);
        (upserts.plugins, removed.plugins) = changes(&base.plugins, &target.plugins, |p| p.id);
        (upserts.certificates, removed.certificates) =
            changes(&base.certificates, &target.certificates, |c| c.id);
        (upserts.consumers, upserts.credentials, removed.consumers) =
            consumer_changes(base, target);
        Delta {
            base_version: base.version,
            version: target.version,
            hash: target.hash(),
            // Credentials were gathered consumer by consumer.
            upserts: upserts.canonical(),
            removed,
        }
    }

    /// True when the target has the base's content.
    pub fn is_empty(&self) -> bool {
        let u = &self.upserts;
        let r = &self.removed;
        u.upstreams.is_empty()
            && u.routes.is_empty()
            && u.consumers.is_empty()
            && u.credentials.is_empty()
            && u.plugins.is_empty()
            && u.certificates.is_empty()
            && r.upstreams.is_empty()
            && r.routes.is_empty()
            && r.consumers.is_empty()
            && r.plugins.is_empty()
            && r.certificates.is_empty()
    }

    /// The target snapshot, checked: `base` must be the version the delta
    /// was computed from, the result must hash to [`Delta::hash`] (so a
    /// data plane never runs a half-applied or misapplied delta), and it
    /// must validate like any decoded snapshot.
    pub fn apply(&self, base: &Snapshot) -> Result<Snapshot, ModelError> {
        if base.version != self.base_version {
            return Err(ModelError::DeltaBase {
                base: self.base_version,
                held: base.version,
            });
        }
        let target = self.patch(base);
        let actual = target.hash();
        if actual != self.hash {
            return Err(ModelError::HashMismatch {
                expected: self.hash.clone(),
                actual,
            });
        }
        target.validate()?;
        Ok(target)
    }

    /// `base` with the removals and upserts applied, at `version`; no
    /// checks (see [`Delta::apply`]).
    pub fn patch(&self, base: &Snapshot) -> Snapshot {
        let u = &self.upserts;
        let r = &self.removed;
        // Credentials of a removed or upserted consumer go; the upserted
        // consumers bring theirs back.
        let replaced: HashSet<String> = r
            .consumers
            .iter()
            .chain(u.consumers.iter().map(|c| &c.id))
            .map(Uuid::to_string)
            .collect();
        let mut credentials: Vec<Credential> = base
            .credentials
            .iter()
            .filter(|c| !replaced.contains(&c.spec.consumer))
            .cloned()
            .collect();
        credentials.extend(u.credentials.iter().cloned());
        Snapshot {
            version: self.version,
            upstreams: merge(&base.upstreams, &u.upstreams, &r.upstreams, |x| x.id),
            routes: merge(&base.routes, &u.routes, &r.routes, |x| x.id),
            consumers: merge(&base.consumers, &u.consumers, &r.consumers, |x| x.id),
            credentials,
            plugins: merge(&base.plugins, &u.plugins, &r.plugins, |x| x.id),
            certificates: merge(&base.certificates, &u.certificates, &r.certificates, |x| {
                x.id
            }),
        }
        // Kept entities stay in order and new ones are appended, so this
        // sort has little to do.
        .canonical()
    }

    pub fn to_proto(&self) -> proto::Delta {
        let ids = |v: &[Uuid]| v.iter().map(Uuid::to_string).collect();
        let r = &self.removed;
        proto::Delta {
            from_version: self.base_version,
            to_version: self.version,
            hash: self.hash.clone(),
            upserts: Some(self.upserts.to_proto_config()),
            removals: Some(proto::Removals {
                upstreams: ids(&r.upstreams),
                routes: ids(&r.routes),
                consumers: ids(&r.consumers),
                plugins: ids(&r.plugins),
                certificates: ids(&r.certificates),
            }),
        }
    }
}

impl TryFrom<proto::Delta> for Delta {
    type Error = ModelError;

    /// Reads the ids and entities; whether they make a valid config is
    /// [`Delta::apply`]'s question.
    fn try_from(wire: proto::Delta) -> Result<Delta, ModelError> {
        let r = wire.removals.unwrap_or_default();
        let ids = |kind: &str, raw: Vec<String>| -> Result<Vec<Uuid>, ModelError> {
            raw.iter()
                .enumerate()
                .map(|(i, s)| {
                    Uuid::parse_str(s).map_err(|_| {
                        ModelError::wire(format!("removals.{kind}[{i}]"), "not a UUID")
                    })
                })
                .collect()
        };
        Ok(Delta {
            base_version: wire.from_version,
            version: wire.to_version,
            upserts: Snapshot::from_proto_config(
                wire.to_version,
                wire.upserts.unwrap_or_default(),
            )?,
            hash: wire.hash,
            removed: Removed {
                upstreams: ids("upstreams", r.upstreams)?,
                routes: ids("routes", r.routes)?,
                consumers: ids("consumers", r.consumers)?,
                plugins: ids("plugins", r.plugins)?,
                certificates: ids("certificates", r.certificates)?,
            },
        })
    }
}

/// The entities of `target` that are new or differ from `base`, and the
/// ids of those of `base` that `target` lacks.
fn changes<T: Clone + PartialEq>(
    base: &[T],
    target: &[T],
    id: impl Fn(&T) -> Uuid,
) -> (Vec<T>, Vec<Uuid>) {
    let old: HashMap<Uuid, &T> = base.iter().map(|e| (id(e), e)).collect();
    let upserts = target
        .iter()
        .filter(|e| old.get(&id(e)) != Some(e))
        .cloned()
        .collect();
    let kept: HashSet<Uuid> = target.iter().map(&id).collect();
    let removed = base.iter().map(&id).filter(|i| !kept.contains(i)).collect();
    (upserts, removed)
}

/// Consumers compare with their credentials: a consumer is upserted (with
/// all its credentials) when its spec or any credential changed.
fn consumer_changes(
    base: &Snapshot,
    target: &Snapshot,
) -> (Vec<Consumer>, Vec<Credential>, Vec<Uuid>) {
    let old_creds = by_consumer(&base.credentials);
    let new_creds = by_consumer(&target.credentials);
    let old: HashMap<Uuid, &Consumer> = base.consumers.iter().map(|c| (c.id, c)).collect();
    let mut consumers = Vec::new();
    let mut credentials = Vec::new();
    for c in &target.consumers {
        let key = c.id.to_string();
        let creds = new_creds.get(&key);
        if old.get(&c.id) == Some(&c) && old_creds.get(&key) == creds {
            continue;
        }
        consumers.push(c.clone());
        credentials.extend(creds.into_iter().flatten().map(|cr| (*cr).clone()));
    }
    let kept: HashSet<Uuid> = target.consumers.iter().map(|c| c.id).collect();
    let removed = base
        .consumers
        .iter()
        .map(|c| c.id)
        .filter(|i| !kept.contains(i))
        .collect();
    (consumers, credentials, removed)
}

/// Credentials grouped by their consumer's id, each group in id order.
fn by_consumer(credentials: &[Credential]) -> HashMap<String, Vec<&Credential>> {
    let mut out: HashMap<String, Vec<&Credential>> = HashMap::new();
    for c in credentials {
        out.entry(c.spec.consumer.clone()).or_default().push(c);
    }
    for group in out.values_mut() {
        group.sort_by_key(|c| c.id);
    }
    out
}

/// `base` without the removed and upserted ids, then the upserts.
fn merge<T: Clone>(base: &[T], upserts: &[T], removed: &[Uuid], id: impl Fn(&T) -> Uuid) -> Vec<T> {
    let gone: HashSet<Uuid> = removed
        .iter()
        .copied()
        .chain(upserts.iter().map(&id))
        .collect();
    base.iter()
        .filter(|e| !gone.contains(&id(e)))
        .chain(upserts)
        .cloned()
        .collect()
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
