//! The README's demo command starts the `turnpike` binary: with a second
//! binary in the package, `cargo run -p turnpike-cli` needs `default-run`,
//! and without it the command fails before anything runs.

use turnpike_tests::binaries::cargo;

#[test]
fn the_readme_demo_command_runs_turnpike() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.contains("# the demo"))
        .expect("the README names its demo command");
    let args: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
    assert_eq!(args[..2], ["cargo", "run"], "{line}");
    assert_eq!(args.last(), Some(&"demo"), "{line}");
    // The same command, asking for the version instead of starting the demo.
    let out = cargo()
        .args(&args[1..args.len() - 1])
        .arg("--version")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("turnpike "), "{stdout}");
}
