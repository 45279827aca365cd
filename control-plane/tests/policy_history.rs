//! Consumers, credentials, plugins and certificates in the whole-config
//! endpoints: export and history never show a secret, importing an export
//! is a no-op, rollback brings a consumer back with its credentials, and an
//! import seals the secrets it is given in clear.

mod support;

use axum::http::{Method, StatusCode};
use rcgen::{CertificateParams, KeyPair, date_time_ymd};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{Api, READER, fields};
use turnpike_control_plane::seal;

const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn cert(host: &str, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
    if expired {
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
    }
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

/// One entity of each kind; returns the generated key-auth key.
async fn seed(api: &Api) -> String {
    let (pem, key) = cert("api.example.com", false);
    let mut generated = String::new();
    for (path, body) in [
        ("/api/v1/upstreams", json!({"name": "u"})),
        ("/api/v1/routes", json!({"name": "r", "upstream": "u"})),
        ("/api/v1/consumers", json!({"username": "alice"})),
        (
            "/api/v1/consumers/alice/credentials",
            json!({"type": "key-auth"}),
        ),
        (
            "/api/v1/consumers/alice/credentials",
            json!({"type": "basic-auth", "username": "alice", "password": PASSWORD}),
        ),
        (
            "/api/v1/consumers/alice/credentials",
            json!({"type": "jwt", "key": "iss-a", "secret": SECRET}),
        ),
        ("/api/v1/plugins", json!({"name": "cors"})),
        (
            "/api/v1/plugins",
            json!({"name": "rate-limit", "config": {"limit": 5}, "route": "r", "consumer": "alice"}),
        ),
        (
            "/api/v1/certificates",
            json!({"cert": pem, "key": key, "snis": ["api.example.com"]}),
        ),
    ] {
        let r = api.call(Method::POST, path, Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
        if let Some(k) = r.body["key"].as_str().filter(|k| k.starts_with("tpk_")) {
            generated = k.to_owned();
        }
    }
    generated
}

fn assert_no_secrets(text: &str, key: &str) {
    for secret in [key, PASSWORD, SECRET, "PRIVATE KEY"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

async fn import(api: &Api, query: &str, doc: &Value) -> support::Reply {
    api.call(
        Method::POST,
        &format!("/api/v1/config/import{query}"),
        Some(doc.clone()),
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn export_and_history_hide_secrets_and_reimport_is_a_no_op(pool: PgPool) {
    let api = Api::new(pool).await;
    let key = seed(&api).await;
    let version = api.state.publisher.current().version;

    let export = api.call(Method::GET, "/api/v1/config/export", None).await;
    assert_eq!(export.status, StatusCode::OK);
    let doc = export.body.clone();
    assert_no_secrets(&doc.to_string(), &key);
    let creds = &doc["consumers"][0]["credentials"];
    assert_eq!(
        creds[0]["password_hash"].as_str().unwrap().get(..10),
        Some("$argon2id$")
    );
    assert_eq!(creds[1]["secret_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(creds[2]["key_digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        doc["certificates"][0]["key_sha256"].as_str().unwrap().len(),
        64
    );
    assert_eq!(doc["routes"][0]["plugins"][0]["consumer"], "alice");
    assert_eq!(doc["plugins"][0]["name"], "cors");
    let reader = api
        .call_as(Some(READER), Method::GET, "/api/v1/config/export", None)
        .await;
    assert_eq!(reader.body, doc);

    let again = import(&api, "", &doc).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["version"], version, "no new version");
    assert_eq!(api.state.publisher.current().version, version);

    let detail = api
        .call(
            Method::GET,
            &format!("/api/v1/config/versions/{version}"),
            None,
        )
        .await;
    assert_no_secrets(&detail.body.to_string(), &key);
    let diff = api
        .call(
            Method::GET,
            &format!("/api/v1/config/diff?from=1&to={version}"),
            None,
        )
        .await;
    assert_eq!(
        diff.body["credentials"]["added"].as_array().unwrap().len(),
        3
    );
    assert_no_secrets(&diff.body.to_string(), &key);

    // A certificate key change shows as a digest change, never as PEM.
    let (pem, new_key) = cert("api.example.com", false);
    let mut changed = doc.clone();
    changed["certificates"][0] = json!({"cert": pem, "key": new_key, "snis": ["api.example.com"]});
    let dry = import(&api, "?dry_run=true", &changed).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    let fields_changed = dry.body["diff"]["certificates"]["changed"][0]["fields"].to_string();
    assert!(fields_changed.contains("key_sha256"), "{fields_changed}");
    assert_no_secrets(&dry.body.to_string(), &key);
}

#[sqlx::test(migrations = false)]
async fn rollback_brings_a_consumer_back_with_its_credentials(pool: PgPool) {
    let api = Api::new(pool).await;
    seed(&api).await;
    let before = api.state.publisher.current();
    let consumer = api.call(Method::GET, "/api/v1/consumers/alice", None).await;
    let plugins = api.call(Method::GET, "/api/v1/plugins", None).await;
    let scoped = plugins.body["items"][1]["id"].as_str().unwrap().to_owned();
    api.call(Method::DELETE, &format!("/api/v1/plugins/{scoped}"), None)
        .await;
    let del = api
        .call(Method::DELETE, "/api/v1/consumers/alice", None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);

    let back = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": before.version})),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(
        back.body["diff"]["credentials"]["added"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let now = api.state.publisher.current();
    assert_eq!(
        now.wire.hash, before.wire.hash,
        "the same content, ids included"
    );
    let again = api.call(Method::GET, "/api/v1/consumers/alice", None).await;
    assert_eq!(again.body["id"], consumer.body["id"]);
    let creds = api
        .call(Method::GET, "/api/v1/consumers/alice/credentials", None)
        .await;
    assert_eq!(creds.body["items"].as_array().unwrap().len(), 3);
}

#[sqlx::test(migrations = false)]
async fn an_import_seals_clear_secrets_and_checks_certificates(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = json!({
        "format_version": "1",
        "consumers": [{"username": "bob", "credentials": [
            {"type": "key-auth", "key": "bob-secret-key-0001"},
            {"type": "basic-auth", "username": "bob", "password": "bob-password"}
        ]}],
        "plugins": [{"name": "key-auth"}]
    });
    let first = import(&api, "", &doc).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let version = api.state.publisher.current().version;
    let pepper = api
        .state
        .store
        .get_setting(seal::PEPPER_SETTING)
        .await
        .unwrap()
        .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT lookup, spec::text FROM credentials ORDER BY type")
            .fetch_all(api.state.store.pool())
            .await
            .unwrap();
    assert_eq!(rows[1].0, seal::key_digest(&pepper, "bob-secret-key-0001"));
    assert!(
        !format!("{rows:?}").contains("bob-password")
            && !format!("{rows:?}").contains("bob-secret-key")
    );
    // The same file again: the password still verifies, the key digests the
    // same, so nothing changes.
    let second = import(&api, "", &doc).await;
    assert_eq!(second.body["version"], version, "{}", second.body);

    let (old, old_key) = cert("old.example.com", true);
    let mut bad = doc.clone();
    bad["certificates"] = json!([
        {"cert": old, "key": old_key, "snis": ["old.example.com"]},
        {"cert": "C", "key_sha256": "0".repeat(64), "snis": ["x.example.com"]}
    ]);
    let refused = import(&api, "", &bad).await;
    assert_eq!(fields(&refused), ["certificates[1].key_sha256"]);
    bad["certificates"].as_array_mut().unwrap().pop();
    let refused = import(&api, "", &bad).await;
    assert_eq!(fields(&refused), ["certificates[0].cert"]);
    assert_eq!(api.state.publisher.current().version, version);
}
