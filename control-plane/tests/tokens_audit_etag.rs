//! Admin tokens with roles, the audit log, and ETag / If-Match, against real
//! Postgres.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use support::{ADMIN, Api, fields};

#[sqlx::test(migrations = false)]
async fn tokens_are_shown_once_stored_hashed_and_roles_apply(pool: PgPool) {
    let api = Api::new(pool.clone()).await;
    let created = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci-reader", "role": "read-only"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let token = created.body["token"].as_str().unwrap().to_owned();
    assert_eq!(created.body["role"], "read-only");

    // Never again in clear: not in lists, not in the database.
    let list = api.call(Method::GET, "/api/v1/tokens", None).await;
    assert!(!list.body.to_string().contains(&token));
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none())
    );
    let (stored,): (String,) =
        sqlx::query_as("SELECT token_hash FROM admin_tokens WHERE name = 'ci-reader'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(stored, token);

    // The new token reads but cannot write.
    assert_eq!(
        api.call_as(Some(&token), Method::GET, "/api/v1/routes", None)
            .await
            .status,
        StatusCode::OK
    );
    let write = api
        .call_as(
            Some(&token),
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let escalate = api
        .call_as(
            Some(&token),
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "me-admin", "role": "admin"})),
        )
        .await;
    assert_eq!(escalate.status, StatusCode::FORBIDDEN);

    // Bad input; duplicates.
    let bad = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "x y", "role": "root"})),
        )
        .await;
    assert_eq!(fields(&bad), ["role"]);
    let bad = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "x y", "role": "admin"})),
        )
        .await;
    assert_eq!(fields(&bad), ["name"]);
    let dup = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci-reader", "role": "admin"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    // Deleting it revokes it at once.
    assert_eq!(
        api.call(Method::DELETE, "/api/v1/tokens/ci-reader", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call_as(Some(&token), Method::GET, "/api/v1/routes", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = false)]
async fn the_last_admin_token_cannot_be_deleted(pool: PgPool) {
    let api = Api::new(pool).await;
    let last = api.call(Method::DELETE, "/api/v1/tokens/admin", None).await;
    assert_eq!(last.status, StatusCode::CONFLICT, "{}", last.body);
    assert_eq!(
        api.call(Method::GET, "/api/v1/tokens/admin", None)
            .await
            .status,
        StatusCode::OK
    );
    let second = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "second", "role": "admin"})),
        )
        .await;
    let second = second.body["token"].as_str().unwrap().to_owned();
    let gone = api
        .call_as(Some(&second), Method::DELETE, "/api/v1/tokens/admin", None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call_as(Some(ADMIN), Method::GET, "/api/v1/routes", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrations = false)]
async fn every_write_is_in_the_audit_log_with_its_version(pool: PgPool) {
    let api = Api::new(pool).await;
    let up = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "users"})),
        )
        .await;
    let route = api
        .call(
            Method::POST,
            "/api/v1/routes",
            Some(json!({"name": "r", "upstream": "users"})),
        )
        .await;
    let del = api.call(Method::DELETE, "/api/v1/routes/r", None).await;
    api.call(
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "t", "role": "admin"})),
    )
    .await;
    let failed = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "users"})),
        )
        .await;
    assert_eq!(
        failed.status,
        StatusCode::CONFLICT,
        "a failed write leaves no trace"
    );

    let log = api.call(Method::GET, "/api/v1/audit-log", None).await;
    let items = log.body["items"].as_array().unwrap();
    let seen: Vec<(String, String, String, Option<u64>)> = items
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["entity"].as_str().unwrap().to_owned(),
                e["version"].as_u64(),
            )
        })
        .collect();
    let admin = "admin".to_owned();
    assert_eq!(
        seen[..4],
        [
            (admin.clone(), "create".into(), "token".into(), None),
            (admin.clone(), "delete".into(), "route".into(), del.version),
            (
                admin.clone(),
                "create".into(),
                "route".into(),
                route.version
            ),
            (
                admin.clone(),
                "create".into(),
                "upstream".into(),
                up.version
            ),
        ]
    );
    assert_eq!(items[3]["entity_name"], "users");
    assert_eq!(items[3]["entity_id"], up.body["id"]);

    // Filter and page.
    let routes = api
        .call(Method::GET, "/api/v1/audit-log?entity=route", None)
        .await;
    assert_eq!(routes.body["items"].as_array().unwrap().len(), 2);
    let page1 = api
        .call(Method::GET, "/api/v1/audit-log?limit=2", None)
        .await;
    let next = page1.body["next"].as_str().unwrap();
    let page2 = api
        .call(
            Method::GET,
            &format!("/api/v1/audit-log?limit=2&after={next}"),
            None,
        )
        .await;
    assert_eq!(page2.body["items"][0]["entity"], "route");
    assert_eq!(page2.body["items"][0]["action"], "create");
}

#[sqlx::test(migrations = false)]
async fn if_match_guards_against_lost_updates(pool: PgPool) {
    let api = Api::new(pool).await;
    let created = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "u"})),
        )
        .await;
    let tag = created.etag.clone().expect("writes answer with an ETag");
    let got = api.call(Method::GET, "/api/v1/upstreams/u", None).await;
    assert_eq!(
        got.etag.as_deref(),
        Some(tag.as_str()),
        "same object, same tag"
    );

    // First writer wins with the current tag; the tag changes.
    let first = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &tag)],
            Method::PATCH,
            "/api/v1/upstreams/u",
            Some(json!({"tags": ["a"]})),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_ne!(first.etag.as_deref(), Some(tag.as_str()));

    // The second writer, holding the old tag, gets 412 and changes nothing.
    let before = api.state.publisher.current().version;
    for method in [Method::PATCH, Method::PUT, Method::DELETE] {
        let body = (method != Method::DELETE).then(|| json!({"name": "u", "tags": ["b"]}));
        let stale = api
            .call_with(
                Some(ADMIN),
                &[("if-match", &tag)],
                method.clone(),
                "/api/v1/upstreams/u",
                body,
            )
            .await;
        assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED, "{method}");
        assert_eq!(stale.content_type, "application/problem+json");
    }
    assert_eq!(api.state.publisher.current().version, before);
    assert_eq!(
        api.call(Method::GET, "/api/v1/upstreams/u", None)
            .await
            .body["tags"],
        json!(["a"])
    );

    // `*` matches any current object.
    let any = api
        .call_with(
            Some(ADMIN),
            &[("if-match", "*")],
            Method::DELETE,
            "/api/v1/upstreams/u",
            None,
        )
        .await;
    assert_eq!(any.status, StatusCode::NO_CONTENT);
}
