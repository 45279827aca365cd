//! The data plane's command line, shared by `turnpike data-plane` and the
//! `turnpike-data-plane` binary (the data plane alone, without the control
//! plane's code mapped: a smaller footprint on every proxy host).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::common::{self, UsageError, read_pem};

#[derive(clap::Args)]
pub struct DataPlaneArgs {
    /// Control-plane cluster address(es), comma-separated; tried in turn.
    #[arg(
        long,
        env = "TURNPIKE_CONTROL_PLANE",
        default_value = "http://127.0.0.1:8005",
        value_delimiter = ','
    )]
    control_plane: Vec<String>,
    #[arg(long, env = "TURNPIKE_PROXY_LISTEN", default_value = "0.0.0.0:8000")]
    proxy_listen: SocketAddr,
    /// HTTPS proxy listener (e.g. 0.0.0.0:8443), serving the config's
    /// certificates by SNI; off unless set.
    #[arg(long, env = "TURNPIKE_PROXY_TLS_LISTEN")]
    proxy_tls_listen: Option<SocketAddr>,
    #[arg(long, env = "TURNPIKE_STATUS_LISTEN", default_value = "127.0.0.1:8100")]
    status_listen: SocketAddr,
    #[arg(long, env = "TURNPIKE_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: String,
    /// Stable node id; by default one is kept in the cache dir.
    #[arg(long, env = "TURNPIKE_NODE_ID")]
    node_id: Option<String>,
    /// Keeps the node id and the last applied config, which is served at
    /// start (marked stale) when no control plane is reachable.
    #[arg(long, env = "TURNPIKE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Labels reported to the control plane, as key=value, comma-separated.
    #[arg(long, env = "TURNPIKE_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// PEM CA that signed the control plane's certificate; needed for https:// addresses.
    #[arg(long, env = "TURNPIKE_CLUSTER_CA")]
    cluster_ca: Option<PathBuf>,
    /// PEM certificate chain this data plane presents to the control plane (mTLS).
    #[arg(
        long,
        env = "TURNPIKE_CLUSTER_TLS_CERT",
        requires_all = ["cluster_tls_key", "cluster_ca"]
    )]
    cluster_tls_cert: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "TURNPIKE_CLUSTER_TLS_KEY", requires = "cluster_tls_cert")]
    cluster_tls_key: Option<PathBuf>,
    /// Threads of the proxy's runtime; one per core by default. With 1,
    /// everything runs on the main thread (a current-thread runtime).
    #[arg(long, env = "TURNPIKE_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Open client connections per proxy listener; past it, new ones get a
    /// 503 and are closed at once (keep it below the file-descriptor limit).
    #[arg(
        long,
        env = "TURNPIKE_MAX_CONNECTIONS",
        default_value_t = turnpike_data_plane::listener::limits::MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_connections: usize,
    /// Largest request body the proxy forwards, in bytes; a larger one is
    /// answered 413 (refused before forwarding when Content-Length says
    /// so). No limit when unset.
    #[arg(
        long,
        env = "TURNPIKE_MAX_BODY_BYTES",
        value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..)
    )]
    max_body_bytes: Option<u64>,
    /// Longest pause allowed while a client sends its request body (whole
    /// seconds or a duration like `500ms`); past it the request gets 408.
    #[arg(long, env = "TURNPIKE_BODY_READ_TIMEOUT", default_value = "60s", value_parser = common::parse_duration)]
    body_read_timeout: std::time::Duration,
    /// Access log, one JSON line per request: `stdout` or a file path
    /// (appended). Off when unset.
    #[arg(long, env = "TURNPIKE_ACCESS_LOG")]
    access_log: Option<turnpike_data_plane::observe::access_log::Destination>,
    /// OpenTelemetry collector (OTLP/gRPC, e.g. `http://127.0.0.1:4317`):
    /// the request, policy and upstream spans are exported to it. Off
    /// when unset. Only in builds with the `otel` feature.
    #[cfg(feature = "otel")]
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Redis shared by the data planes for `rate-limit` plugins with
    /// `policy: redis` (`redis://[user:password@]host:port[/db]`).
    #[arg(long, env = "TURNPIKE_REDIS_URL", hide_env_values = true, value_parser = common::parse_redis_url)]
    redis_url: Option<String>,
    /// Do not count requests in the per-route metrics (answers, latency
    /// histograms, bytes out): for overhead measurements and operators who
    /// scrape nothing. /metrics still answers, with the gauges.
    #[arg(long, env = "TURNPIKE_NO_METRICS")]
    no_metrics: bool,
}

/// Runs a data plane until SIGTERM or SIGINT: crypto provider, span export
/// (feature `otel`), logging, the runtime; returns the exit code.
pub fn main(args: DataPlaneArgs, log_format: &str) -> ExitCode {
    // First, while this is the only thread: it may start the process again.
    crate::malloc::tune();
    common::install_crypto_provider();
    // The span export is a layer of the log's subscriber, so it comes
    // first; `_export` flushes it at exit.
    #[cfg(feature = "otel")]
    let (export, _export) = match otel_export(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("turnpike: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(not(feature = "otel"))]
    let export = None;
    common::init_logging(log_format, export);
    common::exit_code(common::runtime(args.worker_threads).and_then(|rt| rt.block_on(run(args))))
}

/// `--otlp-endpoint`: the export layer and the handle that flushes it.
#[cfg(feature = "otel")]
fn otel_export(
    args: &DataPlaneArgs,
) -> Result<
    (
        Option<common::ExportLayer>,
        Option<turnpike_data_plane::observe::otel::Export>,
    ),
    turnpike_data_plane::Error,
> {
    use tracing_subscriber::Layer as _;
    let Some(endpoint) = args.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return Ok((None, None));
    };
    let (layer, export) = turnpike_data_plane::observe::otel::otlp::<common::Logs>(endpoint)?;
    Ok((Some(layer.boxed()), Some(export)))
}

async fn run(args: DataPlaneArgs) -> anyhow::Result<()> {
    let mut labels = BTreeMap::new();
    for l in args.labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| UsageError(format!("label '{l}' must be key=value")))?;
        labels.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if args.cluster_token.is_empty() {
        return Err(UsageError("--cluster-token must not be empty".into()).into());
    }
    let settings = turnpike_data_plane::Settings {
        control_planes: args.control_plane,
        proxy_listen: args.proxy_listen,
        proxy_tls_listen: args.proxy_tls_listen,
        limits: turnpike_data_plane::listener::Limits {
            max_connections: args.max_connections,
            ..Default::default()
        },
        body_limits: turnpike_data_plane::proxy::body::BodyLimits {
            max_bytes: args.max_body_bytes,
            read_timeout: args.body_read_timeout,
        },
        access_log: args.access_log,
        status_listen: args.status_listen,
        cluster_token: args.cluster_token,
        node_id: args.node_id,
        cache_dir: args.cache_dir,
        redis_url: args.redis_url,
        metrics: !args.no_metrics,
        labels,
        cluster_tls: match args.cluster_ca {
            Some(ca) => Some(turnpike_data_plane::config_client::ClusterTls {
                ca_pem: read_pem(&ca)?,
                identity: match (args.cluster_tls_cert, args.cluster_tls_key) {
                    (Some(cert), Some(key)) => Some((read_pem(&cert)?, read_pem(&key)?)),
                    _ => None,
                },
            }),
            None => None,
        },
    };
    let running = turnpike_data_plane::start(settings, common::shutdown_signal())
        .await
        .context("data plane failed to start")?;
    running.wait().await;
    Ok(())
}
