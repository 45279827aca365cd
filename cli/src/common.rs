//! What the binaries share: usage errors and exit codes, flag parsers,
//! the runtime, logging and the shutdown signal.
//!
//! Exit codes: 0 ok, 1 runtime error, 2 usage or invalid config.

use std::process::ExitCode;

use tokio::sync::watch;

/// One crypto provider for every rustls user in the process (cluster
/// stream, proxy TLS, certificate checks), installed before any of them
/// runs.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The process's exit code for a command's result, the error printed.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
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
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A PEM file named by a flag; unreadable is a usage error.
pub fn read_pem(path: &std::path::Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))
}

/// Plain TCP or a Unix socket: the data plane is built without Redis TLS.
pub fn parse_redis_url(s: &str) -> Result<String, String> {
    if ["redis://", "redis+unix://", "unix://"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        Ok(s.to_owned())
    } else {
        Err("expected redis://host:port (rediss:// is not supported)".into())
    }
}

/// A duration flag: whole seconds or a humantime duration (`500ms`,
/// `2m`), more than zero.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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

/// The data plane's runtime: `workers` threads (one per core by default).
/// One worker is tokio's current-thread scheduler, on the thread that runs
/// the data plane: the multi-thread one with a single worker kept its
/// work-stealing bookkeeping (clock reads and a poll-time average around
/// every batch of tasks, a park and unpark through its condition variable)
/// for no second thread to steal, and ran the main future on a thread of
/// its own.
pub fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = match workers {
        Some(0) => return Err(UsageError("--worker-threads must be at least 1".into()).into()),
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    b.enable_all();
    Ok(b.build()?)
}

/// Logs go to stderr, as text or one JSON object a line (`timestamp`,
/// `level`, `message` and the event's fields at the top level, `target`).
/// The level: `TURNPIKE_LOG`, else `RUST_LOG`, else `info`; it filters the
/// log only, so `export` (the OTLP span export) sees its spans whatever it
/// says.
pub fn init_logging(format: &str, export: Option<ExportLayer>) {
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
pub type Logs = tracing_subscriber::layer::Layered<
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>,
    tracing_subscriber::Registry,
>;
pub type ExportLayer = Box<dyn tracing_subscriber::Layer<Logs> + Send + Sync>;

/// Turns true on SIGINT or SIGTERM.
pub fn shutdown_signal() -> watch::Receiver<bool> {
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
