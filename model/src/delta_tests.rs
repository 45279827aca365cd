//! Tests of `Delta`: examples (credentials travel with their consumer, the
//! checks of `apply`, the size of a one-route change in a large config), and
//! property tests over random snapshots of every kind.

use proptest::prelude::*;
use prost::Message;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::credential::{BasicAuth, KeyAuth};
use crate::{
    ActiveHealthCheck, Algorithm, Certificate, CertificateSpec, CircuitBreaker, ConsumerSpec,
    CredentialKind, CredentialSpec, HashOn, HealthChecks, PassiveHealthCheck, Plugin, PluginSpec,
    Route, RouteSpec, Target, Timeouts, Upstream, UpstreamProtocol, UpstreamSpec, UpstreamTls,
};

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn upstream(n: u128, name: &str) -> Upstream {
    Upstream {
        id: id(n),
        spec: serde_json::from_value(
            json!({"name": name, "targets": [{"address": "127.0.0.1:9000"}]}),
        )
        .unwrap(),
    }
}

fn route(n: u128, name: &str, path: &str, upstream: u128) -> Route {
    Route {
        id: id(n),
        spec: serde_json::from_value(
            json!({"name": name, "paths": [path], "upstream": id(upstream).to_string()}),
        )
        .unwrap(),
    }
}

fn key_auth(n: u128, consumer: u128, digest: char) -> Credential {
    Credential {
        id: id(n),
        spec: CredentialSpec {
            consumer: id(consumer).to_string(),
            kind: CredentialKind::KeyAuth(KeyAuth {
                key: None,
                key_digest: Some(digest.to_string().repeat(64)),
                key_prefix: Some("tpk_abcd".into()),
            }),
        },
    }
}

fn consumer(n: u128, username: &str) -> Consumer {
    Consumer {
        id: id(n),
        spec: ConsumerSpec {
            username: username.into(),
            groups: Vec::new(),
            tags: Vec::new(),
        },
    }
}

fn base() -> Snapshot {
    Snapshot {
        version: 4,
        upstreams: vec![upstream(1, "a"), upstream(2, "b")],
        routes: vec![route(10, "r1", "/one", 1), route(11, "r2", "/two", 2)],
        consumers: vec![consumer(20, "alice"), consumer(21, "bob")],
        credentials: vec![
            key_auth(30, 20, 'a'),
            key_auth(31, 20, 'b'),
            key_auth(32, 21, 'c'),
        ],
        ..Snapshot::default()
    }
    .canonical()
}

#[test]
fn a_one_route_change_carries_that_route_only() {
    let a = base();
    let mut b = a.clone();
    b.version = 9;
    b.routes[0].spec.paths = vec!["/uno".into()];
    let d = Delta::between(&a, &b);
    assert_eq!((d.base_version, d.version), (4, 9));
    assert_eq!(d.upserts.routes, vec![b.routes[0].clone()]);
    assert!(d.upserts.upstreams.is_empty() && d.upserts.consumers.is_empty());
    assert_eq!(d.removed, Removed::default());
    assert_eq!(d.apply(&a).unwrap(), b);
    assert!(Delta::between(&a, &a).is_empty());
}

#[test]
fn a_credential_change_sends_its_consumer_with_all_its_credentials() {
    let a = base();
    let mut b = a.clone();
    b.version = 5;
    // Drop one of alice's keys; bob is untouched.
    b.credentials.retain(|c| c.id != id(31));
    let d = Delta::between(&a, &b);
    assert_eq!(d.upserts.consumers, vec![consumer(20, "alice")]);
    assert_eq!(d.upserts.credentials, vec![key_auth(30, 20, 'a')]);
    assert_eq!(d.apply(&a).unwrap(), b);

    // Removing a consumer removes its credentials, with no list of their own.
    let mut c = a.clone();
    c.version = 6;
    c.consumers.retain(|x| x.id != id(21));
    c.credentials
        .retain(|x| x.spec.consumer != id(21).to_string());
    let d = Delta::between(&a, &c);
    assert_eq!(d.removed.consumers, vec![id(21)]);
    assert!(d.upserts.credentials.is_empty());
    assert_eq!(d.apply(&a).unwrap(), c);
}

