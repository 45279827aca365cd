//! `turnpike`: the one binary. `control-plane` and `data-plane` run the two
//! halves of the gateway, `echo` a sample upstream, `demo` the whole
//! topology as local processes, `config` the declarative config file.
//!
//! Exit codes: 0 ok, 1 runtime error, 2 usage or invalid config.

mod admin_client;
mod config_cmd;
mod demo;
mod echo;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "turnpike", version, about = "Turnpike API gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "TURNPIKE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run a control plane: admin API, Postgres store, config stream.
    ControlPlane(ControlPlaneArgs),
    /// Run a data plane: the proxy.
    DataPlane(DataPlaneArgs),
    /// Run a sample upstream that answers every request with JSON describing it.
    Echo(echo::EchoArgs),
    /// Run a control plane, data planes and sample upstreams as local processes.
    Demo(demo::DemoArgs),
    /// Validate, diff, apply or dump a declarative config file.
    Config(config_cmd::ConfigArgs),
}

#[derive(clap::Args)]
struct ControlPlaneArgs {
    #[arg(
        long,
        env = "TURNPIKE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/turnpike"
    )]
    database_url: String,
    #[arg(long, env = "TURNPIKE_ADMIN_LISTEN", default_value = "127.0.0.1:8001")]
    admin_listen: SocketAddr,
    #[arg(
        long,
        env = "TURNPIKE_CLUSTER_LISTEN",
        default_value = "127.0.0.1:8005"
    )]
    cluster_listen: SocketAddr,
    /// Bootstrap admin token; generated, stored hashed and printed once when unset.
    #[arg(long, env = "TURNPIKE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Token data planes present; generated and printed once when unset.
    #[arg(long, env = "TURNPIKE_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: Option<String>,
    /// PEM certificate chain of the cluster listener: turns on TLS.
    #[arg(long, env = "TURNPIKE_CLUSTER_TLS_CERT", requires = "cluster_tls_key")]
    cluster_tls_cert: Option<PathBuf>,
    /// PEM private key of the cluster listener.
    #[arg(long, env = "TURNPIKE_CLUSTER_TLS_KEY", requires = "cluster_tls_cert")]
    cluster_tls_key: Option<PathBuf>,
    /// PEM CA: data planes must present a certificate it signed (mTLS).
    #[arg(
        long,
        env = "TURNPIKE_CLUSTER_TLS_CLIENT_CA",
        requires = "cluster_tls_cert"
    )]
    cluster_tls_client_ca: Option<PathBuf>,
    /// Delete fleet records of data planes not seen for this long: seconds,
    /// or a duration such as `90m`, `24h`, `7d`.
    #[arg(
        long,
        env = "TURNPIKE_DATA_PLANE_EXPIRY",
        default_value = "24h",
        value_parser = parse_expiry
    )]
    data_plane_expiry: std::time::Duration,
}

#[derive(clap::Args)]
struct DataPlaneArgs {
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
    /// Threads of the proxy's runtime; one per core by default.
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
    #[arg(long, env = "TURNPIKE_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
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
    #[arg(long, env = "TURNPIKE_REDIS_URL", hide_env_values = true, value_parser = parse_redis_url)]
    redis_url: Option<String>,
    /// Do not count requests in the per-route metrics (answers, latency
    /// histograms, bytes out): for overhead measurements and operators who
    /// scrape nothing. /metrics still answers, with the gauges.
    #[arg(long, env = "TURNPIKE_NO_METRICS")]
    no_metrics: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for every rustls user in the process (cluster
    // stream, certificate checks), installed before any of them runs.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The span export (feature `otel`, data plane only) is a layer of the
    // log's subscriber, so it comes first; `_export` flushes it at exit.
    #[cfg(feature = "otel")]
    let (export, _export) = match otel_export(&cli.command) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("turnpike: {e}");
            return ExitCode::from(2);
        }
    };
    #[cfg(not(feature = "otel"))]
    let export = None;
    init_logging(&cli.log_format, export);
    let result = match cli.command {
        Command::ControlPlane(args) => {
            runtime(None).and_then(|rt| rt.block_on(control_plane(args)))
        }
        Command::DataPlane(args) => {
            runtime(args.worker_threads).and_then(|rt| rt.block_on(data_plane(args)))
        }
        Command::Echo(args) => runtime(Some(1)).and_then(|rt| rt.block_on(echo::run(args))),
        Command::Demo(args) => runtime(None).and_then(|rt| rt.block_on(demo::run(args))),
        Command::Config(args) => runtime(Some(1)).and_then(|rt| rt.block_on(config_cmd::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnpike: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// An error in what the user asked for (exit code 2).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A PEM file named by a flag; unreadable is a usage error.
fn read_pem(path: &std::path::Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))
}

/// Plain TCP or a Unix socket: the data plane is built without Redis TLS.
fn parse_redis_url(s: &str) -> Result<String, String> {
    if ["redis://", "redis+unix://", "unix://"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        Ok(s.to_owned())
    } else {
        Err("expected redis://host:port (rediss:// is not supported)".into())
    }
}

/// `--data-plane-expiry`: whole seconds or a humantime duration, at least
/// one second (a zero expiry would delete records as they are written).
fn parse_expiry(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

/// A duration flag: whole seconds or a humantime duration (`500ms`,
/// `2m`), more than zero.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = match s.trim().parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e}; expected seconds or a duration such as 500ms"))?,
    };
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = workers {
        if n == 0 {
            return Err(UsageError("--worker-threads must be at least 1".into()).into());
        }
        b.worker_threads(n);
    }
    Ok(b.build()?)
}

