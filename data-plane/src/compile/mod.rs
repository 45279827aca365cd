//! Compilation of a validated snapshot into what the request path runs: the
//! route table, one balancer and client per upstream, the TLS certificates
//! by SNI (`certs`). Runs off the request path; the result is swapped in
//! whole.

pub mod certs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use turnpike_model::{Snapshot, upstream::parse_address};
use uuid::Uuid;

use crate::Error;
use crate::balancer::{CompiledTarget, RoundRobin};
use crate::compile::certs::{CompiledCertificates, KeyCache};
use crate::proxy::client::{ClientRegistry, UpstreamClient};
use crate::router::CompiledRouter;

#[derive(Debug)]
pub struct CompiledRoute {
    pub id: Uuid,
    pub name: String,
    /// Index into [`Compiled::upstreams`].
    pub upstream: usize,
    pub strip_path: bool,
    pub preserve_host: bool,
}

pub struct CompiledUpstream {
    pub id: Uuid,
    pub name: String,
    pub balancer: RoundRobin,
    pub client: Arc<UpstreamClient>,
    pub read_timeout: Duration,
}

/// One config version, ready to serve.
pub struct Compiled {
    pub version: u64,
    pub hash: String,
    /// The snapshot this was compiled from: a delta from the control plane
    /// applies to it. Kept here, not beside, so the two are swapped as one.
    pub snapshot: Arc<Snapshot>,
    pub router: CompiledRouter,
    pub routes: Vec<CompiledRoute>,
    pub upstreams: Vec<CompiledUpstream>,
    /// What the TLS listener serves, by SNI; swapped with the routes.
    pub certificates: CompiledCertificates,
}

impl Compiled {
    /// The state before any config arrived: matches nothing.
    pub fn empty() -> Compiled {
        Compiled {
            version: 0,
            hash: String::new(),
            snapshot: Arc::default(),
            router: CompiledRouter::default(),
            routes: Vec::new(),
            upstreams: Vec::new(),
            certificates: CompiledCertificates::default(),
        }
    }

    pub fn build(
        snapshot: &Snapshot,
        hash: String,
        clients: &ClientRegistry,
        keys: &KeyCache,
    ) -> Result<Compiled, Error> {
        let mut upstreams = Vec::with_capacity(snapshot.upstreams.len());
        for u in &snapshot.upstreams {
            let targets = u
                .spec
                .targets
                .iter()
                .filter(|t| t.weight > 0)
                .map(|t| {
                    parse_address(&t.address)
                        .map(|authority| CompiledTarget { authority })
                        .map_err(|e| {
                            Error::Compile(format!(
                                "upstream {}: target {}: {e}",
                                u.spec.name, t.address
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            upstreams.push(CompiledUpstream {
                id: u.id,
                name: u.spec.name.clone(),
                balancer: RoundRobin::new(targets),
                client: clients.get(u.id, u.spec.timeouts.connect_ms),
                read_timeout: Duration::from_millis(u64::from(u.spec.timeouts.read_ms)),
            });
        }
        let by_id: HashMap<String, usize> = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.to_string(), i))
            .collect();
        let routes = snapshot
            .routes
            .iter()
            .map(|r| {
                let upstream = *by_id.get(&r.spec.upstream).ok_or_else(|| {
                    Error::Compile(format!(
                        "route {}: unknown upstream {}",
                        r.spec.name, r.spec.upstream
                    ))
                })?;
                Ok(CompiledRoute {
                    id: r.id,
                    name: r.spec.name.clone(),
                    upstream,
                    strip_path: r.spec.strip_path,
                    preserve_host: r.spec.preserve_host,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let router =
            CompiledRouter::build(&snapshot.routes).map_err(|e| Error::Compile(e.to_string()))?;
        let certificates = CompiledCertificates::build(&snapshot.certificates, keys)?;
        Ok(Compiled {
            version: snapshot.version,
            hash,
            snapshot: Arc::new(snapshot.clone()),
            router,
            routes,
            upstreams,
            certificates,
        })
    }
}