#[test]
fn apply_refuses_another_base_a_wrong_hash_and_an_invalid_result() {
    let a = base();
    let mut b = a.clone();
    b.version = 5;
    b.upstreams.retain(|u| u.id != id(2));
    b.routes.retain(|r| r.id != id(11));
    let d = Delta::between(&a, &b);

    let mut other = a.clone();
    other.version = 3;
    assert!(matches!(
        d.apply(&other),
        Err(ModelError::DeltaBase { base: 4, held: 3 })
    ));

    // Same version, other content: the result does not hash as promised.
    let mut drifted = a.clone();
    drifted.routes[0].spec.priority = 7;
    assert!(matches!(
        d.apply(&drifted),
        Err(ModelError::HashMismatch { .. })
    ));

    // A hash that matches an invalid config still does not pass.
    let mut dangling = a.clone();
    dangling.version = 5;
    dangling.upstreams.retain(|u| u.id != id(2));
    let d = Delta::between(&a, &dangling);
    let err = d.apply(&a).unwrap_err().to_string();
    assert!(err.contains("unknown upstream"), "{err}");
}

#[test]
fn bad_ids_on_the_wire_are_refused_with_their_path() {
    let mut wire = Delta::between(&base(), &base()).to_proto();
    wire.removals.as_mut().unwrap().routes.push("nope".into());
    let err = Delta::try_from(wire).unwrap_err().to_string();
    assert_eq!(err, "removals.routes[0]: not a UUID");
}

#[test]
fn the_encoded_delta_of_a_one_route_change_does_not_grow_with_the_config() {
    let upstreams = vec![upstream(1, "u")];
    let routes: Vec<Route> = (0..10_000u128)
        .map(|i| route(1_000 + i, &format!("route-{i}"), &format!("/r/{i}"), 1))
        .collect();
    let a = Snapshot::new(1, upstreams, routes);
    let mut b = a.clone();
    b.version = 2;
    b.routes[5_000].spec.paths = vec!["/changed".into()];
    let delta = Delta::between(&a, &b).to_proto().encoded_len();
    let full = b.to_proto().encoded_len();
    assert!(delta < 1_024, "delta is {delta} bytes");
    assert!(full > 500_000, "full snapshot is {full} bytes");
    let back = Delta::try_from(Delta::between(&a, &b).to_proto()).unwrap();
    assert_eq!(back.apply(&a).unwrap(), b);
}

// ------------------------------------------------------------ properties

/// Small value sets, so random snapshots share ids and specs often enough
/// to produce every kind of change. Credentials and certificates are in
/// their wire form (sealed, no digests of secrets), as data planes hold
/// them.
fn upstream_spec() -> impl Strategy<Value = UpstreamSpec> {
    (
        prop::sample::select(vec!["u1", "u2"]),
        prop::collection::vec((prop::sample::select(vec!["a:1", "b:2"]), 0u32..3), 0..3),
        prop::sample::select(vec![
            (Algorithm::RoundRobin, None),
            (
                Algorithm::ConsistentHash,
                Some(HashOn::Header("x-user".into())),
            ),
            (Algorithm::ConsistentHash, Some(HashOn::Ip)),
            (Algorithm::Latency, None),
        ]),
        any::<bool>(),
    )
        .prop_map(
            |(name, targets, (algorithm, hash_on), checked)| UpstreamSpec {
                name: name.into(),
                algorithm,
                hash_on,
                health_checks: HealthChecks {
                    active: checked.then(ActiveHealthCheck::default),
                    passive: checked.then(PassiveHealthCheck::default),
                },
                circuit_breaker: checked.then_some(CircuitBreaker {
                    max_requests: 10,
                    max_pending: 5,
                }),
                retries: u32::from(checked),
                protocol: if checked {
                    UpstreamProtocol::Http2
                } else {
                    UpstreamProtocol::Http1
                },
                tls: checked.then(|| UpstreamTls {
                    server_name: Some("u.internal".into()),
                    verify: true,
                    ca: None,
                    // A certificate the snapshot may or may not hold.
                    client_certificate: (name == "u1").then(|| id(50)),
                }),
                targets: targets
                    .into_iter()
                    .map(|(address, weight)| Target {
                        address: address.into(),
                        weight,
                    })
                    .collect(),
                timeouts: Timeouts::default(),
                tags: Vec::new(),
            },
        )
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        prop::sample::select(vec!["r1", "r2"]),
        prop::collection::vec(prop::sample::select(vec!["/a", "/b"]), 0..3),
        -1i32..2,
        0u128..3,
    )
        .prop_map(|(name, paths, priority, upstream)| RouteSpec {
            name: name.into(),
            paths: paths.into_iter().map(String::from).collect(),
            priority,
            upstream: id(upstream).to_string(),
            ..serde_json::from_value(json!({"name": "x", "upstream": "x"})).unwrap()
        })
}

