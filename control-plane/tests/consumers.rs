//! Consumers through the admin API against real Postgres: CRUD by id or
//! username, validation, unique usernames, If-Match, paging, roles, and the
//! snapshot they flow into.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use support::{ADMIN, Api, READER, fields};

#[sqlx::test(migrations = false)]
async fn crud_by_id_or_username_bumps_versions(pool: PgPool) {
    let api = Api::new(pool).await;
    let created = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "alice", "groups": ["staff"], "tags": ["team-a"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let v1 = created.version.unwrap();
    assert!(created.etag.is_some());

    // The snapshot carries it.
    let published = api.state.publisher.current();
    assert_eq!(published.version, v1);
    let wire = published.wire.config.as_ref().unwrap();
    assert_eq!(wire.consumers[0].username, "alice");
    assert_eq!(wire.consumers[0].groups, ["staff"]);

    let by_name = api.call(Method::GET, "/api/v1/consumers/alice", None).await;
    assert_eq!(by_name.body["id"], id.as_str());
    let by_id = api
        .call(Method::GET, &format!("/api/v1/consumers/{id}"), None)
        .await;
    assert_eq!(by_id.body["username"], "alice");

    // A GET result goes back as is; PATCH merges.
    let mut doc = by_id.body.clone();
    doc["groups"] = json!(["staff", "admins"]);
    let put = api
        .call(Method::PUT, "/api/v1/consumers/alice", Some(doc))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["groups"], json!(["staff", "admins"]));
    let patch = api
        .call(
            Method::PATCH,
            &format!("/api/v1/consumers/{id}"),
            Some(json!({"username": "alice2"})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert_eq!(patch.body["groups"], json!(["staff", "admins"]));
    assert!(patch.version.unwrap() > v1);

    let del = api
        .call(Method::DELETE, "/api/v1/consumers/alice2", None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = api
        .call(Method::GET, "/api/v1/consumers/alice2", None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let wire = api.state.publisher.current();
    assert!(wire.wire.config.as_ref().unwrap().consumers.is_empty());
}

#[sqlx::test(migrations = false)]
async fn validation_and_unique_usernames(pool: PgPool) {
    let api = Api::new(pool).await;
    let before = api.state.publisher.current().version;
    let bad = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "no spaces", "groups": ["ok", "ok", ""], "tags": ["a,b"]})),
        )
        .await;
    assert_eq!(
        fields(&bad),
        ["username", "groups[1]", "groups[2]", "tags[0]"]
    );
    let unknown = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "a", "name": "a"})),
        )
        .await;
    assert_eq!(fields(&unknown), ["name"]);
    let missing = api
        .call(Method::POST, "/api/v1/consumers", Some(json!({})))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let uuid = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "0191a5d6-34b2-7c6e-9a51-4f1f1a2b3c4d"})),
        )
        .await;
    assert_eq!(fields(&uuid), ["username"]);
    assert_eq!(
        api.state.publisher.current().version,
        before,
        "nothing stored"
    );

    let first = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let dup = api
        .call(
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.body);
    assert!(dup.body["detail"].as_str().unwrap().contains("bob"));
    // Renaming onto a taken username is a conflict too.
    api.call(
        Method::POST,
        "/api/v1/consumers",
        Some(json!({"username": "carol"})),
    )
    .await;
    let rename = api
        .call(
            Method::PATCH,
            "/api/v1/consumers/carol",
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT);
}

#[sqlx::test(migrations = false)]
async fn if_match_paging_tags_and_roles(pool: PgPool) {
    let api = Api::new(pool).await;
    for (name, tag) in [("c1", "x"), ("c2", "y"), ("c3", "x")] {
        let r = api
            .call(
                Method::POST,
                "/api/v1/consumers",
                Some(json!({"username": name, "tags": [tag]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let page = api
        .call(Method::GET, "/api/v1/consumers?limit=2", None)
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let next = page.body["next"].as_str().unwrap().to_owned();
    let rest = api
        .call(
            Method::GET,
            &format!("/api/v1/consumers?limit=2&after={next}"),
            None,
        )
        .await;
    assert_eq!(rest.body["items"][0]["username"], "c3");
    assert!(rest.body["next"].is_null());
    let tagged = api
        .call(Method::GET, "/api/v1/consumers?tags=x", None)
        .await;
    assert_eq!(tagged.body["items"].as_array().unwrap().len(), 2);

    // A stale ETag changes nothing.
    let read = api.call(Method::GET, "/api/v1/consumers/c1", None).await;
    let etag = read.etag.unwrap();
    let ok = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &etag)],
            Method::PATCH,
            "/api/v1/consumers/c1",
            Some(json!({"groups": ["g"]})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let stale = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &etag)],
            Method::DELETE,
            "/api/v1/consumers/c1",
            None,
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);

    // Read-only tokens read, and only read.
    let read = api
        .call_as(Some(READER), Method::GET, "/api/v1/consumers/c1", None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let write = api
        .call_as(
            Some(READER),
            Method::POST,
            "/api/v1/consumers",
            Some(json!({"username": "d"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let anon = api
        .call_as(None, Method::GET, "/api/v1/consumers", None)
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}
