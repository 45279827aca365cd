//! `turnpike config` end to end: the real binary against a real control
//! plane on a fresh database. Apply a hand-written file, dump it back in
//! canonical form, and check that applying the dump changes nothing.

use std::path::{Path, PathBuf};
use std::process::Output;

use http::Method;
use turnpike_tests::process::turnpike_bin;
use turnpike_tests::{ControlPlane, Db, fresh_database_url};

/// Written the way people write: out of order, defaults left out, mixed case.
const HAND_WRITTEN: &str = r#"
format_version: 1
routes:
  - name: users-api
    hosts: [API.Example.com]
    paths: [/users]
    methods: [get]
    upstream: users
  - name: billing-api
    paths: [/billing]
    strip_path: true
    upstream: billing
upstreams:
  - name: users
    targets: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002", weight: 3}]
  - name: billing
    timeouts: {read_ms: 1000}
    tags: [team-b]
"#;

/// What `config dump` gives for it: sorted by name, every field written.
const CANONICAL: &str = "\
format_version: '1'
upstreams:
- name: billing
  algorithm: round_robin
  targets: []
  health_checks: {}
  timeouts:
    connect_ms: 5000
    read_ms: 1000
    write_ms: 60000
  retries: 1
  protocol: http1
  tags:
  - team-b
- name: users
  algorithm: round_robin
  targets:
  - address: 127.0.0.1:9001
    weight: 1
  - address: 127.0.0.1:9002
    weight: 3
  health_checks: {}
  timeouts:
    connect_ms: 5000
    read_ms: 60000
    write_ms: 60000
  retries: 1
  protocol: http1
  tags: []
routes:
- name: billing-api
  hosts: []
  paths:
  - /billing
  headers: {}
  methods: []
  priority: 0
  upstream: billing
  strip_path: true
  preserve_host: false
  tags: []
  plugins: []
- name: users-api
  hosts:
  - api.example.com
  paths:
  - /users
  headers: {}
  methods:
  - GET
  priority: 0
  upstream: users
  strip_path: false
  preserve_host: false
  tags: []
  plugins: []
consumers: []
plugins: []
certificates: []
";

/// Runs `turnpike config <args>` against `cp`.
async fn config(cp: &ControlPlane, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(turnpike_bin());
    cmd.arg("config").args(args);
    if args[0] != "validate" {
        cmd.args(["--admin-url", &cp.admin, "--admin-token", &cp.admin_token]);
    }
    cmd.env_remove("TURNPIKE_ADMIN_URL")
        .env_remove("TURNPIKE_ADMIN_TOKEN")
        .output()
        .await
        .expect("run turnpike config")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    stdout(o)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

async fn current_version(cp: &ControlPlane) -> u64 {
    cp.api(Method::GET, "/config", None).await.json()["version"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dump_and_reapply_is_a_fixed_point() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dir: PathBuf =
        std::env::temp_dir().join(format!("turnpike-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();

    // Offline validation: every bad field, exit code 2.
    let bad = write(
        &dir,
        "bad.yaml",
        "format_version: 1\nupstreams: [{name: u, targets: [{address: nohost}]}]\nroutes: [{name: r, upstream: nope}]\n",
    );
    let out = config(&cp, &["validate", "-f", &bad]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("upstreams[0].targets[0].address"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("routes[0].upstream"),
        "{}",
        stderr(&out)
    );
    let file = write(&dir, "file.yaml", HAND_WRITTEN);
    assert!(ok(&config(&cp, &["validate", "-f", &file]).await).contains("valid"));

    // A dry run shows the changes and applies nothing.
    let before = current_version(&cp).await;
    let dry = ok(&config(&cp, &["diff", "-f", &file]).await);
    assert!(dry.contains("  + users"), "{dry}");
    assert_eq!(current_version(&cp).await, before);

    // Apply: one new version.
    let applied = ok(&config(&cp, &["apply", "-f", &file]).await);
    assert!(applied.contains("  + billing-api"), "{applied}");
    let version = current_version(&cp).await;
    assert_eq!(version, before + 1, "one version for the whole file");
    assert!(
        applied.contains(&format!("applied: config version {version}")),
        "{applied}"
    );

    // Dump: the canonical form, to stdout or to a file.
    assert_eq!(ok(&config(&cp, &["dump"]).await), CANONICAL);
    let dumped = dir.join("dump.yaml");
    ok(&config(&cp, &["dump", "-f", dumped.to_str().unwrap()]).await);
    assert_eq!(std::fs::read_to_string(&dumped).unwrap(), CANONICAL);
    let json = dir.join("dump.json");
    ok(&config(&cp, &["dump", "-f", json.to_str().unwrap()]).await);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["routes"][1]["hosts"][0], "api.example.com");

    // Applying the dump (either format) changes nothing: no new version.
    for path in [&dumped, &json] {
        let again = ok(&config(&cp, &["apply", "-f", path.to_str().unwrap()]).await);
        assert!(
            again.contains(&format!("no changes: config stays at version {version}")),
            "{again}"
        );
    }
    assert_eq!(current_version(&cp).await, version);

    // A change shows field by field.
    let changed = write(
        &dir,
        "changed.yaml",
        &CANONICAL.replace("127.0.0.1:9002", "127.0.0.1:9003"),
    );
    let diff = ok(&config(&cp, &["apply", "--dry-run", "-f", &changed]).await);
    assert!(
        diff.contains(
            "  ~ users\n      targets[1].address: \"127.0.0.1:9002\" -> \"127.0.0.1:9003\""
        ),
        "{diff}"
    );
    assert_eq!(current_version(&cp).await, version);

    let _ = std::fs::remove_dir_all(&dir);
}
