//! Turnpike's data plane: the proxy. It receives versioned snapshots from a
//! control plane (`config_client`), compiles them (`compile`) and swaps them
//! in whole; each request (`proxy`) loads one version, matches a route
//! (`router`), picks a target (`balancer`, skipping targets that `health`
//! checks took out) and streams through a pooled upstream client. `status`
//! serves health and readiness. `cache` keeps the last applied config on
//! disk and restores it at start, so a restart without a reachable control
//! plane still serves. With `--proxy-tls-listen`, `listener::tls`
//! terminates TLS with the config's certificates (`compile::certs`).
#![forbid(unsafe_code)]

pub mod balancer;
pub mod cache;
pub mod compile;
pub mod config_client;
pub mod error;
pub mod health;
pub mod listener;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod router;
pub mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
pub use error::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::compile::Compiled;

/// Settings of one data-plane process (flags of `turnpike data-plane`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub control_planes: Vec<String>,
    pub proxy_listen: SocketAddr,
    /// The TLS proxy listener; off when `None`.
    pub proxy_tls_listen: Option<SocketAddr>,
    pub status_listen: SocketAddr,
    pub cluster_token: String,
    pub node_id: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub labels: BTreeMap<String, String>,
    /// TLS to the control plane (required for `https://` addresses).
    pub cluster_tls: Option<config_client::ClusterTls>,
    /// Limits of the proxy listeners (`--max-connections`; the rest fixed).
    pub limits: listener::Limits,
    /// Request body limits (`--max-body-bytes`, `--body-read-timeout`).
    pub body_limits: proxy::body::BodyLimits,
    /// Where the access log goes (`--access-log`); off when `None`.
    pub access_log: Option<observe::access_log::Destination>,
    /// Redis for `rate-limit` plugins with `policy: redis` (`--redis-url`).
    pub redis_url: Option<String>,
    /// Per-request metrics (route counters, histograms); `--no-metrics`
    /// turns them off, `/metrics` keeps the gauges.
    pub metrics: bool,
}

/// State shared by the proxy, the status endpoints and the config client.
pub struct Shared {
    /// The config the request path runs; replaced whole, never edited.
    pub config: ArcSwap<Compiled>,
    pub connected: AtomicBool,
    pub draining: AtomicBool,
    pub node_id: String,
    pub labels: BTreeMap<String, String>,
    /// What outlives one config version: pools, parsed keys, target state,
    /// retry budgets, health checkers.
    pub registries: Arc<compile::Registries>,
    pub body_limits: proxy::body::BodyLimits,
    pub access_log: Option<Arc<observe::access_log::AccessLog>>,
    /// Whether requests are counted in the route stats (`--no-metrics`).
    pub metrics: bool,
    /// Open client connections per proxy listener.
    pub connections: listener::Connections,
    /// The disk cache (if `--cache-dir`) and where the config in use came from.
    pub cache: cache::Cache,
    /// How many configs arrived as snapshots and as deltas, for `/status`.
    pub stats: config_client::ConfigStats,
}

