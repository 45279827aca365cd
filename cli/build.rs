//! Release builds lay out the binaries' code in the order of
//! `code-order.txt`: the functions a data plane runs from start through
//! serving requests, hottest first (`bench/code-order.sh` regenerates it).
//! The kernel maps code in 64 KB windows around each page fault; with those
//! functions together, an idle data plane has a few windows of code resident
//! instead of nearly all of it (docs/PERFORMANCE.md, idle RSS).
//!
//! Only with the target's default linker, rust-lld (Rust ≥ 1.90 on
//! x86_64-unknown-linux-gnu), which reads the file; `TURNPIKE_CODE_ORDER=0`
//! turns it off. Names the build no longer has are skipped, silently.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=code-order.txt");
    println!("cargo:rerun-if-env-changed=TURNPIKE_CODE_ORDER");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let release = var("PROFILE") == "release";
    let default_target = var("TARGET") == "x86_64-unknown-linux-gnu";
    // A linker chosen by cargo config (RUSTC_LINKER) or by flags
    // (-C linker, -C linker-features, -C link-self-contained) may not know
    // the option.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = !var("RUSTC_LINKER").is_empty()
        || flags.contains("linker")
        || flags.contains("link-self-contained");
    if !release || !default_target || other_linker || var("TURNPIKE_CODE_ORDER") == "0" {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("code-order.txt");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
