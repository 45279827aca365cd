//! Compilation of a validated snapshot into what the request path runs: the
//! route table, one balancer and client per upstream, the TLS certificates
//! by SNI (`certs`). Runs off the request path; the result is swapped in
//! whole.

pub mod balancers;
pub mod certs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use turnpike_model::{Certificate, Snapshot, Upstream, upstream::parse_address};
use uuid::Uuid;

use crate::Error;
use crate::balancer::state::TargetStates;
use crate::balancer::{CompiledBalancer, CompiledTarget};
use crate::compile::certs::{CompiledCertificates, KeyCache};
use crate::health::HealthRegistry;
use crate::health::active::{ActiveChecker, ProbeFn};
use crate::health::passive::PassiveChecker;
use crate::policy::{self, CompiledConsumers, CompiledPolicies};
use crate::proxy::breaker::{Load, Loads};
use crate::proxy::client::{ClientRegistry, UpstreamClient};
use crate::proxy::connector::ClientCert;
use crate::proxy::retry::{RetryBudget, RetryBudgets};
use crate::router::CompiledRouter;

/// What outlives a config version, so a reload keeps it where the config
/// did not change it: connection pools, parsed TLS keys, what was learnt
/// about each target, retry budgets, running health checks.
#[derive(Default)]
pub struct Registries {
    pub clients: ClientRegistry,
    pub balancers: balancers::BalancerCache,
    pub keys: KeyCache,
    pub targets: TargetStates,
    pub budgets: RetryBudgets,
    pub loads: Loads,
    pub route_stats: crate::observe::stats::RouteStatsRegistry,
    pub health: HealthRegistry,
}

#[derive(Debug)]
pub struct CompiledRoute {
    pub id: Uuid,
    /// The id as text, for policies keyed by route.
    pub id_text: String,
    /// Request counters and latency, kept across versions by route id.
    pub stats: Arc<crate::observe::stats::RouteStats>,
    pub name: String,
    /// Index into [`Compiled::upstreams`].
    pub upstream: usize,
    pub strip_path: bool,
    pub preserve_host: bool,
}

pub struct CompiledUpstream {
    pub id: Uuid,
    pub name: String,
    /// Shared with earlier versions that had the same balancing inputs.
    pub balancer: Arc<CompiledBalancer>,
    pub client: Arc<UpstreamClient>,
    /// `https` when the upstream sets `tls`.
    pub scheme: Scheme,
    pub read_timeout: Duration,
    pub retries: u32,
    pub budget: Arc<RetryBudget>,
    /// The circuit breaker's caps (`None`: none) and counts.
    pub breaker: Option<turnpike_model::CircuitBreaker>,
    pub load: Arc<Load>,
    pub passive: Option<PassiveChecker>,
    /// Keeps the upstream's probes running while this config is alive.
    pub active: Option<Arc<ActiveChecker>>,
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
    /// Sent beside the snapshot (the key-auth pepper); kept across deltas.
    pub secrets: Arc<turnpike_proto::ClusterSecrets>,
    /// Consumers and credentials, for the authentication policies.
    pub consumers: CompiledConsumers,
    /// The policies of each route (index-aligned with `routes`).
    pub policies: CompiledPolicies,
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
            secrets: Arc::default(),
            consumers: CompiledConsumers::default(),
            policies: CompiledPolicies::default(),
        }
    }

    pub fn build(
        snapshot: &Snapshot,
        hash: String,
        secrets: Arc<turnpike_proto::ClusterSecrets>,
        registries: &Registries,
    ) -> Result<Compiled, Error> {
        let certificates: HashMap<Uuid, &Certificate> =
            snapshot.certificates.iter().map(|c| (c.id, c)).collect();
        let upstreams = snapshot
            .upstreams
            .iter()
            .map(|u| CompiledUpstream::build(u, &certificates, registries))
            .collect::<Result<Vec<_>, Error>>()?;
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
                    id_text: r.id.to_string(),
                    stats: registries.route_stats.get(r.id),
                    name: r.spec.name.clone(),
                    upstream,
                    strip_path: r.spec.strip_path,
                    preserve_host: r.spec.preserve_host,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let router =
            CompiledRouter::build(&snapshot.routes).map_err(|e| Error::Compile(e.to_string()))?;
        let certificates = CompiledCertificates::build(&snapshot.certificates, &registries.keys)?;
        snapshot.check_enforceable(policy::SUPPORTED)?;
        let consumers = CompiledConsumers::build(snapshot, &secrets.key_auth_pepper)?;
        if !consumers.has_pepper()
            && snapshot
                .plugins
                .iter()
                .any(|p| p.spec.enabled && p.spec.name == "key-auth")
        {
            return Err(Error::Compile(
                "key-auth is enabled but the control plane sent no key-auth pepper".into(),
            ));
        }
        let route_index: HashMap<String, usize> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id_text.clone(), i))
            .collect();
        let policies = CompiledPolicies::build(snapshot, &route_index, routes.len())?;
        Ok(Compiled {
            version: snapshot.version,
            hash,
            snapshot: Arc::new(snapshot.clone()),
            router,
            routes,
            upstreams,
            certificates,
            secrets,
            consumers,
            policies,
        })
    }
}

