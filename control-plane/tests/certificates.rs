//! Certificates through the admin API against real Postgres: PEM, key
//! match and validity checks (certificates made with rcgen), unique SNIs,
//! the key never shown, PUT of a read keeping the key, If-Match, paging and
//! roles.

mod support;

use axum::http::{Method, StatusCode};
use rcgen::{CertificateParams, KeyPair, date_time_ymd};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{ADMIN, Api, READER, fields};

/// A self-signed certificate for `names` and its key, PEM.
fn cert(names: &[&str], expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn post(api: &Api, body: Value) -> support::Reply {
    api.call(Method::POST, "/api/v1/certificates", Some(body))
        .await
}

#[sqlx::test(migrations = false)]
async fn a_valid_certificate_is_stored_and_its_key_never_shown(pool: PgPool) {
    let api = Api::new(pool).await;
    let (pem, key) = cert(&["api.example.com"], false);
    let created = post(&api, json!({"cert": pem, "key": key, "snis": ["API.example.com", "*.example.com"], "tags": ["edge"]})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let b = &created.body;
    assert_eq!(
        b["snis"],
        json!(["api.example.com", "*.example.com"]),
        "normalized"
    );
    assert!(b.get("key").is_none());
    assert_eq!(b["key_sha256"].as_str().unwrap().len(), 64);
    assert!(b["subject"].as_str().unwrap().contains("rcgen"), "{b}");
    assert!(b["not_after"].is_string() && b["issuer"].is_string());
    assert!(!b.to_string().contains("PRIVATE KEY"));
    let id = b["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/certificates/{id}");

    let read = api.call(Method::GET, &one, None).await;
    assert!(!read.body.to_string().contains("PRIVATE KEY"));
    let list = api.call(Method::GET, "/api/v1/certificates", None).await;
    assert!(!list.body.to_string().contains("PRIVATE KEY"));
    // Data planes terminate TLS with it: the key travels in the snapshot.
    let wire = api.state.publisher.current();
    let c = &wire.wire.config.as_ref().unwrap().certificates[0];
    assert_eq!(c.key_pem, key);

    // A read sent back keeps the key; PATCH too.
    let mut doc = read.body.clone();
    doc["tags"] = json!(["edge", "eu"]);
    let put = api.call(Method::PUT, &one, Some(doc)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["key_sha256"], read.body["key_sha256"]);
    let patch = api
        .call(
            Method::PATCH,
            &one,
            Some(json!({"snis": ["api.example.com"]})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let (spec,): (Value,) = sqlx::query_as("SELECT spec FROM certificates")
        .fetch_one(api.state.store.pool())
        .await
        .unwrap();
    assert_eq!(spec["key"], key.as_str());
    let wrong_digest = api
        .call(
            Method::PUT,
            &one,
            Some(json!({"cert": pem, "key_sha256": "0".repeat(64), "snis": ["a.example.com"]})),
        )
        .await;
    assert_eq!(fields(&wrong_digest), ["key_sha256"]);

    let del = api.call(Method::DELETE, &one, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM certificate_snis")
        .fetch_one(api.state.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "SNIs go with their certificate");
}

#[sqlx::test(migrations = false)]
async fn expired_mismatched_and_malformed_certificates_are_refused(pool: PgPool) {
    let api = Api::new(pool).await;
    let before = api.state.publisher.current().version;
    let (old, old_key) = cert(&["old.example.com"], true);
    let expired = post(
        &api,
        json!({"cert": old, "key": old_key, "snis": ["old.example.com"]}),
    )
    .await;
    assert_eq!(fields(&expired), ["cert"]);
    assert!(
        expired.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    let (pem, _) = cert(&["a.example.com"], false);
    let (_, other_key) = cert(&["b.example.com"], false);
    let mismatch = post(
        &api,
        json!({"cert": pem, "key": other_key, "snis": ["a.example.com"]}),
    )
    .await;
    assert_eq!(fields(&mismatch), ["key"]);

    let garbage = post(
        &api,
        json!({"cert": "not a pem", "key": "nor this", "snis": ["a.example.com"]}),
    )
    .await;
    assert_eq!(fields(&garbage), ["cert", "key"]);
    let swapped = post(
        &api,
        json!({"cert": other_key, "key": pem, "snis": ["a.example.com"]}),
    )
    .await;
    assert_eq!(fields(&swapped), ["cert", "key"]);
    let no_sni = post(
        &api,
        json!({"cert": pem, "key": other_key, "snis": ["bad host"]}),
    )
    .await;
    assert_eq!(fields(&no_sni), ["snis[0]"]);
    let no_key = post(&api, json!({"cert": pem, "snis": ["a.example.com"]})).await;
    assert_eq!(fields(&no_key), ["key"]);
    assert_eq!(
        api.state.publisher.current().version,
        before,
        "nothing stored"
    );
}

#[sqlx::test(migrations = false)]
async fn snis_are_unique_across_certificates(pool: PgPool) {
    let api = Api::new(pool).await;
    let (a, a_key) = cert(&["a.example.com"], false);
    let (b, b_key) = cert(&["b.example.com"], false);
    let first = post(
        &api,
        json!({"cert": a, "key": a_key, "snis": ["a.example.com", "*.example.com"]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let taken = post(
        &api,
        json!({"cert": b, "key": b_key, "snis": ["b.example.com", "*.EXAMPLE.com"]}),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(
        taken.body["detail"]
            .as_str()
            .unwrap()
            .contains("*.example.com")
    );
    let second = post(
        &api,
        json!({"cert": b, "key": b_key, "snis": ["b.example.com"]}),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED);
    let id = second.body["id"].as_str().unwrap();
    let steal = api
        .call(
            Method::PATCH,
            &format!("/api/v1/certificates/{id}"),
            Some(json!({"snis": ["a.example.com"]})),
        )
        .await;
    assert_eq!(steal.status, StatusCode::CONFLICT);
    let dup_in_one = post(
        &api,
        json!({"cert": b, "key": b_key, "snis": ["c.example.com", "c.example.com"]}),
    )
    .await;
    assert_eq!(fields(&dup_in_one), ["snis[1]"]);
}

#[sqlx::test(migrations = false)]
async fn lookup_by_id_if_match_paging_and_roles(pool: PgPool) {
    let api = Api::new(pool).await;
    for host in ["a.example.com", "b.example.com", "c.example.com"] {
        let (pem, key) = cert(&[host], false);
        let r = post(&api, json!({"cert": pem, "key": key, "snis": [host]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    assert_eq!(
        api.call(Method::GET, "/api/v1/certificates/a.example.com", None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "found by id only"
    );
    let page = api
        .call(Method::GET, "/api/v1/certificates?limit=2", None)
        .await;
    let next = page.body["next"].as_str().unwrap();
    let rest = api
        .call(
            Method::GET,
            &format!("/api/v1/certificates?after={next}"),
            None,
        )
        .await;
    assert_eq!(rest.body["items"][0]["snis"][0], "c.example.com");
    let one = format!(
        "/api/v1/certificates/{}",
        rest.body["items"][0]["id"].as_str().unwrap()
    );

    let read = api.call_as(Some(READER), Method::GET, &one, None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.body.to_string().contains("PRIVATE KEY"));
    let denied = api.call_as(Some(READER), Method::DELETE, &one, None).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let etag = read.etag.unwrap();
    let ok = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &etag)],
            Method::PATCH,
            &one,
            Some(json!({"tags": ["t"]})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let stale = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &etag)],
            Method::DELETE,
            &one,
            None,
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
}