fn credential_kind() -> impl Strategy<Value = CredentialKind> {
    prop_oneof![
        prop::sample::select(vec!['a', 'b']).prop_map(|d| CredentialKind::KeyAuth(KeyAuth {
            key: None,
            key_digest: Some(d.to_string().repeat(64)),
            key_prefix: Some("tpk_x".into()),
        })),
        prop::sample::select(vec!["u", "v"]).prop_map(|u| CredentialKind::BasicAuth(BasicAuth {
            username: u.into(),
            password: None,
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        })),
    ]
}

fn plugin_spec() -> impl Strategy<Value = PluginSpec> {
    (any::<bool>(), 0u64..3, prop::option::of(10u128..12)).prop_map(|(enabled, limit, route)| {
        PluginSpec {
            name: "rate-limit".into(),
            config: json!({"limit": limit}),
            route: route.map(|r| id(r).to_string()),
            consumer: None,
            enabled,
            tags: Vec::new(),
        }
    })
}

fn certificate_spec() -> impl Strategy<Value = CertificateSpec> {
    prop::collection::vec(prop::sample::select(vec!["a.test", "b.test"]), 0..2).prop_map(|snis| {
        CertificateSpec {
            cert: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
            key: Some("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n".into()),
            key_sha256: None,
            snis: snis.into_iter().map(String::from).collect(),
            tags: Vec::new(),
        }
    })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        0u64..1_000,
        prop::collection::btree_map(0u128..3, upstream_spec(), 0..3),
        prop::collection::btree_map(10u128..13, route_spec(), 0..3),
        prop::collection::btree_map(20u128..23, prop::sample::select(vec!["al", "bo"]), 0..3),
        prop::collection::btree_map(30u128..34, (20u128..23, credential_kind()), 0..4),
        prop::collection::btree_map(40u128..42, plugin_spec(), 0..2),
        prop::collection::btree_map(50u128..52, certificate_spec(), 0..2),
    )
        .prop_map(|(version, ups, routes, consumers, creds, plugins, certs)| {
            let credentials = creds
                .into_iter()
                // Credentials only of consumers that exist, as the wire
                // cannot carry others.
                .filter(|(_, (c, _))| consumers.contains_key(c))
                .map(|(n, (c, kind))| Credential {
                    id: id(n),
                    spec: CredentialSpec {
                        consumer: id(c).to_string(),
                        kind,
                    },
                })
                .collect();
            Snapshot {
                version,
                upstreams: ups
                    .into_iter()
                    .map(|(n, spec)| Upstream { id: id(n), spec })
                    .collect(),
                routes: routes
                    .into_iter()
                    .map(|(n, spec)| Route { id: id(n), spec })
                    .collect(),
                consumers: consumers
                    .into_iter()
                    .map(|(n, name)| consumer(n, name))
                    .collect(),
                credentials,
                plugins: plugins
                    .into_iter()
                    .map(|(n, spec)| Plugin { id: id(n), spec })
                    .collect(),
                certificates: certs
                    .into_iter()
                    .map(|(n, spec)| Certificate { id: id(n), spec })
                    .collect(),
            }
            .canonical()
        })
}

proptest! {
    #[test]
    fn patching_with_the_delta_gives_the_target(a in snapshot(), b in snapshot()) {
        let d = Delta::between(&a, &b);
        prop_assert_eq!(d.hash.clone(), b.hash());
        let patched = d.patch(&a);
        prop_assert_eq!(patched.hash(), d.hash.clone());
        prop_assert_eq!(&patched, &b);
        // Content equal (whatever the versions) is exactly an empty delta.
        prop_assert_eq!(d.is_empty(), a.to_proto_config() == b.to_proto_config());
        // The wire form carries all of it.
        let back = Delta::try_from(d.to_proto()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.patch(&a), b.clone());
        // `apply` agrees with `patch` whenever the target is valid.
        match (b.validate(), d.apply(&a)) {
            (Ok(()), Ok(applied)) => prop_assert_eq!(applied, b),
            (Err(_), Err(ModelError::Invalid(_))) => {}
            (v, r) => prop_assert!(false, "validate {:?} but apply {:?}", v, r),
        }
    }

    #[test]
    fn a_delta_never_moves_more_than_the_target(a in snapshot(), b in snapshot()) {
        let d = Delta::between(&a, &b);
        prop_assert!(d.upserts.routes.len() <= b.routes.len());
        prop_assert!(d.upserts.credentials.len() <= b.credentials.len());
        prop_assert!(d.removed.routes.len() <= a.routes.len());
    }
}
