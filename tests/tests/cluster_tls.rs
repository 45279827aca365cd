//! The config stream over mutual TLS: a control plane that requires client
//! certificates signed by the cluster CA serves a data plane that has one,
//! and never serves one without a certificate or with one from another CA,
//! even when it has the right cluster token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use turnpike_tests::{
    ControlPlane, DataPlane, Echo, assert_status, drop_database, fresh_database_url, wait_for,
};

struct Cleanup(String, PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        drop_database(&self.0);
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// A CA, and leaf certificates it signs, written as PEM files in `dir`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), issuer.pem()).unwrap();
        Ca {
            issuer,
            dir: dir.to_owned(),
        }
    }

    /// Writes `<name>.crt` and `<name>.key`; returns the flag values.
    fn leaf(&self, name: &str, sans: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }
}

fn flags(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(f, v)| [f.to_string(), v.to_string()])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_data_planes_with_a_cluster_certificate() {
    let (url, db) = fresh_database_url();
    let dir = std::env::temp_dir().join(format!("turnpike-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup(db, dir.clone());
    let ca = Ca::new(&dir, "cluster-ca");
    let rogue = Ca::new(&dir, "rogue-ca");
    let ca_pem = dir.join("cluster-ca.pem").display().to_string();
    let (cp_cert, cp_key) = ca.leaf("control-plane", &["127.0.0.1", "localhost"]);
    let (dp_cert, dp_key) = ca.leaf("dp-good", &[]);
    let (rogue_cert, rogue_key) = rogue.leaf("dp-rogue", &[]);

    let cp = ControlPlane::start_args(
        &url,
        &flags(&[
            ("--cluster-tls-cert", &cp_cert),
            ("--cluster-tls-key", &cp_key),
            ("--cluster-tls-client-ca", &ca_pem),
        ]),
    )
    .await;
    let https = cp.cluster.replace("http://", "https://");
    let good = DataPlane::start_args(
        &https,
        &cp.cluster_token,
        &flags(&[
            ("--cluster-ca", &ca_pem),
            ("--cluster-tls-cert", &dp_cert),
            ("--cluster-tls-key", &dp_key),
        ]),
    );
    let no_cert = DataPlane::start_args(
        &https,
        &cp.cluster_token,
        &flags(&[("--cluster-ca", &ca_pem)]),
    );
    let wrong_ca = DataPlane::start_args(
        &https,
        &cp.cluster_token,
        &flags(&[
            ("--cluster-ca", &ca_pem),
            ("--cluster-tls-cert", &rogue_cert),
            ("--cluster-tls-key", &rogue_key),
        ]),
    );

    let echo = Echo::start("echo-tls").await;
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": echo.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/"], "upstream": "u"})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);

    // The data plane with a cluster certificate gets the config over TLS.
    good.wait_for_version(route.version()).await;
    let answer = good.get("/hello").await;
    assert_status(&answer, StatusCode::OK);
    assert_eq!(answer.json()["name"], "echo-tls");

    // The others are turned away at the handshake, repeatedly, and never
    // hold a config or show in the fleet.
    for dp in [&no_cert, &wrong_ca] {
        wait_for(
            &format!("{} refused twice", dp.node_id),
            Duration::from_secs(30),
            || async { (dp.proc.log().matches("config stream failed").count() >= 2).then_some(()) },
        )
        .await;
        let status = dp.status().await.expect("status answers");
        assert_eq!(status["config_version"], 0, "{status}");
        assert_eq!(status["control_plane_connected"], false);
    }
    let fleet = cp.api(Method::GET, "/data-planes", None).await.json();
    let nodes: Vec<&str> = fleet["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["node_id"].as_str())
        .collect();
    assert_eq!(
        nodes,
        [good.node_id.as_str()],
        "only the certified data plane registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_control_plane_address_needs_the_cluster_ca() {
    let dp = DataPlane::start("https://127.0.0.1:1", "token");
    wait_for(
        "the data plane to exit",
        Duration::from_secs(30),
        || async { dp.proc.log().contains("--cluster-ca").then_some(()) },
    )
    .await;
}
