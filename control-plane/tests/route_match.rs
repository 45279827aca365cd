//! `GET /api/v1/routes/match` against real Postgres: the winner and why,
//! shadowed routes best first with the rule they lost on, the 404 when
//! nothing matches, strict query validation, and one compiled router per
//! config version.

mod support;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{Api, READER, fields};

async fn post(api: &Api, path: &str, body: Value) {
    let r = api.call(Method::POST, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Upstreams `users` and `admin`, and routes from the most general to the
/// most specific.
async fn seeded(pool: PgPool) -> Api {
    let api = Api::new(pool).await;
    seed(&api).await;
    api
}

async fn seed(api: &Api) {
    post(api, "/api/v1/upstreams", json!({"name": "users"})).await;
    post(api, "/api/v1/upstreams", json!({"name": "admin"})).await;
    for route in [
        json!({"name": "users-api", "paths": ["/users"], "upstream": "users"}),
        json!({"name": "users-v2", "paths": ["/users"], "headers": {"x-version": ["2"]}, "upstream": "users"}),
        json!({"name": "users-admin", "hosts": ["*.example.com", "api.example.com"], "paths": ["~/users/\\d+/admin", "/users/admin"], "upstream": "admin"}),
    ] {
        post(api, "/api/v1/routes", route).await;
    }
}

fn names(body: &Value) -> Vec<(String, String)> {
    body["shadowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["lost_on"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn the_winner_says_why_and_lists_what_it_shadows(pool: PgPool) {
    let api = seeded(pool).await;
    let version = api.state.publisher.current().version;

    let r = api
        .call(Method::GET, "/api/v1/routes/match?path=/users/7", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["version"], version);
    let route = &r.body["route"];
    assert_eq!(route["name"], "users-api");
    assert_eq!(route["upstream"]["name"], "users");
    assert_eq!(
        (&route["host"], &route["path"]),
        (&Value::Null, &json!("/users"))
    );
    assert_eq!(route["matched_path"], "/users");
    assert!(route.get("lost_on").is_none());
    assert_eq!(names(&r.body), [] as [(String, String); 0]);

    // A header condition outranks; the route without it is shadowed.
    let r = api
        .call(
            Method::GET,
            "/api/v1/routes/match?method=POST&path=/users&header=X-Version:%202",
            None,
        )
        .await;
    assert_eq!(r.body["route"]["name"], "users-v2", "{}", r.body);
    assert_eq!(r.body["route"]["conditions"], 1);
    assert_eq!(names(&r.body), [("users-api".into(), "conditions".into())]);

    // Exact host (port and case ignored) beats the wildcard of the same
    // route, which beats no host; a prefix beats the route's own regex.
    let r = api
        .call(
            Method::GET,
            "/api/v1/routes/match?host=API.Example.com:8443&path=/users/admin/x&header=x-version:2",
            None,
        )
        .await;
    let route = &r.body["route"];
    assert_eq!(route["name"], "users-admin", "{}", r.body);
    assert_eq!(route["upstream"]["name"], "admin");
    assert_eq!(
        (&route["host"], &route["path"]),
        (&json!("api.example.com"), &json!("/users/admin"))
    );
    assert_eq!(
        names(&r.body),
        [
            ("users-v2".into(), "host".into()),
            ("users-api".into(), "host".into())
        ]
    );
    // Through the wildcard and the regex on another host.
    let r = api
        .call(
            Method::GET,
            "/api/v1/routes/match?host=eu.example.com&path=/users/42/admin",
            None,
        )
        .await;
    assert_eq!(r.body["route"]["host"], "*.example.com", "{}", r.body);
    assert_eq!(r.body["route"]["path"], "~/users/\\d+/admin");
    assert_eq!(r.body["route"]["matched_path"], "/users/42/admin");

    // Priority first: the general route now wins everything it matches.
    let patch = api
        .call(
            Method::PATCH,
            "/api/v1/routes/users-api",
            Some(json!({"priority": 10})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let r = api
        .call_as(
            Some(READER),
            Method::GET,
            "/api/v1/routes/match?host=api.example.com&path=/users/admin",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "read-only tokens may ask");
    assert_eq!(
        r.body["version"],
        patch.version.unwrap(),
        "the new version answers"
    );
    assert_eq!(r.body["route"]["name"], "users-api");
    assert_eq!(names(&r.body), [("users-admin".into(), "priority".into())]);
}

#[sqlx::test(migrations = false)]
async fn no_match_is_a_404_problem(pool: PgPool) {
    let api = Api::new(pool).await;
    // The first config (version 1) is empty: nothing matches.
    let r = api
        .call(Method::GET, "/api/v1/routes/match?path=/", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

    seed(&api).await;
    let r = api
        .call(Method::GET, "/api/v1/routes/match?path=/usersx", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert!(
        r.body["detail"].as_str().unwrap().contains("GET /usersx"),
        "{}",
        r.body
    );
}

#[sqlx::test(migrations = false)]
async fn the_query_is_checked_like_a_body(pool: PgPool) {
    let api = seeded(pool).await;
    let r = api
        .call(
            Method::GET,
            "/api/v1/routes/match?method=G%20T&header=novalue&header=ok:1&header=x:%01&limit=3",
            None,
        )
        .await;
    assert_eq!(
        fields(&r),
        ["limit", "method", "path", "header[0]", "header[2]"]
    );
    let r = api
        .call(Method::GET, "/api/v1/routes/match?path=users", None)
        .await;
    assert_eq!(fields(&r), ["path"]);
    let r = api
        .call(Method::GET, "/api/v1/routes/match?path=/a&path=/b", None)
        .await;
    assert_eq!(fields(&r), ["path"]);

    // The static segment is the matcher, not a route named `match`.
    let r = api
        .call(Method::PUT, "/api/v1/routes/match", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = api
        .call(
            Method::POST,
            "/api/v1/routes",
            Some(json!({"name": "match", "upstream": "users"})),
        )
        .await;
    assert_eq!(fields(&r), ["name"]);
    let r = api
        .call(Method::GET, "/api/v1/routes/users-api", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "other names still read");
}

#[sqlx::test(migrations = false)]
async fn the_router_is_compiled_once_per_version(pool: PgPool) {
    let api = seeded(pool).await;
    let published = api.state.publisher.current();
    let first = published.routing().await.unwrap();
    let again = published.routing().await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(first.snapshot.routes.len(), 3);

    post(
        &api,
        "/api/v1/routes",
        json!({"name": "root", "paths": ["/"], "upstream": "users"}),
    )
    .await;
    let newer = api.state.publisher.current().routing().await.unwrap();
    assert_eq!(newer.snapshot.routes.len(), 4);
    let r = api
        .call(Method::GET, "/api/v1/routes/match?path=/other", None)
        .await;
    assert_eq!(r.body["route"]["name"], "root", "{}", r.body);
}
