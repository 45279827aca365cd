//! The admin API against its own OpenAPI document: runs
//! `tests/api/schemathesis.sh` (schemathesis from PyPI, every check, 100
//! examples per operation plus stateful runs) and fails on any finding.

use std::process::Command;

#[test]
fn admin_api_conforms_to_its_openapi_document() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let bin = turnpike_tests::process::turnpike_bin();
    let out = Command::new("bash")
        .arg("tests/api/schemathesis.sh")
        .args(["--max-examples", "100"])
        .env("TURNPIKE_BIN", bin)
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed"),
        "schemathesis ran no test:\n{stdout}"
    );
}
