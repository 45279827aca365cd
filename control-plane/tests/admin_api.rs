//! Admin API against real Postgres (`#[sqlx::test]`: one database per test):
//! CRUD, validation with field paths, conflicts, versions, auth.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{ADMIN, Api, READER, fields};
use tower::ServiceExt;
use turnpike_control_plane::api;

#[sqlx::test(migrations = false)]
async fn upstream_and_route_crud_bumps_versions_and_publishes(pool: PgPool) {
    let api = Api::new(pool).await;
    let v0 = api.state.publisher.current().version;

    let up = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "users", "targets": [{"address": "10.0.0.1:80"}]})),
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    let v1 = up.version.unwrap();
    assert!(v1 > v0);
    assert_eq!(up.body["algorithm"], "round_robin");
    assert_eq!(up.body["targets"][0]["weight"], 1);
    let id = up.body["id"].as_str().unwrap().to_owned();

    let route = api
        .call(
            Method::POST,
            "/api/v1/routes",
            Some(json!({"name": "users-api", "hosts": ["API.example.com"], "paths": ["/users"], "methods": ["get"], "upstream": "users"})),
        )
        .await;
    assert_eq!(route.status, StatusCode::CREATED, "{}", route.body);
    assert_eq!(route.body["upstream"], id.as_str(), "stored by id");
    assert_eq!(route.body["hosts"][0], "api.example.com", "normalized");
    assert_eq!(route.body["methods"][0], "GET");
    let v2 = route.version.unwrap();
    assert!(v2 > v1);

    // The publisher holds the newest version, with the route in it.
    let published = api.state.publisher.current();
    assert_eq!(published.version, v2);
    assert_eq!(published.wire.config.as_ref().unwrap().routes.len(), 1);

    // Get by id and by name; list.
    let by_name = api.call(Method::GET, "/api/v1/upstreams/users", None).await;
    assert_eq!(by_name.body["id"], id.as_str());
    let by_id = api
        .call(Method::GET, &format!("/api/v1/upstreams/{id}"), None)
        .await;
    assert_eq!(by_id.body["name"], "users");
    let list = api.call(Method::GET, "/api/v1/routes", None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["next"], Value::Null);

    // PUT replaces, PATCH merges; a GET result can be sent back as is.
    let mut doc = by_name.body.clone();
    doc["targets"] = json!([{"address": "10.0.0.2:80", "weight": 3}]);
    let put = api
        .call(Method::PUT, "/api/v1/upstreams/users", Some(doc))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["targets"][0]["address"], "10.0.0.2:80");
    let patch = api
        .call(
            Method::PATCH,
            "/api/v1/routes/users-api",
            Some(json!({"priority": 5, "tags": ["team-a"]})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert_eq!(patch.body["priority"], 5);
    assert_eq!(patch.body["paths"][0], "/users", "untouched fields kept");
    // `null` removes a field (it takes its default); for a field the entity
    // does not have, it is refused like any unknown field.
    let cleared = api
        .call(
            Method::PATCH,
            "/api/v1/upstreams/users",
            Some(json!({"tls": null, "retries": null})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body["retries"], 1);
    let unknown = api
        .call(
            Method::PATCH,
            "/api/v1/upstreams/users",
            Some(json!({"nope": null})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);

    // The referenced upstream cannot go; the route can, then the upstream.
    let blocked = api
        .call(Method::DELETE, "/api/v1/upstreams/users", None)
        .await;
    assert_eq!(blocked.status, StatusCode::CONFLICT);
    assert!(
        blocked.body["detail"]
            .as_str()
            .unwrap()
            .contains("users-api")
    );
    let del = api
        .call(Method::DELETE, "/api/v1/routes/users-api", None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let del = api
        .call(Method::DELETE, "/api/v1/upstreams/users", None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call(Method::GET, "/api/v1/upstreams/users", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let config = api.call(Method::GET, "/api/v1/config", None).await;
    assert_eq!(config.body["version"].as_u64(), del.version);
}

#[sqlx::test(migrations = false)]
async fn validation_reports_every_field_and_stores_nothing(pool: PgPool) {
    let api = Api::new(pool).await;
    let before = api.state.publisher.current().version;

    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "a b", "targets": [{"address": "nohost"}, {"address": "h:1", "weight": 100000}]})),
        )
        .await;
    assert_eq!(
        fields(&r),
        ["name", "targets[0].address", "targets[1].weight"]
    );

    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "x", "color": "red"})),
        )
        .await;
    assert_eq!(fields(&r), ["color"]);
    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "x", "targets": [{"address": 5}]})),
        )
        .await;
    assert_eq!(fields(&r), ["targets[0].address"]);

    let r = api
        .call(
            Method::POST,
            "/api/v1/routes",
            Some(json!({"name": "r", "paths": ["nope", "~("], "upstream": "missing"})),
        )
        .await;
    assert_eq!(fields(&r), ["paths[0]", "paths[1]"]);
    let r = api
        .call(
            Method::POST,
            "/api/v1/routes",
            Some(json!({"name": "r", "upstream": "missing"})),
        )
        .await;
    assert_eq!(fields(&r), ["upstream"]);

    // Malformed bodies are 4xx problems too.
    for (ct, body) in [
        ("application/json", "{not json"),
        ("application/json", "[1]"),
        ("text/plain", "{}"),
    ] {
        let req = Request::post("/api/v1/upstreams")
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap();
        let resp = api.router.clone().oneshot(req).await.unwrap();
        assert!(
            resp.status().is_client_error(),
            "{ct} {body}: {}",
            resp.status()
        );
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let huge = "x".repeat(3 * 1024 * 1024);
    let r = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": huge})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let r = api
        .call(Method::GET, "/api/v1/upstreams?limit=0", None)
        .await;
    assert_eq!(fields(&r), ["limit"]);
    let r = api
        .call(Method::GET, "/api/v1/upstreams?after=zzz", None)
        .await;
    assert_eq!(fields(&r), ["after"]);

    assert_eq!(
        api.state.publisher.current().version,
        before,
        "nothing was stored"
    );
    assert_eq!(
        api.state.store.current_version().await.unwrap().version,
        before
    );
}

