//! Tests of consumers, credentials, plugins and certificates across the
//! snapshot: references, the wire round trip (and the data plane's refusal),
//! diffs, and the declarative document (secrets never exported in clear;
//! export then import is a no-op).

use serde_json::json;
use uuid::Uuid;

use crate::declarative::{Document, Format};
use crate::{
    Certificate, Consumer, Credential, CredentialKind, CredentialSpec, ModelError, Plugin, Route,
    Snapshot, Upstream,
};

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
    2Zb0OW1tJkvo6VZd4MJuowy2tQdSjmWM7fhq1lUFb1E";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn credential(n: u128, consumer: u128, kind: serde_json::Value) -> Credential {
    Credential {
        id: id(n),
        spec: CredentialSpec {
            consumer: id(consumer).to_string(),
            kind: CredentialKind::from_value(kind).unwrap(),
        },
    }
}

/// One of each kind: upstream 1, route 2, consumer 3 with a key-auth (4),
/// basic-auth (5) and jwt (6) credential, a global plugin (7), a plugin on
/// the route for the consumer (8), a certificate (9).
fn sample() -> Snapshot {
    let upstream = Upstream {
        id: id(1),
        spec: serde_json::from_value(json!({"name": "users"})).unwrap(),
    };
    let route = Route {
        id: id(2),
        spec: serde_json::from_value(json!({"name": "users-api", "upstream": id(1).to_string()}))
            .unwrap(),
    };
    let mut plugins: Vec<Plugin> = [
        (7, json!({"name": "cors"})),
        (8, json!({"name": "rate-limit", "config": {"limit": 5}, "route": id(2).to_string(), "consumer": id(3).to_string()})),
    ]
    .into_iter()
    .map(|(n, v)| Plugin { id: id(n), spec: serde_json::from_value(v).unwrap() })
    .collect();
    for p in &mut plugins {
        p.spec.normalize();
    }
    Snapshot {
        version: 3,
        upstreams: vec![upstream],
        routes: vec![route],
        consumers: vec![Consumer {
            id: id(3),
            spec: serde_json::from_value(json!({"username": "alice", "groups": ["staff"]}))
                .unwrap(),
        }],
        credentials: vec![
            credential(
                4,
                3,
                json!({"type": "key-auth", "key_digest": "d".repeat(64), "key_prefix": "tpk_ab12"}),
            ),
            credential(
                5,
                3,
                json!({"type": "basic-auth", "username": "alice", "password_hash": PHC}),
            ),
            credential(
                6,
                3,
                json!({"type": "jwt", "key": "alice-iss", "secret": "s".repeat(32)}),
            ),
        ],
        plugins,
        certificates: vec![Certificate {
            id: id(9),
            spec: serde_json::from_value(
                json!({"cert": "CERT", "key": KEY_PEM, "snis": ["api.example.com"]}),
            )
            .unwrap(),
        }],
    }
    .canonical()
}

fn fields(e: crate::ValidationErrors) -> Vec<String> {
    e.0.into_iter().map(|e| e.field).collect()
}

#[test]
fn references_and_uniqueness_are_checked() {
    assert_eq!(sample().validate(), Ok(()));
    let mut s = sample();
    s.credentials[0].spec.consumer = id(99).to_string();
    s.plugins[1].spec.route = Some(id(98).to_string());
    let mut dup = s.plugins[0].clone();
    dup.id = id(10);
    s.plugins.push(dup);
    let mut cert = s.certificates[0].clone();
    cert.id = id(11);
    s.certificates.push(cert);
    assert_eq!(
        fields(s.validate().unwrap_err()),
        [
            "credentials[0].consumer",
            "plugins[1].route",
            "plugins[2].name",
            "certificates[1].snis[0]"
        ]
    );
    // A secret in clear never goes into a snapshot.
    let mut s = sample();
    s.credentials[0] = credential(4, 3, json!({"type": "key-auth", "key": "alice-secret-key"}));
    assert_eq!(
        fields(s.validate().unwrap_err()),
        ["credentials[0].key_digest"]
    );
}

