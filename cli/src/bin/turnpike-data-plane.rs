//! `turnpike-data-plane`: the data plane alone, with the flags of
//! `turnpike data-plane`. It exists for its footprint: without the control
//! plane, the console and the demo linked in, the proxy maps a few MB less
//! on every host of the fleet (idle RSS: docs/PERFORMANCE.md).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use turnpike_cli::data_plane_cmd::{self, DataPlaneArgs};

#[derive(Parser)]
#[command(
    name = "turnpike-data-plane",
    version,
    about = "Turnpike data plane: the proxy (the same as `turnpike data-plane`)"
)]
struct Cli {
    #[command(flatten)]
    args: DataPlaneArgs,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "TURNPIKE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    data_plane_cmd::main(cli.args, &cli.log_format)
}
