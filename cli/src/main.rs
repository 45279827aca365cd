//! `turnpike`: the one binary. `control-plane` and `data-plane` run the two
//! halves of the gateway, `echo` a sample upstream, `demo` the whole
//! topology as local processes, `config` the declarative config file.
//! (`turnpike-data-plane` is the data plane alone.)
//!
//! Exit codes: 0 ok, 1 runtime error, 2 usage or invalid config.

mod admin_client;
mod config_cmd;
mod demo;
mod echo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use turnpike_cli::common::{self, UsageError, parse_duration, read_pem, runtime, shutdown_signal};
use turnpike_cli::data_plane_cmd::{self, DataPlaneArgs};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        // Its own start: the span export (feature `otel`) and the
        // `turnpike-data-plane` binary's.
        Command::DataPlane(args) => return data_plane_cmd::main(args, &cli.log_format),
        other => other,
    };
    common::install_crypto_provider();
    common::init_logging(&cli.log_format, None);
    common::exit_code(match command {
        Command::ControlPlane(args) => {
            runtime(None).and_then(|rt| rt.block_on(control_plane(args)))
        }
        Command::Echo(args) => runtime(Some(1)).and_then(|rt| rt.block_on(echo::run(args))),
        Command::Demo(args) => runtime(None).and_then(|rt| rt.block_on(demo::run(args))),
        Command::Config(args) => runtime(Some(1)).and_then(|rt| rt.block_on(config_cmd::run(args))),
        Command::DataPlane(_) => unreachable!("started above"),
    })
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