/// Logs go to stderr, as text or one JSON object a line (`timestamp`,
/// `level`, `message` and the event's fields at the top level, `target`).
/// The level: `TURNPIKE_LOG`, else `RUST_LOG`, else `info`; it filters the
/// log only, so `export` (the OTLP span export) sees its spans whatever it
/// says.
fn init_logging(format: &str, export: Option<ExportLayer>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TURNPIKE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal, never into files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json().flatten_event(true).with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let logs: Logs = tracing_subscriber::registry().with(fmt);
    // Without an export, no layer at all (not a `None` one) besides the log.
    match export {
        Some(export) => logs.with(export).init(),
        None => logs.init(),
    }
}

/// The log's subscriber, which the span export is layered on.
type Logs = tracing_subscriber::layer::Layered<
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>,
    tracing_subscriber::Registry,
>;
type ExportLayer = Box<dyn tracing_subscriber::Layer<Logs> + Send + Sync>;

/// `--otlp-endpoint` of `turnpike data-plane`: the export layer and the
/// handle that flushes it.
#[cfg(feature = "otel")]
fn otel_export(
    command: &Command,
) -> Result<
    (
        Option<ExportLayer>,
        Option<turnpike_data_plane::observe::otel::Export>,
    ),
    turnpike_data_plane::Error,
> {
    use tracing_subscriber::Layer as _;
    let endpoint = match command {
        Command::DataPlane(args) => args.otlp_endpoint.as_deref().filter(|e| !e.is_empty()),
        _ => None,
    };
    let Some(endpoint) = endpoint else {
        return Ok((None, None));
    };
    let (layer, export) = turnpike_data_plane::observe::otel::otlp::<Logs>(endpoint)?;
    Ok((Some(layer.boxed()), Some(export)))
}

/// Turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

async fn control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let settings = turnpike_control_plane::Settings {
        database_url: args.database_url,
        admin_listen: args.admin_listen,
        cluster_listen: args.cluster_listen,
        admin_token: args.admin_token,
        cluster_token: args.cluster_token,
        cluster_tls: match (args.cluster_tls_cert, args.cluster_tls_key) {
            (Some(cert), Some(key)) => Some(turnpike_control_plane::cluster::ClusterTls {
                cert_pem: read_pem(&cert)?,
                key_pem: read_pem(&key)?,
                client_ca_pem: args
                    .cluster_tls_client_ca
                    .as_deref()
                    .map(read_pem)
                    .transpose()?,
            }),
            _ => None,
        },
        data_plane_expiry: args.data_plane_expiry,
    };
    let running = match turnpike_control_plane::start(settings, shutdown_signal()).await {
        Ok(r) => r,
        Err(e @ turnpike_control_plane::Error::BadRequest(_)) => {
            return Err(UsageError(e.to_string()).into());
        }
        Err(e) => return Err(e).context("control plane failed to start"),
    };
    running.wait().await.context("control plane failed")
}

async fn data_plane(args: DataPlaneArgs) -> anyhow::Result<()> {
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
    let running = turnpike_data_plane::start(settings, shutdown_signal())
        .await
        .context("data plane failed to start")?;
    running.wait().await;
    Ok(())
}
