//! Compiles `turnpike/config/v1/config.proto` with protox (pure Rust), so no
//! `protoc` is needed on the build machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "turnpike/config/v1/config.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    tonic_prost_build::configure()
        // BTreeMap keeps the encoding of map fields deterministic, which the
        // snapshot hash relies on.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
