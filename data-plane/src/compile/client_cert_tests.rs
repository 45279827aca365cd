//! Tests of upstream client certificates at compile time: the certificate
//! an upstream's `tls.client_certificate` names is looked up in the same
//! snapshot, a missing or broken one refuses the config, and the pool is
//! kept exactly as long as the certificate's content stays the same.

use std::sync::Arc;

use turnpike_model::{Certificate, Snapshot, Upstream};
use uuid::Uuid;

use super::{Compiled, Registries};
use crate::Error;
use crate::compile::certs::tests::certificate;

/// Upstream `billing` presenting `cert` (which the snapshot may lack).
fn snapshot(presents: Uuid, certificates: Vec<Certificate>) -> Snapshot {
    let upstream = Upstream {
        id: Uuid::from_u128(1),
        spec: serde_json::from_value(serde_json::json!({
            "name": "billing",
            "targets": [{"address": "127.0.0.1:1"}],
            "tls": {"server_name": "localhost", "client_certificate": presents}
        }))
        .unwrap(),
    };
    Snapshot {
        version: 1,
        upstreams: vec![upstream],
        certificates,
        ..Snapshot::default()
    }
    .canonical()
}

fn build(s: &Snapshot, registries: &Registries) -> Result<Compiled, Error> {
    Compiled::build(s, s.hash(), Arc::default(), registries)
}

fn refusal(s: &Snapshot) -> String {
    match build(s, &Registries::default()) {
        Err(Error::Compile(m)) => m,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("compiled an upstream whose client certificate cannot be used"),
    }
}

#[test]
fn a_missing_or_broken_client_certificate_refuses_the_config() {
    let cert = certificate(&[]);
    assert!(
        build(
            &snapshot(cert.id, vec![cert.clone()]),
            &Registries::default()
        )
        .is_ok()
    );

    let m = refusal(&snapshot(Uuid::now_v7(), vec![cert.clone()]));
    assert!(
        m.contains("upstream billing") && m.contains("no such certificate"),
        "{m}"
    );

    let mut keyless = cert.clone();
    keyless.spec.key = None;
    assert!(refusal(&snapshot(cert.id, vec![keyless])).contains("does not carry its key"));

    let mut garbled = cert.clone();
    garbled.spec.key =
        Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into());
    let m = refusal(&snapshot(cert.id, vec![garbled]));
    assert!(
        m.contains("tls.client_certificate") && m.contains("key"),
        "{m}"
    );

    let mut mismatched = cert.clone();
    mismatched.spec.key = certificate(&[]).spec.key;
    let m = refusal(&snapshot(cert.id, vec![mismatched]));
    assert!(m.contains("does not match"), "{m}");
}

#[test]
fn the_pool_is_kept_while_the_certificate_content_is_the_same() {
    let registries = Registries::default();
    let cert = certificate(&[]);
    let first = build(&snapshot(cert.id, vec![cert.clone()]), &registries).unwrap();
    let same = build(&snapshot(cert.id, vec![cert.clone()]), &registries).unwrap();
    let client = |c: &Compiled| c.upstreams[0].client.clone();
    assert!(
        Arc::ptr_eq(&client(&first), &client(&same)),
        "nothing changed"
    );

    // Renewed under the same id: the upstream's spec is the same, its
    // connections must not be.
    let mut renewed = certificate(&[]);
    renewed.id = cert.id;
    let after = build(&snapshot(cert.id, vec![renewed]), &registries).unwrap();
    assert!(
        !Arc::ptr_eq(&client(&first), &client(&after)),
        "new key, new pool"
    );
}
