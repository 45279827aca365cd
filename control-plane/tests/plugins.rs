//! Plugins through the admin API against real Postgres: config schemas and
//! their defaults, scopes (global, route, consumer) resolved to ids, one
//! plugin of a name per scope, references that block deletes, lookup by id
//! only, If-Match, paging and roles.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{ADMIN, Api, READER, fields};

/// An upstream `u`, a route `r` and a consumer `alice`.
async fn seeded(pool: PgPool) -> Api {
    let api = Api::new(pool).await;
    for (path, body) in [
        ("/api/v1/upstreams", json!({"name": "u"})),
        ("/api/v1/routes", json!({"name": "r", "upstream": "u"})),
        ("/api/v1/consumers", json!({"username": "alice"})),
    ] {
        let r = api.call(Method::POST, path, Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    api
}

async fn post(api: &Api, body: Value) -> support::Reply {
    api.call(Method::POST, "/api/v1/plugins", Some(body)).await
}

#[sqlx::test(migrations = false)]
async fn configs_are_validated_and_stored_with_defaults(pool: PgPool) {
    let api = seeded(pool).await;
    let created = post(
        &api,
        json!({"name": "rate-limit", "config": {"limit": 100, "per": "minute", "key": "consumer"}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["config"]["policy"], "local",
        "defaults filled in"
    );
    assert_eq!(created.body["config"]["fault_tolerant"], true);
    assert_eq!(created.body["enabled"], true);
    assert!(created.body["route"].is_null() && created.body["consumer"].is_null());
    let wire = api.state.publisher.current();
    let plugin = &wire.wire.config.as_ref().unwrap().plugins[0];
    assert_eq!(plugin.name, "rate-limit");
    let config: Value = serde_json::from_str(&plugin.config_json).unwrap();
    assert_eq!(config["limit"], 100);

    let bad = post(
        &api,
        json!({"name": "rate-limit", "config": {"limit": "lots"}}),
    )
    .await;
    assert_eq!(fields(&bad), ["config.limit"]);
    let unknown_key = post(&api, json!({"name": "cors", "config": {"origin": "*"}})).await;
    assert_eq!(fields(&unknown_key), ["config.origin"]);
    let checks = post(
        &api,
        json!({"name": "cors", "config": {"credentials": true}}),
    )
    .await;
    assert_eq!(fields(&checks), ["config.credentials"]);
    let name = post(&api, json!({"name": "magic"})).await;
    assert_eq!(fields(&name), ["name"]);
    let auth_on_consumer = post(&api, json!({"name": "key-auth", "consumer": "alice"})).await;
    assert_eq!(fields(&auth_on_consumer), ["consumer"]);

    // PATCH merges into the config and keeps the rest.
    let id = created.body["id"].as_str().unwrap();
    let patched = api
        .call(
            Method::PATCH,
            &format!("/api/v1/plugins/{id}"),
            Some(json!({"enabled": false, "config": {"limit": 5}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["config"]["limit"], 5);
    assert_eq!(patched.body["config"]["key"], "consumer");
}

#[sqlx::test(migrations = false)]
async fn scopes_resolve_to_ids_and_hold_one_plugin_of_a_name(pool: PgPool) {
    let api = seeded(pool).await;
    let route = api.call(Method::GET, "/api/v1/routes/r", None).await;
    let route_id = route.body["id"].as_str().unwrap().to_owned();
    let consumer = api.call(Method::GET, "/api/v1/consumers/alice", None).await;
    let consumer_id = consumer.body["id"].as_str().unwrap().to_owned();

    let rl = json!({"limit": 10});
    let global = post(&api, json!({"name": "rate-limit", "config": rl})).await;
    assert_eq!(global.status, StatusCode::CREATED);
    let on_route = post(
        &api,
        json!({"name": "rate-limit", "config": rl, "route": "r"}),
    )
    .await;
    assert_eq!(on_route.status, StatusCode::CREATED, "{}", on_route.body);
    assert_eq!(on_route.body["route"], route_id.as_str(), "stored by id");
    let both = post(
        &api,
        json!({"name": "rate-limit", "config": rl, "route": route_id, "consumer": "alice"}),
    )
    .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
    assert_eq!(both.body["consumer"], consumer_id.as_str());
    let on_consumer = post(
        &api,
        json!({"name": "rate-limit", "config": rl, "consumer": "alice"}),
    )
    .await;
    assert_eq!(on_consumer.status, StatusCode::CREATED);

    for dup in [
        json!({"name": "rate-limit", "config": rl}),
        json!({"name": "rate-limit", "config": rl, "route": "r"}),
        json!({"name": "rate-limit", "config": rl, "consumer": consumer_id}),
    ] {
        let r = post(&api, dup).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body["detail"].as_str().unwrap().contains("rate-limit"));
    }
    let missing = post(&api, json!({"name": "cors", "route": "nope"})).await;
    assert_eq!(fields(&missing), ["route"]);
    let missing = post(&api, json!({"name": "cors", "consumer": "nobody"})).await;
    assert_eq!(fields(&missing), ["consumer"]);

    // Moving a plugin into a taken scope is a conflict too.
    let id = global.body["id"].as_str().unwrap();
    let moved = api
        .call(
            Method::PATCH,
            &format!("/api/v1/plugins/{id}"),
            Some(json!({"route": "r"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT);
}

#[sqlx::test(migrations = false)]
async fn referenced_routes_and_consumers_cannot_be_deleted(pool: PgPool) {
    let api = seeded(pool).await;
    let p = post(
        &api,
        json!({"name": "acl", "config": {"allow": ["staff"]}, "route": "r", "consumer": "alice"}),
    )
    .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let id = p.body["id"].as_str().unwrap().to_owned();
    for path in ["/api/v1/routes/r", "/api/v1/consumers/alice"] {
        let r = api.call(Method::DELETE, path, None).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.body);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains("acl") && detail.contains(&id), "{detail}");
    }
    let del = api
        .call(Method::DELETE, &format!("/api/v1/plugins/{id}"), None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call(Method::DELETE, "/api/v1/routes/r", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Method::DELETE, "/api/v1/consumers/alice", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[sqlx::test(migrations = false)]
async fn lookup_by_id_only_if_match_paging_and_roles(pool: PgPool) {
    let api = seeded(pool).await;
    for name in ["cors", "request-size-limit", "basic-auth"] {
        assert_eq!(
            post(&api, json!({"name": name})).await.status,
            StatusCode::CREATED
        );
    }
    // Several plugins may share a name, so a name is not a key.
    let by_name = api.call(Method::GET, "/api/v1/plugins/cors", None).await;
    assert_eq!(by_name.status, StatusCode::NOT_FOUND);

    let page = api.call(Method::GET, "/api/v1/plugins?limit=2", None).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let next = page.body["next"].as_str().unwrap();
    let rest = api
        .call(Method::GET, &format!("/api/v1/plugins?after={next}"), None)
        .await;
    assert_eq!(rest.body["items"][0]["name"], "basic-auth");
    let id = rest.body["items"][0]["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/plugins/{id}");

    let read = api.call_as(Some(READER), Method::GET, &one, None).await;
    assert_eq!(read.status, StatusCode::OK);
    let denied = api
        .call_as(
            Some(READER),
            Method::PATCH,
            &one,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let etag = read.etag.unwrap();
    let put = api
        .call_with(
            Some(ADMIN),
            &[("if-match", &etag)],
            Method::PUT,
            &one,
            Some(json!({"name": "basic-auth", "config": {"realm": "api"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["config"]["realm"], "api");
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
