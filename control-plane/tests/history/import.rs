//! Export and import of the declarative document.

use super::*;

const YAML: &str = "application/yaml";
const JSON: &str = "application/json";

/// Two upstreams with one route each.
async fn seed(api: &Api) {
    api.created(
        "upstreams",
        json!({"name": "users", "targets": [{"address": "10.0.0.1:80"}]}),
    )
    .await;
    api.created("upstreams", json!({"name": "orders"})).await;
    api.created(
        "routes",
        json!({"name": "users-api", "paths": ["/users"], "upstream": "users"}),
    )
    .await;
    api.created(
        "routes",
        json!({"name": "orders-api", "paths": ["/orders"], "upstream": "orders"}),
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn export_then_import_changes_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    seed(&api).await;
    let before = api.current().await;

    let json_doc = api.call(Method::GET, "/api/v1/config/export", None).await;
    assert_eq!(json_doc.status, StatusCode::OK, "{}", json_doc.text);
    assert_eq!(json_doc.content_type, JSON);
    assert_eq!(json_doc.version, Some(before));
    let upstream_names: Vec<&str> = json_doc.body["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(upstream_names, ["orders", "users"], "sorted by name");

    let yaml_doc = api
        .send(
            ADMIN,
            Method::GET,
            "/api/v1/config/export",
            &[("accept", YAML)],
            Vec::new(),
        )
        .await;
    assert_eq!(yaml_doc.content_type, YAML);
    assert!(
        yaml_doc.text.starts_with("format_version: '1'\n"),
        "{}",
        yaml_doc.text
    );
    let by_query = api
        .call(Method::GET, "/api/v1/config/export?format=yaml", None)
        .await;
    assert_eq!(by_query.text, yaml_doc.text);
    let again = api.call(Method::GET, "/api/v1/config/export", None).await;
    assert_eq!(again.text, json_doc.text, "deterministic");

    for (ct, body) in [(JSON, json_doc.text), (YAML, yaml_doc.text)] {
        let r = api.import("", ct, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["dry_run"], false);
        assert_eq!(r.body["version"], before);
        assert_eq!(r.body["diff"]["upstreams"]["changed"], json!([]));
        assert_eq!(r.body["diff"]["routes"]["added"], json!([]));
    }
    assert_eq!(api.current().await, before, "no new version");
}

#[sqlx::test(migrations = false)]
async fn import_replaces_everything_in_one_version_and_keeps_ids_by_name(pool: PgPool) {
    let api = Api::new(pool).await;
    seed(&api).await;
    let users = api.call(Method::GET, "/api/v1/upstreams/users", None).await;
    let route = api
        .call(Method::GET, "/api/v1/routes/users-api", None)
        .await;
    let before = api.current().await;

    let doc = r#"
format_version: "1"
upstreams:
  - name: users
    targets: [{address: "10.0.0.9:80"}]
  - name: billing
routes:
  - name: users-api
    paths: ["/v2/users"]
    upstream: users
  - name: billing-api
    paths: ["/billing"]
    upstream: billing
"#;
    let r = api
        .import("?dry_run=false", "text/yaml; charset=utf-8", doc)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["dry_run"], false);
    let new = r.body["version"].as_u64().unwrap();
    assert_eq!(new, before + 1, "exactly one version");
    assert_eq!(r.version, Some(new));
    let d = &r.body["diff"];
    assert_eq!(names(d, "upstreams", "added"), ["billing"]);
    assert_eq!(names(d, "upstreams", "removed"), ["orders"]);
    assert_eq!(names(d, "upstreams", "changed"), ["users"]);
    assert_eq!(names(d, "routes", "added"), ["billing-api"]);
    assert_eq!(names(d, "routes", "removed"), ["orders-api"]);
    assert_eq!(names(d, "routes", "changed"), ["users-api"]);
    assert_eq!(d["routes"]["changed"][0]["fields"][0]["field"], "paths[0]");

    let users_now = api.call(Method::GET, "/api/v1/upstreams/users", None).await;
    assert_eq!(users_now.body["id"], users.body["id"], "matched by name");
    assert_eq!(users_now.body["created_at"], users.body["created_at"]);
    assert_eq!(users_now.body["targets"][0]["address"], "10.0.0.9:80");
    let route_now = api
        .call(Method::GET, "/api/v1/routes/users-api", None)
        .await;
    assert_eq!(route_now.body["id"], route.body["id"]);
    let orders = api
        .call(Method::GET, "/api/v1/upstreams/orders", None)
        .await;
    assert_eq!(orders.status, StatusCode::NOT_FOUND);
    let billing = api
        .call(Method::GET, "/api/v1/routes/billing-api", None)
        .await;
    let billing_up = api
        .call(Method::GET, "/api/v1/upstreams/billing", None)
        .await;
    assert_eq!(
        billing.body["upstream"], billing_up.body["id"],
        "stored by id"
    );

    assert_eq!(api.state.publisher.current().version, new);
    let history = api
        .call(Method::GET, "/api/v1/config/versions?limit=2", None)
        .await;
    assert_eq!(history.body["items"][0]["summary"], "import config");
    assert_eq!(history.body["items"][1]["version"], before);

    // Routes change upstream: the reference column follows the spec.
    let swap = r#"{"format_version": "1",
        "upstreams": [{"name": "users"}, {"name": "billing"}],
        "routes": [{"name": "users-api", "upstream": "billing"}, {"name": "billing-api", "upstream": "users"}]}"#;
    let r = api.import("", JSON, swap).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], new + 1);
    let moved = api
        .call(Method::GET, "/api/v1/routes/users-api", None)
        .await;
    assert_eq!(moved.body["upstream"], billing_up.body["id"]);
    let blocked = api
        .call(Method::DELETE, "/api/v1/upstreams/billing", None)
        .await;
    assert_eq!(
        blocked.status,
        StatusCode::CONFLICT,
        "the FK points at billing now"
    );
}

