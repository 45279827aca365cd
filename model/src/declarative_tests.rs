//! Tests of the declarative document: parsing with field paths, canonical
//! rendering, and name-based id matching.

use serde_json::json;

use super::*;
use crate::Snapshot;

const SAMPLE: &str = r#"
format_version: "1"
upstreams:
  - name: users
    targets: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002", weight: 2}]
  - name: orders
routes:
  - name: users-api
    hosts: [API.Example.com]
    paths: ["/users"]
    methods: [get]
    upstream: users
    plugins: []
consumers: []
plugins: []
"#;

fn fields(err: ModelError) -> Vec<String> {
    match err {
        ModelError::Invalid(e) => e.0.into_iter().map(|e| e.field).collect(),
        other => panic!("expected validation errors, got {other}"),
    }
}

#[test]
fn parses_yaml_and_normalizes() {
    let doc = Document::parse(SAMPLE.as_bytes(), Format::Yaml).unwrap();
    assert_eq!(doc.upstreams.len(), 2);
    assert_eq!(doc.upstreams[0].targets[1].weight, 2);
    assert_eq!(doc.routes[0].spec.hosts, ["api.example.com"]);
    assert_eq!(doc.routes[0].spec.methods, ["GET"]);
    assert_eq!(doc.routes[0].spec.upstream, "users");
    // JSON is the same document.
    let json = serde_json::to_vec(&doc).unwrap();
    assert_eq!(Document::parse(&json, Format::Json).unwrap(), doc);
    // `format_version: 1` as a number is accepted; absent lists are empty.
    let minimal = Document::parse(b"format_version: 1\n", Format::Yaml).unwrap();
    assert!(minimal.upstreams.is_empty() && minimal.routes.is_empty());
}

#[test]
fn reports_every_bad_field_with_its_path() {
    let doc = json!({
        "format_version": "1",
        "color": "red",
        "upstreams": [
            {"name": "a", "targets": [{"address": "a:1"}]},
            {"name": "a"},
            {"name": "c", "targets": [{"address": "nohost"}]},
            {"name": "d", "nope": 1}
        ],
        "routes": [
            {"name": "r1", "upstream": "a", "paths": ["bad"]},
            {"name": "r2", "upstream": "missing"},
            {"name": "r3", "upstream": "a", "plugins": [{"name": "cors", "config": {"credentials": true}}]},
            {"name": "r4"}
        ],
        "consumers": [{"username": "alice", "credentials": [{"type": "key-auth", "key": "short"}]}],
        "plugins": []
    });
    let err = Document::parse(doc.to_string().as_bytes(), Format::Json).unwrap_err();
    assert_eq!(
        fields(err),
        [
            "color",
            "upstreams[2].targets[0].address",
            "upstreams[3].nope",
            "routes[0].paths[0]",
            "routes[3]",
            "routes[2].plugins[0].config.credentials",
            "consumers[0].credentials[0].key",
            "upstreams[1].name",
            "routes[1].upstream",
        ]
    );
    let err = Document::parse(b"upstreams: []\n", Format::Yaml).unwrap_err();
    assert_eq!(fields(err), ["format_version"]);
    let err = Document::parse(b"format_version: \"2\"\n", Format::Yaml).unwrap_err();
    assert_eq!(fields(err), ["format_version"]);
}

#[test]
fn malformed_text_is_a_syntax_error() {
    for (text, format) in [
        (&b"{not json"[..], Format::Json),
        (b"upstreams: [unclosed", Format::Yaml),
    ] {
        let err = Document::parse(text, format).unwrap_err();
        assert!(matches!(err, ModelError::Syntax { .. }), "{err}");
    }
    let err = Document::parse(b"- a list\n", Format::Yaml).unwrap_err();
    assert_eq!(fields(err), [""]);
}

#[test]
fn snapshot_round_trip_keeps_ids_by_name_and_renders_deterministically() {
    let doc = Document::parse(SAMPLE.as_bytes(), Format::Yaml).unwrap();
    let first = doc.to_snapshot(&Snapshot::default()).unwrap();
    assert_eq!(first.validate(), Ok(()));
    let users = first
        .upstreams
        .iter()
        .find(|u| u.spec.name == "users")
        .unwrap();
    assert_eq!(first.routes[0].spec.upstream, users.id.to_string());

    // Exported, the document is canonical: sorted by name, routes by name.
    let exported = Document::from_snapshot(&first);
    let names: Vec<&str> = exported.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["orders", "users"]);
    assert_eq!(exported.routes[0].spec.upstream, "users");

    // Importing it again against the snapshot keeps every id: no change.
    let again = exported.to_snapshot(&first).unwrap();
    assert!(first.diff(&again).is_empty());
    let yaml = exported.render(Format::Yaml);
    assert_eq!(yaml, Document::from_snapshot(&again).render(Format::Yaml));
    let reparsed = Document::parse(yaml.as_bytes(), Format::Yaml).unwrap();
    assert_eq!(reparsed, exported);
    let json = exported.render(Format::Json);
    assert!(json.ends_with("}\n"));
    assert_eq!(
        Document::parse(json.as_bytes(), Format::Json).unwrap(),
        exported
    );

    // A new name gets a new id; a removed one is gone.
    let mut changed = exported.clone();
    changed.upstreams.retain(|u| u.name != "orders");
    changed.upstreams[0].name = "people".into();
    changed.routes[0].spec.upstream = "people".into();
    let next = changed.to_snapshot(&first).unwrap();
    let d = first.diff(&next);
    let added: Vec<&str> = d.upstreams.added.iter().map(|a| a.name.as_str()).collect();
    let removed: Vec<&str> = d
        .upstreams
        .removed
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(added, ["people"]);
    assert_eq!(removed, ["orders", "users"]);
    assert_eq!(d.routes.changed[0].id, first.routes[0].id);
    assert_eq!(d.routes.changed[0].fields[0].field, "upstream");
}

#[test]
fn yaml_round_trip_keeps_strings_that_look_like_other_things() {
    let doc = json!({
        "format_version": "1",
        "upstreams": [{"name": "~", "targets": [{"address": "[::1]:80"}], "tags": ["null", "true", "1.5", "0x10", "-", "on"]}],
        "routes": [{
            "name": "123",
            "hosts": ["*.example.com"],
            "paths": ["~^/v[0-9]+/", "=/exact", "/a:b", "~^/(a|b)$", "/&x", "/*y"],
            "upstream": "~"
        }]
    });
    let parsed = Document::parse(doc.to_string().as_bytes(), Format::Json).unwrap();
    let yaml = parsed.render(Format::Yaml);
    assert_eq!(
        Document::parse(yaml.as_bytes(), Format::Yaml).unwrap(),
        parsed,
        "{yaml}"
    );
}
