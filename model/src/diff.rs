//! What changed between two snapshots, entity by entity: the answer of the
//! diff API, of `turnpike config diff`, and of every import and rollback.
//!
//! Entities are matched by id (an upstream deleted and created again under
//! the same name is a removal and an addition). Field changes come from the
//! serde_json form of the specs, so they use the same paths as validation
//! errors (`targets[0].address`). Added and changed entries also carry the
//! whole new spec, which makes a diff enough to rebuild the newer snapshot
//! from the older one ([`ConfigDiff::apply`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    Certificate, CertificateSpec, Consumer, ConsumerSpec, Credential, CredentialSpec, Plugin,
    PluginSpec, Route, RouteSpec, Snapshot, Upstream, UpstreamSpec,
};

/// The change from one snapshot to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDiff {
    pub upstreams: KindDiff<UpstreamSpec>,
    pub routes: KindDiff<RouteSpec>,
    // `default`: a diff from a control plane without these kinds still parses.
    #[serde(default)]
    pub consumers: KindDiff<ConsumerSpec>,
    /// Named by their consumer's id; `name` is the key prefix, the
    /// basic-auth username or the JWT key.
    #[serde(default)]
    pub credentials: KindDiff<CredentialSpec>,
    /// `name` is the plugin's name, so several entries may share it.
    #[serde(default)]
    pub plugins: KindDiff<PluginSpec>,
    /// `name` is the first SNI.
    #[serde(default)]
    pub certificates: KindDiff<CertificateSpec>,
}

/// The changes to one kind of entity; each list sorted by name, then id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindDiff<S> {
    pub added: Vec<Added<S>>,
    pub removed: Vec<Removed>,
    pub changed: Vec<Changed<S>>,
}