#[test]
fn wire_round_trip_hash_and_data_plane_refusal() {
    let a = sample();
    let wire = a.to_proto();
    let config = wire.config.as_ref().unwrap();
    assert_eq!(
        config.consumers[0].credentials.len(),
        3,
        "nested in their consumer"
    );
    assert_eq!(
        config.certificates[0].key_pem, KEY_PEM,
        "data planes need the key"
    );
    assert!(config.plugins[0].config_json.starts_with('{'));
    assert_eq!(Snapshot::decode(wire.clone()).unwrap(), a);
    // A data plane that cannot enforce a plugin refuses rather than
    // ignores an enabled one, and accepts the inert rest.
    match Snapshot::try_from(wire)
        .unwrap()
        .check_enforceable(&["acl"])
    {
        Err(ModelError::UnsupportedPlugin(name)) => assert_eq!(name, a.plugins[0].spec.name),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut b = a.clone();
    b.plugins[0].spec.enabled = false;
    assert_ne!(a.hash(), b.hash());
    for p in &mut b.plugins {
        p.spec.enabled = false;
    }
    assert_eq!(Snapshot::try_from(b.to_proto()).unwrap(), b);
    let mut c = a.clone();
    c.credentials.reverse();
    assert_eq!(a.hash(), c.canonical().hash());
}

#[test]
fn diffs_cover_every_kind_and_redaction_hides_secrets() {
    let a = sample();
    let mut b = a.clone();
    b.credentials.remove(0);
    b.certificates[0].spec.key = Some(KEY_PEM.replace("AAAA", "BBBB"));
    b.plugins[0].spec.tags = vec!["x".into()];
    let d = a.diff(&b);
    assert_eq!(d.credentials.removed[0].name, "tpk_ab12");
    assert_eq!(d.plugins.changed[0].fields[0].field, "tags");
    assert_eq!(d.apply(&a), b);
    let shown = a.redacted().diff(&b.redacted());
    let f = &shown.certificates.changed[0].fields[0];
    assert_eq!(f.field, "key_sha256");
    let text = serde_json::to_string(&shown).unwrap();
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains(&"s".repeat(32)),
        "{text}"
    );
}

#[test]
fn export_never_holds_secrets_and_import_of_it_is_a_no_op() {
    let current = sample();
    let doc = Document::from_snapshot(&current);
    let yaml = doc.render(Format::Yaml);
    assert!(
        !yaml.contains("PRIVATE KEY") && !yaml.contains(&"s".repeat(32)),
        "{yaml}"
    );
    assert!(
        yaml.contains("key_digest")
            && yaml.contains("password_hash")
            && yaml.contains("secret_sha256")
    );
    let route = &doc.routes[0];
    assert_eq!(
        route.plugins[0].consumer.as_deref(),
        Some("alice"),
        "by username"
    );
    assert_eq!(route.plugins[0].route, None, "the enclosing route");
    assert_eq!(doc.plugins.len(), 1, "only the global plugin at the top");

    let parsed = Document::parse(yaml.as_bytes(), Format::Yaml).unwrap();
    assert_eq!(parsed, doc);
    let again = parsed.to_snapshot(&current).unwrap();
    assert!(
        current.diff(&again).is_empty(),
        "{:?}",
        current.diff(&again)
    );

    // A digest that matches nothing current cannot be resolved.
    let err = parsed.to_snapshot(&Snapshot::default()).unwrap_err();
    assert_eq!(
        fields(err),
        [
            "consumers[0].credentials[1].secret_sha256",
            "certificates[0].key_sha256"
        ]
    );
}

#[test]
fn document_rules_for_plugins_credentials_and_snis() {
    let doc = json!({
        "format_version": "1",
        "upstreams": [{"name": "u"}],
        "routes": [{"name": "r", "upstream": "u", "plugins": [
            {"name": "rate-limit", "config": {"limit": 1}, "route": "r"},
            {"name": "acl", "config": {"allow": ["a"]}, "consumer": "nobody"}
        ]}],
        "consumers": [
            {"username": "a", "credentials": [{"type": "key-auth", "key": "same-key-0123456"}]},
            {"username": "b", "credentials": [{"type": "key-auth", "key": "same-key-0123456"}]}
        ],
        "plugins": [{"name": "cors"}, {"name": "cors"}, {"name": "key-auth", "route": "r"}],
        "certificates": [
            {"cert": "C", "key": "K", "snis": ["a.example.com"]},
            {"cert": "C", "key": "K", "snis": ["a.example.com"]}
        ]
    });
    let err = match Document::parse(doc.to_string().as_bytes(), Format::Json) {
        Err(ModelError::Invalid(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fields(err),
        [
            "plugins[1].name",
            "plugins[2].route",
            "routes[0].plugins[0].route",
            "routes[0].plugins[1].consumer",
            "consumers[1].credentials[0]",
            "certificates[1].snis[0]"
        ]
    );
}