impl CompiledUpstream {
    fn build(
        u: &Upstream,
        certificates: &HashMap<Uuid, &Certificate>,
        registries: &Registries,
    ) -> Result<CompiledUpstream, Error> {
        let spec = &u.spec;
        // Addresses were checked when the snapshot was validated; a bad one
        // here means a snapshot that skipped validation.
        if let Some(t) = spec
            .targets
            .iter()
            .find(|t| parse_address(&t.address).is_err())
        {
            return Err(Error::Compile(format!(
                "upstream {}: target {}: not host:port",
                spec.name, t.address
            )));
        }
        let balancer = registries.balancers.get(u.id, spec, || {
            spec.targets
                .iter()
                .filter(|t| t.weight > 0)
                .filter_map(|t| {
                    let authority = parse_address(&t.address).ok()?;
                    Some(CompiledTarget {
                        state: registries.targets.get(u.id, authority.as_str()),
                        authority,
                        weight: t.weight,
                    })
                })
                .collect()
        });
        let targets = balancer.targets();
        let client = registries
            .clients
            .get(u.id, spec, client_cert(u, certificates)?)
            .map_err(|e| match e {
                Error::Compile(m) => Error::Compile(format!("upstream {}: {m}", spec.name)),
                other => other,
            })?;
        let scheme = if spec.tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let passive =
            spec.health_checks.passive.as_ref().map(|cfg| {
                PassiveChecker::new(cfg, targets.iter().map(|t| t.state.clone()).collect())
            });
        let active = spec.health_checks.active.as_ref().map(|cfg| {
            let probe = probe_fn(client.clone(), scheme.clone());
            let probed = targets
                .iter()
                .map(|t| (t.authority.clone(), t.state.clone()))
                .collect();
            registries
                .health
                .active(u.id, &spec.name, cfg, probed, probe)
        });
        Ok(CompiledUpstream {
            id: u.id,
            name: spec.name.clone(),
            balancer,
            client,
            scheme,
            read_timeout: Duration::from_millis(u64::from(spec.timeouts.read_ms)),
            retries: spec.retries,
            budget: registries.budgets.get(u.id),
            breaker: spec.circuit_breaker,
            load: registries.loads.get(u.id),
            passive,
            active,
        })
    }
}

/// The certificate an upstream's `tls.client_certificate` names, from the
/// same snapshot. One that is missing or without its key refuses the
/// config (a validated snapshot has neither): connecting without it would
/// only fail later, at each target's handshake.
fn client_cert(
    u: &Upstream,
    certificates: &HashMap<Uuid, &Certificate>,
) -> Result<Option<ClientCert>, Error> {
    let Some(id) = u.spec.tls.as_ref().and_then(|t| t.client_certificate) else {
        return Ok(None);
    };
    let refused = |what: &str| {
        Error::Compile(format!(
            "upstream {}: tls.client_certificate {id}: {what}",
            u.spec.name
        ))
    };
    let c = certificates
        .get(&id)
        .ok_or_else(|| refused("no such certificate in the snapshot"))?;
    let key = c.spec.key.clone();
    let key = key.ok_or_else(|| refused("the snapshot does not carry its key"))?;
    Ok(Some(ClientCert {
        cert: c.spec.cert.clone(),
        key,
    }))
}

/// A probe's answer body read to keep its connection; larger ones retire it.
const PROBE_BODY_MAX: usize = 64 * 1024;

/// Probes go through the upstream's own pool, so they speak its protocol
/// and TLS and see what requests see.
fn probe_fn(client: Arc<UpstreamClient>, scheme: Scheme) -> ProbeFn {
    Arc::new(move |authority, path| {
        let client = client.clone();
        let uri = http::Uri::builder()
            .scheme(scheme.clone())
            .authority(authority)
            .path_and_query(path)
            .build();
        Box::pin(async move {
            let uri = uri.map_err(|e| e.to_string())?;
            let req = http::Request::get(uri)
                .header(http::header::USER_AGENT, "turnpike-health-check")
                .body(crate::proxy::client::empty())
                .map_err(|e| e.to_string())?;
            // Bounded by the checker's own timeout.
            let resp = client.send(req, None).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read (bounded) so the connection can serve the next probe:
            // read to its end, it goes back to the pool.
            let body = http_body_util::Limited::new(resp.into_body(), PROBE_BODY_MAX);
            let _ = http_body_util::BodyExt::collect(body).await;
            Ok(status)
        })
    })
}

#[cfg(test)]
#[path = "client_cert_tests.rs"]
mod client_cert_tests;