pub struct Running {
    pub proxy_addr: SocketAddr,
    pub proxy_tls_addr: Option<SocketAddr>,
    pub status_addr: SocketAddr,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds the listeners, starts the config client and serves until
/// `shutdown` turns true; then readiness turns 503 and connections drain.
pub async fn start(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<Running, Error> {
    if settings.control_planes.is_empty() {
        return Err(Error::ControlPlane(
            "at least one control-plane address is needed".into(),
        ));
    }
    if settings.cluster_tls.is_none()
        && let Some(url) = settings
            .control_planes
            .iter()
            .find(|u| u.starts_with("https://"))
    {
        return Err(Error::ControlPlane(format!(
            "{url} is https: give --cluster-ca, the CA that signed the control plane's certificate"
        )));
    }
    let node_id = node_id(&settings)?;
    let shared = Arc::new(Shared {
        config: ArcSwap::from_pointee(Compiled::empty()),
        connected: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        node_id,
        labels: settings.labels.clone(),
        registries: Arc::default(),
        body_limits: settings.body_limits,
        access_log: match &settings.access_log {
            Some(dest) => Some(Arc::new(observe::access_log::AccessLog::start(dest)?)),
            None => None,
        },
        metrics: settings.metrics,
        connections: listener::Connections::default(),
        cache: cache::Cache::new(settings.cache_dir.clone()),
        stats: Default::default(),
    });
    let proxy = TcpListener::bind(settings.proxy_listen).await?;
    let status = TcpListener::bind(settings.status_listen).await?;
    let proxy_addr = proxy.local_addr()?;
    let status_addr = status.local_addr()?;
    let proxy_tls = match settings.proxy_tls_listen {
        Some(addr) => {
            let config = listener::tls::server_config(Arc::new(listener::tls::SniResolver::new(
                shared.clone(),
            )))?;
            Some((TcpListener::bind(addr).await?, Arc::new(config)))
        }
        None => None,
    };
    let proxy_tls_addr = match &proxy_tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    tracing::info!(node_id = %shared.node_id, %proxy_addr, ?proxy_tls_addr, %status_addr, "data plane listening");
    // Rate limits (the Redis connection, pruning) before any config is
    // compiled: a redis rate limit needs the connection.
    policy::rate_limit::start(settings.redis_url.as_deref(), shutdown.clone())?;
    // Before the stream starts: the Hello then carries the cached version,
    // and a refused cache leaves the empty config, as without one.
    cache::restore(&shared).await;

    let client_settings = config_client::ClientSettings {
        control_planes: settings.control_planes.clone(),
        cluster_token: settings.cluster_token.clone(),
        tls: settings.cluster_tls.clone(),
    };
    let s = shared.clone();
    let task = tokio::spawn(async move {
        let mut stop = shutdown.clone();
        let client = tokio::spawn(config_client::run(
            s.clone(),
            client_settings,
            shutdown.clone(),
        ));
        let ps = s.clone();
        let proxy_task = tokio::spawn(listener::serve_with(
            proxy,
            settings.limits.clone(),
            s.connections.http.clone(),
            move |conn, req| proxy::handle(ps.clone(), conn, req),
            shutdown.clone(),
        ));
        let tls_task = proxy_tls.map(|(listener, config)| {
            let ps = s.clone();
            tokio::spawn(listener::tls::serve(
                listener,
                config,
                settings.limits.clone(),
                s.connections.https.clone(),
                move |conn, req| proxy::handle(ps.clone(), conn, req),
                shutdown.clone(),
            ))
        });
        // The status port stays up until the proxy has drained, so
        // orchestrators see readiness fall to 503 while requests finish.
        let (status_stop, status_shutdown) = watch::channel(false);
        let ss = s.clone();
        let status_task = tokio::spawn(listener::serve(
            status,
            move |conn, req| status::handle(ss.clone(), conn, req),
            status_shutdown,
        ));
        stopped(&mut stop).await;
        s.draining.store(true, Ordering::Relaxed);
        let _ = proxy_task.await;
        if let Some(t) = tls_task {
            let _ = t.await;
        }
        let _ = status_stop.send(true);
        let _ = status_task.await;
        client.abort();
        // The access log's last batch is written before the process ends.
        if let Some(log) = s.access_log.clone() {
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
        }
    });
    Ok(Running {
        proxy_addr,
        proxy_tls_addr,
        status_addr,
        shared,
        task,
    })
}

/// Resolves when `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The node id: given, or kept in the cache dir so it survives restarts, or
/// (without a cache dir) new for this process.
fn node_id(settings: &Settings) -> Result<String, Error> {
    if let Some(id) = &settings.node_id {
        return Ok(id.clone());
    }
    let Some(dir) = &settings.cache_dir else {
        return Ok(format!("dp-{}", uuid::Uuid::new_v4()));
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = format!("dp-{}", uuid::Uuid::new_v4());
            let tmp = dir.join("node-id.tmp");
            std::fs::write(&tmp, &id)?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
    }
}
