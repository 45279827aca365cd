//! Tests of `Snapshot::diff` and `ConfigDiff::apply`: examples, and a
//! property test over small random snapshots.

use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::{Algorithm, Target, Timeouts};

fn upstream(id: u128, json: Value) -> Upstream {
    Upstream {
        id: Uuid::from_u128(id),
        spec: serde_json::from_value(json).unwrap(),
    }
}

fn route(id: u128, json: Value) -> Route {
    Route {
        id: Uuid::from_u128(id),
        spec: serde_json::from_value(json).unwrap(),
    }
}

#[test]
fn reports_added_removed_and_changed_fields_by_path() {
    let a = Snapshot::new(
        1,
        vec![
            upstream(1, json!({"name": "users", "targets": [{"address": "a:1"}]})),
            upstream(2, json!({"name": "old"})),
        ],
        vec![route(
            10,
            json!({"name": "r", "paths": ["/a", "/b"], "upstream": "x"}),
        )],
    );
    let b = Snapshot::new(
        2,
        vec![
            upstream(
                1,
                json!({"name": "users", "targets": [{"address": "a:2", "weight": 3}]}),
            ),
            upstream(3, json!({"name": "new"})),
        ],
        vec![route(
            10,
            json!({"name": "r", "paths": ["/a"], "upstream": "x", "priority": 2}),
        )],
    );
    let d = a.diff(&b);
    assert_eq!(d.upstreams.added.len(), 1);
    assert_eq!(d.upstreams.added[0].name, "new");
    assert_eq!(d.upstreams.removed[0].name, "old");
    let changed = &d.upstreams.changed[0];
    assert_eq!(changed.name, "users");
    let fields: Vec<(&str, &Value, &Value)> = changed
        .fields
        .iter()
        .map(|f| (f.field.as_str(), &f.from, &f.to))
        .collect();
    assert_eq!(
        fields,
        [
            ("targets[0].address", &json!("a:1"), &json!("a:2")),
            ("targets[0].weight", &json!(1), &json!(3)),
        ]
    );
    // A list whose length changed is reported whole.
    let route_fields: Vec<&str> = d.routes.changed[0]
        .fields
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    assert_eq!(route_fields, ["paths", "priority"]);
    assert_eq!(d.apply(&a).upstreams, b.upstreams);

    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["upstreams"]["removed"],
        json!([{"id": Uuid::from_u128(2), "name": "old"}])
    );
    assert_eq!(json["routes"]["changed"][0]["spec"]["priority"], 2);
}

#[test]
fn entries_are_sorted_by_name_then_id() {
    let empty = Snapshot::default();
    let b = Snapshot::new(
        1,
        vec![
            upstream(5, json!({"name": "b"})),
            upstream(9, json!({"name": "a"})),
            upstream(7, json!({"name": "c"})),
        ],
        vec![],
    );
    let names: Vec<String> = empty
        .diff(&b)
        .upstreams
        .added
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(b.diff(&b).is_empty());
}

/// The value at a diff path (`targets[0].address`) inside `doc`.
fn at<'a>(doc: &'a mut Value, path: &str) -> &'a mut Value {
    let mut cur = doc;
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        cur = &mut cur[key];
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            cur = &mut cur[idx.trim_end_matches(']').parse::<usize>().unwrap()];
        }
    }
    cur
}

/// Small value sets, so random snapshots share ids, names and fields often
/// enough to produce every kind of change.
fn upstream_spec() -> impl Strategy<Value = UpstreamSpec> {
    (
        prop::sample::select(vec!["u1", "u2", "u3"]),
        prop::collection::vec(
            (prop::sample::select(vec!["a:1", "b:2", "c:3"]), 0u32..3),
            0..3,
        ),
        prop::sample::select(vec![1_000u32, 5_000]),
        prop::collection::vec(prop::sample::select(vec!["x", "y"]), 0..2),
    )
        .prop_map(|(name, targets, connect_ms, tags)| UpstreamSpec {
            name: name.into(),
            algorithm: Algorithm::RoundRobin,
            hash_on: None,
            health_checks: Default::default(),
            circuit_breaker: None,
            retries: 1,
            protocol: Default::default(),
            tls: None,
            targets: targets
                .into_iter()
                .map(|(address, weight)| Target {
                    address: address.into(),
                    weight,
                })
                .collect(),
            timeouts: Timeouts {
                connect_ms,
                ..Timeouts::default()
            },
            tags: tags.into_iter().map(String::from).collect(),
        })
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        prop::sample::select(vec!["r1", "r2", "r3"]),
        prop::collection::vec(prop::sample::select(vec!["/a", "/b", "=/c"]), 0..3),
        prop::collection::vec(prop::sample::select(vec!["GET", "POST"]), 0..2),
        -1i32..2,
        prop::sample::select(vec!["u1", "u2"]),
        any::<bool>(),
    )
        .prop_map(
            |(name, paths, methods, priority, upstream, strip_path)| RouteSpec {
                headers: Default::default(),
                name: name.into(),
                hosts: Vec::new(),
                paths: paths.into_iter().map(String::from).collect(),
                methods: methods.into_iter().map(String::from).collect(),
                priority,
                upstream: upstream.into(),
                strip_path,
                preserve_host: !strip_path && priority > 0,
                tags: Vec::new(),
            },
        )
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        prop::collection::btree_map(0u128..5, upstream_spec(), 0..4),
        prop::collection::btree_map(10u128..15, route_spec(), 0..4),
    )
        .prop_map(|(ups, routes)| {
            Snapshot::new(
                1,
                ups.into_iter()
                    .map(|(id, spec)| Upstream {
                        id: Uuid::from_u128(id),
                        spec,
                    })
                    .collect(),
                routes
                    .into_iter()
                    .map(|(id, spec)| Route {
                        id: Uuid::from_u128(id),
                        spec,
                    })
                    .collect(),
            )
        })
}

proptest! {
    #[test]
    fn a_snapshot_does_not_differ_from_itself(a in snapshot()) {
        prop_assert!(a.diff(&a).is_empty());
    }

    #[test]
    fn applying_the_diff_gives_the_other_snapshot(a in snapshot(), b in snapshot()) {
        let d = a.diff(&b);
        prop_assert_eq!(d.is_empty(), a == b);
        prop_assert_eq!(d.apply(&a), b.clone());
        // The JSON form carries everything needed, too.
        let back: ConfigDiff = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        prop_assert_eq!(back.apply(&a), b.clone());
        // The field changes alone turn each old spec into the new one.
        for c in &d.routes.changed {
            let old = a.routes.iter().find(|r| r.id == c.id).unwrap();
            let mut doc = serde_json::to_value(&old.spec).unwrap();
            for f in &c.fields {
                prop_assert_eq!(&*at(&mut doc, &f.field), &f.from);
                *at(&mut doc, &f.field) = f.to.clone();
            }
            prop_assert_eq!(doc, serde_json::to_value(&c.spec).unwrap());
        }
        for c in &d.upstreams.changed {
            let old = a.upstreams.iter().find(|u| u.id == c.id).unwrap();
            let mut doc = serde_json::to_value(&old.spec).unwrap();
            for f in &c.fields {
                prop_assert_eq!(&*at(&mut doc, &f.field), &f.from);
                *at(&mut doc, &f.field) = f.to.clone();
            }
            prop_assert_eq!(doc, serde_json::to_value(&c.spec).unwrap());
        }
    }
}