#[sqlx::test(migrations = false)]
async fn names_are_unique_and_lists_page(pool: PgPool) {
    let api = Api::new(pool).await;
    for i in 0..5 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!([])
        };
        let r = api
            .call(
                Method::POST,
                "/api/v1/upstreams",
                Some(json!({"name": format!("u{i}"), "tags": tags})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let dup = api
        .call(
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "u1"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.content_type, "application/problem+json");

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = api
            .call(
                Method::GET,
                &format!("/api/v1/upstreams?limit=2&after={after}"),
                None,
            )
            .await;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        match page.body["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["u0", "u1", "u2", "u3", "u4"],
        "creation order, no repeats"
    );
    let even = api
        .call(Method::GET, "/api/v1/upstreams?tags=even", None)
        .await;
    assert_eq!(even.body["items"].as_array().unwrap().len(), 3);
}

#[sqlx::test(migrations = false)]
async fn tokens_are_required_and_read_only_cannot_write(pool: PgPool) {
    let api = Api::new(pool).await;
    let none = api
        .call_as(None, Method::GET, "/api/v1/upstreams", None)
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.content_type, "application/problem+json");
    let wrong = api
        .call_as(Some("nope"), Method::GET, "/api/v1/upstreams", None)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let read = api
        .call_as(Some(READER), Method::GET, "/api/v1/upstreams", None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let write = api
        .call_as(
            Some(READER),
            Method::POST,
            "/api/v1/upstreams",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    // Health endpoints need no token.
    let health = api.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = api.call_as(None, Method::GET, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    // The console page loads without a token; it asks for one.
    let console = api.call_as(None, Method::GET, "/", None).await;
    assert_eq!(console.status, StatusCode::OK);
    assert!(console.content_type.starts_with("text/html"));
    let unknown = api.call(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.content_type, "application/problem+json");
}

#[sqlx::test(migrations = false)]
async fn versions_are_monotonic_under_concurrent_writes(pool: PgPool) {
    let api = Api::new(pool).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let router = api.router.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::post("/api/v1/upstreams")
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"name": format!("c{i}")}).to_string()))
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
            resp.headers()[api::VERSION_HEADER]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 10, "one distinct version per write");
    // The newest version's snapshot holds all ten upstreams.
    let newest = api.state.publisher.current();
    assert_eq!(newest.version, *versions.last().unwrap());
    assert_eq!(newest.wire.config.as_ref().unwrap().upstreams.len(), 10);
}
