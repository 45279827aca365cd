//! Conversion between the domain types and the wire types of the config
//! stream. Wire types stay at the edge: a `proto::Snapshot` becomes a
//! [`Snapshot`] only after its hash matches and it validates.

use turnpike_proto as proto;
use uuid::Uuid;

use crate::snapshot::hash_config;
use crate::wire_policy;
use crate::{ModelError, Route, RouteSpec, Snapshot, Upstream, wire_upstream};

impl Snapshot {
    pub fn to_proto_config(&self) -> proto::Config {
        proto::Config {
            upstreams: self.upstreams.iter().map(wire_upstream::to_proto).collect(),
            routes: self.routes.iter().map(route_to_proto).collect(),
            consumers: wire_policy::consumers_to_proto(self),
            plugins: wire_policy::plugins_to_proto(self),
            certificates: wire_policy::certificates_to_proto(self),
        }
    }

    pub fn to_proto(&self) -> proto::Snapshot {
        let config = self.to_proto_config();
        proto::Snapshot {
            version: self.version,
            hash: hash_config(&config),
            config: Some(config),
            secrets: None,
        }
    }
}

fn route_to_proto(r: &Route) -> proto::Route {
    let s = &r.spec;
    proto::Route {
        id: r.id.to_string(),
        name: s.name.clone(),
        hosts: s.hosts.clone(),
        paths: s.paths.clone(),
        methods: s.methods.clone(),
        priority: s.priority,
        upstream: s.upstream.clone(),
        strip_path: s.strip_path,
        preserve_host: s.preserve_host,
        tags: s.tags.clone(),
        headers: s
            .headers
            .iter()
            .map(|(name, values)| proto::HeaderMatch {
                name: name.clone(),
                values: values.clone(),
            })
            .collect(),
    }
}

fn parse_id(field: String, raw: &str) -> Result<Uuid, ModelError> {
    Uuid::parse_str(raw).map_err(|_| ModelError::wire(field, "not a UUID"))
}

impl Snapshot {
    /// Any wire snapshot whose hash matches its content and that validates,
    /// whatever entities it holds: how the control plane reads its history.
    /// Data planes go through `TryFrom`, which also refuses what they cannot
    /// enforce.
    pub fn decode(wire: proto::Snapshot) -> Result<Snapshot, ModelError> {
        let config = wire.config.unwrap_or_default();
        let actual = hash_config(&config);
        if actual != wire.hash {
            return Err(ModelError::HashMismatch {
                expected: wire.hash,
                actual,
            });
        }
        let snapshot = Snapshot::from_proto_config(wire.version, config)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// The entities of a wire config, in canonical order, neither hashed
    /// nor validated: the shared part of [`Snapshot::decode`] and of reading
    /// a delta's upserts (which are not a whole config).
    pub(crate) fn from_proto_config(
        version: u64,
        mut config: proto::Config,
    ) -> Result<Snapshot, ModelError> {
        let policies = wire_policy::policies_from_proto(&mut config)?;
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (i, u) in config.upstreams.into_iter().enumerate() {
            upstreams.push(Upstream {
                id: parse_id(format!("upstreams[{i}].id"), &u.id)?,
                spec: wire_upstream::spec_from_proto(i, u)?,
            });
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.into_iter().enumerate() {
            routes.push(Route {
                id: parse_id(format!("routes[{i}].id"), &r.id)?,
                spec: RouteSpec {
                    name: r.name,
                    hosts: r.hosts,
                    paths: r.paths,
                    methods: r.methods,
                    priority: r.priority,
                    upstream: r.upstream,
                    strip_path: r.strip_path,
                    preserve_host: r.preserve_host,
                    tags: r.tags,
                    headers: r.headers.into_iter().map(|h| (h.name, h.values)).collect(),
                },
            });
        }
        Ok(Snapshot {
            version,
            upstreams,
            routes,
            consumers: policies.consumers,
            credentials: policies.credentials,
            plugins: policies.plugins,
            certificates: policies.certificates,
        }
        .canonical())
    }

    /// Refuses what a data plane cannot enforce: an enabled plugin whose
    /// name is not in `supported`. It must refuse such a config rather than
    /// serve it without the policy. Consumers, credentials, certificates and
    /// disabled plugins are inert data until a plugin or listener uses them.
    pub fn check_enforceable(&self, supported: &[&str]) -> Result<(), ModelError> {
        match self
            .plugins
            .iter()
            .find(|p| p.spec.enabled && !supported.contains(&p.spec.name.as_str()))
        {
            Some(p) => Err(ModelError::UnsupportedPlugin(p.spec.name.clone())),
            None => Ok(()),
        }
    }
}

impl TryFrom<proto::Snapshot> for Snapshot {
    type Error = ModelError;

    /// The data plane's door: [`Snapshot::decode`]. What it can enforce
    /// is checked when it compiles the snapshot
    /// ([`Snapshot::check_enforceable`]).
    fn try_from(wire: proto::Snapshot) -> Result<Snapshot, ModelError> {
        Snapshot::decode(wire)
    }
}