// By hand: the derive would require `S: Default`, which specs are not.
impl<S> Default for KindDiff<S> {
    fn default() -> Self {
        KindDiff {
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added<S> {
    pub id: Uuid,
    pub name: String,
    pub spec: S,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed<S> {
    pub id: Uuid,
    /// The new name (a rename also shows as a `name` field change).
    pub name: String,
    pub fields: Vec<FieldChange>,
    /// The whole new spec, so the diff can be applied.
    pub spec: S,
}

/// One changed field. `field` is a path such as `targets[0].address`; a
/// list whose length changed is reported whole (`targets`), which reads
/// better than a run of per-index changes. A field absent on one side is
/// `null` there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
            && self.routes.is_empty()
            && self.consumers.is_empty()
            && self.credentials.is_empty()
            && self.plugins.is_empty()
            && self.certificates.is_empty()
    }

    /// Applies the diff to `base`: the result has `base`'s version and, when
    /// `base` is the snapshot the diff was computed from, the content of the
    /// other one.
    pub fn apply(&self, base: &Snapshot) -> Snapshot {
        let upstreams = self
            .upstreams
            .apply(base.upstreams.iter().map(|u| (u.id, &u.spec)))
            .into_iter()
            .map(|(id, spec)| Upstream { id, spec })
            .collect();
        let routes = self
            .routes
            .apply(base.routes.iter().map(|r| (r.id, &r.spec)))
            .into_iter()
            .map(|(id, spec)| Route { id, spec })
            .collect();
        let consumers = self
            .consumers
            .apply(base.consumers.iter().map(|c| (c.id, &c.spec)))
            .into_iter()
            .map(|(id, spec)| Consumer { id, spec })
            .collect();
        let credentials = self
            .credentials
            .apply(base.credentials.iter().map(|c| (c.id, &c.spec)))
            .into_iter()
            .map(|(id, spec)| Credential { id, spec })
            .collect();
        let plugins = self
            .plugins
            .apply(base.plugins.iter().map(|p| (p.id, &p.spec)))
            .into_iter()
            .map(|(id, spec)| Plugin { id, spec })
            .collect();
        let certificates = self
            .certificates
            .apply(base.certificates.iter().map(|c| (c.id, &c.spec)))
            .into_iter()
            .map(|(id, spec)| Certificate { id, spec })
            .collect();
        Snapshot {
            version: base.version,
            upstreams,
            routes,
            consumers,
            credentials,
            plugins,
            certificates,
        }
        .canonical()
    }
}

impl<S> KindDiff<S> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl<S: Clone + Serialize> KindDiff<S> {
    fn between<'a>(
        old: impl Iterator<Item = (Uuid, &'a S)>,
        new: impl Iterator<Item = (Uuid, &'a S)>,
        name: impl Fn(&S) -> &str,
    ) -> KindDiff<S>
    where
        S: 'a,
    {
        let old: std::collections::BTreeMap<Uuid, &S> = old.collect();
        let mut seen = std::collections::HashSet::new();
        let mut diff = KindDiff::default();
        for (id, spec) in new {
            seen.insert(id);
            match old.get(&id) {
                None => diff.added.push(Added {
                    id,
                    name: name(spec).to_owned(),
                    spec: spec.clone(),
                }),
                Some(before) => {
                    let fields = field_changes(&to_value(*before), &to_value(spec));
                    if !fields.is_empty() {
                        diff.changed.push(Changed {
                            id,
                            name: name(spec).to_owned(),
                            fields,
                            spec: spec.clone(),
                        });
                    }
                }
            }
        }
        for (id, spec) in old.into_iter().filter(|(id, _)| !seen.contains(id)) {
            diff.removed.push(Removed {
                id,
                name: name(spec).to_owned(),
            });
        }
        diff.added
            .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        diff.removed
            .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        diff.changed
            .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        diff
    }

    fn apply<'a>(&self, base: impl Iterator<Item = (Uuid, &'a S)>) -> Vec<(Uuid, S)>
    where
        S: 'a,
    {
        let mut out: std::collections::BTreeMap<Uuid, S> =
            base.map(|(id, s)| (id, s.clone())).collect();
        for r in &self.removed {
            out.remove(&r.id);
        }
        for c in &self.changed {
            out.insert(c.id, c.spec.clone());
        }
        for a in &self.added {
            out.insert(a.id, a.spec.clone());
        }
        out.into_iter().collect()
    }
}

impl Snapshot {
    /// What changes from `self` to `other`.
    pub fn diff(&self, other: &Snapshot) -> ConfigDiff {
        ConfigDiff {
            upstreams: KindDiff::between(
                self.upstreams.iter().map(|u| (u.id, &u.spec)),
                other.upstreams.iter().map(|u| (u.id, &u.spec)),
                |s| &s.name,
            ),
            routes: KindDiff::between(
                self.routes.iter().map(|r| (r.id, &r.spec)),
                other.routes.iter().map(|r| (r.id, &r.spec)),
                |s| &s.name,
            ),
            consumers: KindDiff::between(
                self.consumers.iter().map(|c| (c.id, &c.spec)),
                other.consumers.iter().map(|c| (c.id, &c.spec)),
                |s| &s.username,
            ),
            credentials: KindDiff::between(
                self.credentials.iter().map(|c| (c.id, &c.spec)),
                other.credentials.iter().map(|c| (c.id, &c.spec)),
                |s| s.kind.label(),
            ),
            plugins: KindDiff::between(
                self.plugins.iter().map(|p| (p.id, &p.spec)),
                other.plugins.iter().map(|p| (p.id, &p.spec)),
                |s| &s.name,
            ),
            certificates: KindDiff::between(
                self.certificates.iter().map(|c| (c.id, &c.spec)),
                other.certificates.iter().map(|c| (c.id, &c.spec)),
                |s| s.label(),
            ),
        }
    }
}

fn to_value<S: Serialize>(spec: &S) -> Value {
    // Specs are plain data (strings, numbers, lists, string-keyed structs),
    // which always serialize.
    serde_json::to_value(spec).expect("specs serialize to JSON")
}

/// Compares two JSON values recursively and lists what differs.
pub fn field_changes(from: &Value, to: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    compare(String::new(), from, to, &mut out);
    out
}

fn compare(path: String, from: &Value, to: &Value, out: &mut Vec<FieldChange>) {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let extra = b.keys().filter(|k| !a.contains_key(*k));
            for key in a.keys().chain(extra) {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                compare(
                    child,
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if from != to => out.push(FieldChange {
            field: path,
            from: from.clone(),
            to: to.clone(),
        }),
        _ => {}
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
