//! Upstream client certificates (`tls.client_certificate`, mutual TLS to
//! the targets) through the admin API against real Postgres: the reference
//! checked on write with its field path, the certificate kept from deletion
//! while an upstream presents it, certificates without SNIs, and the
//! declarative document (export carries certificate ids, import checks the
//! reference and replaces certificates and upstreams in a working order).

mod support;

use axum::http::{Method, StatusCode};
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{Api, fields};

/// A self-signed client certificate (no names) and its key, PEM.
fn client_cert() -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Creates a certificate without SNIs; returns its id.
async fn certificate(api: &Api) -> String {
    let (cert, key) = client_cert();
    let r = api
        .call(
            Method::POST,
            "/api/v1/certificates",
            Some(json!({"cert": cert, "key": key})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["snis"], json!([]), "no SNIs needed");
    r.body["id"].as_str().unwrap().to_owned()
}

fn upstream(name: &str, cert: &str) -> Value {
    json!({
        "name": name,
        "targets": [{"address": "billing.internal:8443"}],
        "tls": {"server_name": "billing.internal", "client_certificate": cert}
    })
}

#[sqlx::test(migrations = false)]
async fn an_upstream_presents_an_existing_certificate_that_cannot_go_while_used(pool: PgPool) {
    let api = Api::new(pool).await;
    let before = api.state.publisher.current().version;

    // No such certificate, or not an id: refused with the field's path.
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(upstream("billing", &unknown)),
        )
        .await;
    assert_eq!(fields(&r), ["tls.client_certificate"]);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&unknown)
    );
    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(upstream("billing", "my-cert")),
        )
        .await;
    assert_eq!(fields(&r), ["tls.client_certificate"]);
    assert_eq!(
        api.state.publisher.current().version,
        before,
        "nothing stored"
    );

    let cert = certificate(&api).await;
    let created = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(upstream("billing", &cert)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["tls"]["client_certificate"], cert.as_str());
    let read = api
        .call(Method::GET, "/api/v1/upstreams/billing", None)
        .await;
    assert!(
        !read.body.to_string().contains("PRIVATE KEY"),
        "{}",
        read.body
    );
    // Data planes get the reference and, beside it, the certificate's key.
    let published = api.state.publisher.current();
    let config = published.wire.config.as_ref().unwrap();
    let tls = config.upstreams[0].tls.as_ref().unwrap();
    assert_eq!(tls.client_certificate.as_deref(), Some(cert.as_str()));
    assert!(config.certificates[0].key_pem.contains("PRIVATE KEY"));

    // In use: the certificate cannot go, and the 409 names the user.
    let one = format!("/api/v1/certificates/{cert}");
    let blocked = api.call(Method::DELETE, &one, None).await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{}", blocked.body);
    assert_eq!(blocked.content_type, "application/problem+json");
    assert!(
        blocked.body["detail"]
            .as_str()
            .unwrap()
            .contains("upstream billing"),
        "{}",
        blocked.body
    );
    // Nor may a PUT point the upstream at a certificate that is not there.
    let put = api
        .call(
            Method::PUT,
            "/api/v1/upstreams/billing",
            Some(upstream("billing", &unknown)),
        )
        .await;
    assert_eq!(fields(&put), ["tls.client_certificate"]);

    // Once no upstream presents it, it can go.
    let patched = api
        .call(
            Method::PATCH,
            "/api/v1/upstreams/billing",
            Some(json!({"tls": {"client_certificate": null}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert!(patched.body["tls"].get("client_certificate").is_none());
    let del = api.call(Method::DELETE, &one, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.body);
}

#[sqlx::test(migrations = false)]
async fn the_declarative_document_carries_and_checks_the_reference(pool: PgPool) {
    let api = Api::new(pool).await;
    let cert = certificate(&api).await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(upstream("billing", &cert)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let current = r.version.unwrap();

    // The export names the certificate by id, without its key.
    let export = api.call(Method::GET, "/api/v1/config/export", None).await;
    assert_eq!(export.status, StatusCode::OK);
    let doc = export.body.clone();
    assert_eq!(doc["certificates"][0]["id"], cert.as_str());
    assert_eq!(
        doc["upstreams"][0]["tls"]["client_certificate"],
        cert.as_str()
    );
    assert!(!doc.to_string().contains("PRIVATE KEY"));
    // Importing it changes nothing.
    let same = api
        .call(Method::POST, "/api/v1/config/import", Some(doc.clone()))
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.body["version"], current, "no new version");

    // A reference to a certificate the document does not hold.
    let mut dangling = doc.clone();
    dangling["certificates"] = json!([]);
    let r = api
        .call(Method::POST, "/api/v1/config/import", Some(dangling))
        .await;
    assert_eq!(fields(&r), ["upstreams[0].tls.client_certificate"]);

    // Swap the certificate in one import: the new one is written before
    // the upstream points at it, the old one deleted after it no longer does.
    let (pem, key) = client_cert();
    let new_id = uuid::Uuid::now_v7().to_string();
    let mut swapped = doc.clone();
    swapped["certificates"] = json!([{"id": new_id, "cert": pem, "key": key}]);
    swapped["upstreams"][0]["tls"]["client_certificate"] = json!(new_id);
    let r = api
        .call(Method::POST, "/api/v1/config/import", Some(swapped))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["diff"]["certificates"]["added"][0]["id"],
        new_id.as_str()
    );
    assert_eq!(
        r.body["diff"]["certificates"]["removed"][0]["id"],
        cert.as_str()
    );
    let gone = api
        .call(Method::GET, &format!("/api/v1/certificates/{cert}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let blocked = api
        .call(
            Method::DELETE,
            &format!("/api/v1/certificates/{new_id}"),
            None,
        )
        .await;
    assert_eq!(
        blocked.status,
        StatusCode::CONFLICT,
        "the import set the reference"
    );

    // Remove both the upstream and its certificate in one import.
    let empty = json!({"format_version": "1"});
    let r = api
        .call(Method::POST, "/api/v1/config/import", Some(empty))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM certificates")
        .fetch_one(api.state.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);

    // And back, by rolling back to the version that had them.
    let r = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": current})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let read = api
        .call(Method::GET, "/api/v1/upstreams/billing", None)
        .await;
    assert_eq!(read.body["tls"]["client_certificate"], cert.as_str());
    let blocked = api
        .call(
            Method::DELETE,
            &format!("/api/v1/certificates/{cert}"),
            None,
        )
        .await;
    assert_eq!(
        blocked.status,
        StatusCode::CONFLICT,
        "the rollback set the reference"
    );
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_describes_the_field(pool: PgPool) {
    let api = Api::new(pool).await;
    let doc = api
        .call_as(None, Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let schemas = &doc.body["components"]["schemas"];
    let field = &schemas["UpstreamTls"]["properties"]["client_certificate"];
    assert_eq!(field["format"], "uuid", "{field}");
    assert!(field["description"].as_str().unwrap().contains("mutual"));
    let cert = &schemas["CertificateSpec"];
    let snis = &cert["properties"]["snis"];
    assert!(snis.get("minItems").is_none(), "{snis}");
    let required = cert["required"].as_array().unwrap();
    assert!(!required.contains(&json!("snis")), "{cert}");
}