#[sqlx::test(migrations = false)]
async fn a_dry_run_stores_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    seed(&api).await;
    let before = api.current().await;
    let doc = json!({"format_version": "1", "upstreams": [{"name": "solo"}]});
    let r = api.import("?dry_run=true", JSON, doc.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["dry_run"], true);
    assert_eq!(r.body["version"], before);
    assert_eq!(r.version, None, "a dry run produces no version");
    assert_eq!(names(&r.body["diff"], "upstreams", "added"), ["solo"]);
    assert_eq!(
        names(&r.body["diff"], "upstreams", "removed"),
        ["orders", "users"]
    );
    assert_eq!(api.current().await, before);
    let list = api.call(Method::GET, "/api/v1/upstreams", None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
}

#[sqlx::test(migrations = false)]
async fn an_invalid_document_is_refused_whole(pool: PgPool) {
    let api = Api::new(pool).await;
    seed(&api).await;
    let before = api.current().await;
    let doc = r#"
format_version: "1"
upstreams:
  - name: ok
  - name: bad
    targets: [{address: "nohost"}]
routes:
  - name: r
    upstream: missing
consumers: [{username: alice, credentials: [{type: basic-auth, username: alice}]}]
"#;
    let r = api.import("", YAML, doc).await;
    assert_eq!(
        fields(&r),
        [
            "upstreams[1].targets[0].address",
            "consumers[0].credentials[0].password",
            "routes[0].upstream"
        ]
    );
    let malformed = api.import("", YAML, "upstreams: [unclosed").await;
    assert_eq!(
        malformed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        malformed.text
    );
    assert!(malformed.body["detail"].as_str().unwrap().contains("YAML"));
    let wrong_type = api.import("", "text/plain", "format_version: 1").await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bad_flag = api.import("?dry_run=maybe", JSON, "{}").await;
    assert_eq!(fields(&bad_flag), ["dry_run"]);
    let reader = api
        .send(
            READER,
            Method::POST,
            "/api/v1/config/import",
            &[("content-type", YAML)],
            b"format_version: 1".to_vec(),
        )
        .await;
    assert_eq!(reader.status, StatusCode::FORBIDDEN);
    assert_eq!(api.current().await, before, "nothing stored");
    let list = api.call(Method::GET, "/api/v1/upstreams", None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
}

#[sqlx::test(migrations = false)]
async fn import_takes_bodies_up_to_32_mib(pool: PgPool) {
    let api = Api::new(pool).await;
    // Over the 2 MiB of other endpoints, padded with a YAML comment.
    let mut doc = format!("# {}\n", "x".repeat(3 * 1024 * 1024));
    doc.push_str("format_version: \"1\"\nupstreams: [{name: big}]\n");
    let r = api.import("", YAML, doc).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(names(&r.body["diff"], "upstreams", "added"), ["big"]);
    let huge = format!("# {}\n", "x".repeat(33 * 1024 * 1024));
    let r = api.import("", YAML, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}
