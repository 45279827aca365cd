//! Tests of an upstream's `tls.client_certificate` (mutual TLS to its
//! targets) across the model: the reference checked by the snapshot and by
//! the declarative document, the wire round trip, and certificates without
//! SNIs keeping their id through export and import.

use serde_json::json;
use uuid::Uuid;

use crate::declarative::{Document, Format};
use crate::{Certificate, ModelError, Snapshot, Upstream, ValidationErrors};

const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Upstream 1 presenting certificate 2 (which has no SNIs).
fn sample() -> Snapshot {
    let upstream = Upstream {
        id: id(1),
        spec: serde_json::from_value(json!({
            "name": "billing",
            "targets": [{"address": "billing.internal:8443"}],
            "tls": {"server_name": "billing.internal", "client_certificate": id(2)}
        }))
        .unwrap(),
    };
    let certificate = Certificate {
        id: id(2),
        spec: serde_json::from_value(json!({"cert": CERT_PEM, "key": KEY_PEM})).unwrap(),
    };
    Snapshot {
        version: 1,
        upstreams: vec![upstream],
        certificates: vec![certificate],
        ..Snapshot::default()
    }
    .canonical()
}

fn fields(e: ValidationErrors) -> Vec<String> {
    e.0.into_iter().map(|e| e.field).collect()
}

fn doc_fields(e: ModelError) -> Vec<String> {
    match e {
        ModelError::Invalid(e) => fields(e),
        other => panic!("expected validation errors, got {other}"),
    }
}

#[test]
fn the_snapshot_refuses_an_unknown_client_certificate() {
    assert_eq!(sample().validate(), Ok(()));
    let mut s = sample();
    s.certificates.clear();
    assert_eq!(
        fields(s.validate().unwrap_err()),
        ["upstreams[0].tls.client_certificate"]
    );
    // Not a UUID: refused when the spec is read, with its path.
    let err = serde_path_to_error::deserialize::<_, crate::UpstreamSpec>(json!({
        "name": "u", "tls": {"client_certificate": "my-cert"}
    }))
    .unwrap_err();
    assert_eq!(err.path().to_string(), "tls.client_certificate");
}

#[test]
fn the_wire_carries_the_reference_and_checks_it() {
    let a = sample();
    let wire = a.to_proto();
    let tls = wire.config.as_ref().unwrap().upstreams[0]
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.client_certificate, Some(id(2).to_string()));
    assert_eq!(Snapshot::decode(wire.clone()).unwrap(), a);

    // The reference is part of the content, so of the hash.
    let mut b = a.clone();
    b.upstreams[0].spec.tls.as_mut().unwrap().client_certificate = None;
    assert_ne!(a.hash(), b.hash());
    assert_eq!(Snapshot::decode(b.to_proto()).unwrap(), b);

    // A data plane refuses a reference to a certificate the snapshot lacks
    // and one that is not an id.
    let mut dangling = a.clone();
    dangling.certificates.clear();
    match Snapshot::try_from(dangling.to_proto()) {
        Err(ModelError::Invalid(e)) => {
            assert_eq!(fields(e), ["upstreams[0].tls.client_certificate"]);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut garbled = a.to_proto();
    let config = garbled.config.as_mut().unwrap();
    config.upstreams[0].tls.as_mut().unwrap().client_certificate = Some("nope".into());
    garbled.hash = crate::snapshot::hash_config(config);
    let err = Snapshot::try_from(garbled).unwrap_err().to_string();
    assert!(err.contains("upstreams[0].tls.client_certificate"), "{err}");
}

#[test]
fn the_document_carries_certificate_ids_and_checks_references() {
    let current = sample();
    let doc = Document::from_snapshot(&current);
    assert_eq!(doc.certificates[0].id, Some(id(2)), "exports carry the id");
    let yaml = doc.render(Format::Yaml);
    assert!(!yaml.contains("PRIVATE KEY"), "{yaml}");
    let parsed = Document::parse(yaml.as_bytes(), Format::Yaml).unwrap();
    assert_eq!(parsed, doc);
    // Importing the export changes nothing, on this cluster...
    let again = parsed.to_snapshot(&current).unwrap();
    assert!(
        current.diff(&again).is_empty(),
        "{:?}",
        current.diff(&again)
    );
    // ...and on a fresh one (the key given in clear) it keeps the ids.
    let mut fresh = parsed.clone();
    fresh.certificates[0].spec.key_sha256 = None;
    fresh.certificates[0].spec.key = Some(KEY_PEM.into());
    let created = fresh.to_snapshot(&Snapshot::default()).unwrap();
    assert_eq!(created.validate(), Ok(()));
    assert_eq!(created.certificates[0].id, id(2));

    // Unknown reference, duplicate and malformed ids, each with its path.
    let other = Uuid::now_v7();
    let bad = json!({
        "format_version": "1",
        "upstreams": [
            {"name": "a", "tls": {"client_certificate": other}},
            {"name": "b", "tls": {"client_certificate": id(2)}}
        ],
        "certificates": [
            {"id": id(2), "cert": CERT_PEM, "key": KEY_PEM},
            {"id": id(2), "cert": CERT_PEM, "key": KEY_PEM},
            {"id": "cert-one", "cert": CERT_PEM, "key": KEY_PEM}
        ]
    });
    let err = Document::parse(bad.to_string().as_bytes(), Format::Json).unwrap_err();
    assert_eq!(
        doc_fields(err),
        [
            "certificates[2].id",
            "certificates[1].id",
            "upstreams[0].tls.client_certificate"
        ]
    );
}

#[test]
fn a_certificate_without_id_or_snis_is_matched_by_its_pem() {
    let current = sample();
    let text = json!({
        "format_version": "1",
        "certificates": [
            {"cert": CERT_PEM, "key": KEY_PEM},
            {"cert": CERT_PEM.replace("AAAA", "BBBB"), "key": KEY_PEM}
        ]
    });
    let mut doc = Document::parse(text.to_string().as_bytes(), Format::Json).unwrap();
    doc.assign_certificate_ids(&current);
    assert_eq!(doc.certificates[0].id, Some(id(2)), "same PEM, same id");
    let new = doc.certificates[1].id.unwrap();
    assert_ne!(new, id(2), "another PEM is another certificate");
    // Assigned ids are what the snapshot gets.
    let target = doc.to_snapshot(&current).unwrap();
    let ids: Vec<Uuid> = target.certificates.iter().map(|c| c.id).collect();
    assert!(ids.contains(&id(2)) && ids.contains(&new), "{ids:?}");
}
