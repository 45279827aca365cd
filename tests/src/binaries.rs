//! The programs the end-to-end tests run (`turnpike`,
//! `turnpike-data-plane`), built on demand, the `cargo` that builds them,
//! and free ports for them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A free loopback port for a child process to listen on, chosen below the
/// kernel's ephemeral range: ports from `bind(:0)` come from that range,
/// where every outgoing connection of every parallel test also takes its
/// source port, so one could be taken between our check and the child's
/// bind. Below it, only another test's pick can collide, and the bind check
/// catches one already in use.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (low.saturating_sub(20_000).max(1024), low);
    for _ in 0..1000 {
        let port = from + (uuid::Uuid::new_v4().as_u128() % u128::from(to - from)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {from}..{to}");
}

/// The `turnpike` binary: `$TURNPIKE_BIN`, or the one in the test
/// executable's target dir, built first (a no-op when up to date).
pub fn turnpike_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| binary("TURNPIKE_BIN", "turnpike"))
}

/// The `turnpike-data-plane` binary (the data plane alone):
/// `$TURNPIKE_DATA_PLANE_BIN`, or the one in the test executable's target
/// dir, built first.
pub fn data_plane_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| binary("TURNPIKE_DATA_PLANE_BIN", "turnpike-data-plane"))
}

fn binary(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let mut build = cargo();
    build.args(["build", "-p", "turnpike-cli", "--bin", name]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo build of turnpike-cli");
    assert!(status.success(), "building {name} failed");
    profile_dir.join(name)
}

/// `cargo` (the one running the tests), in the workspace, without what the
/// test runner sets for this test crate (CARGO_MANIFEST_DIR,
/// CARGO_PKG_NAME...): ring's build script tracks some, so a build with
/// them differs from one run from a shell (CI's), and each would rebuild
/// ring and everything above it.
pub fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            cargo.env_remove(&*key);
        }
    }
    cargo.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cargo
}
