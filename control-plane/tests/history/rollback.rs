//! Rollback: a new version with an old version's content.

use super::*;

#[sqlx::test(migrations = false)]
async fn rollback_restores_old_content_as_a_new_version(pool: PgPool) {
    let api = Api::new(pool).await;
    let first = api
        .created(
            "upstreams",
            json!({"name": "users", "targets": [{"address": "a:1"}]}),
        )
        .await;
    let old_id = first.body["id"].as_str().unwrap().to_owned();
    let target = first.version.unwrap();
    api.created("routes", json!({"name": "users-api", "upstream": "users"}))
        .await;
    // Delete and create "users" again: a new id under the same name, which
    // the rollback must hand back to the old id.
    api.call(Method::DELETE, "/api/v1/routes/users-api", None)
        .await;
    api.call(Method::DELETE, "/api/v1/upstreams/users", None)
        .await;
    api.created(
        "upstreams",
        json!({"name": "users", "targets": [{"address": "b:2"}]}),
    )
    .await;
    let orders = api.created("upstreams", json!({"name": "orders"})).await;
    api.created(
        "routes",
        json!({"name": "orders-api", "upstream": "orders"}),
    )
    .await;
    let before = api.current().await;

    let r = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": target})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.body["version"].as_u64().unwrap();
    assert_eq!(new, before + 1, "one new version");
    assert_eq!(r.version, Some(new));
    assert_eq!(names(&r.body["diff"], "upstreams", "added"), ["users"]);
    assert_eq!(
        names(&r.body["diff"], "upstreams", "removed"),
        ["orders", "users"]
    );
    assert_eq!(names(&r.body["diff"], "routes", "removed"), ["orders-api"]);

    let old = api
        .call(
            Method::GET,
            &format!("/api/v1/config/versions/{target}"),
            None,
        )
        .await;
    let now = api.call(Method::GET, "/api/v1/config", None).await;
    assert_eq!(now.body["version"], new);
    assert_eq!(
        now.body["hash"], old.body["hash"],
        "same content, same hash"
    );
    let published = api.state.publisher.current();
    assert_eq!(published.version, new);
    assert_eq!(published.hash, old.body["hash"].as_str().unwrap());
    let users = api.call(Method::GET, "/api/v1/upstreams/users", None).await;
    assert_eq!(users.body["id"], old_id.as_str(), "the old id is back");
    let gone = api
        .call(
            Method::GET,
            &format!("/api/v1/upstreams/{}", orders.body["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let history = api
        .call(Method::GET, "/api/v1/config/versions?limit=1", None)
        .await;
    assert_eq!(
        history.body["items"][0]["summary"],
        format!("rollback config to version {target}")
    );

    // Rolling back to what is already current changes nothing.
    let again = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": target})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["version"], new);
    assert_eq!(
        names(&again.body["diff"], "upstreams", "added"),
        Vec::<String>::new()
    );
    assert_eq!(api.current().await, new);

    let unknown = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": 999})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bad = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": "x"})),
        )
        .await;
    assert_eq!(fields(&bad), ["version"]);
    let reader = api
        .send(
            READER,
            Method::POST,
            "/api/v1/config/rollback",
            &[("content-type", "application/json")],
            b"{\"version\": 1}".to_vec(),
        )
        .await;
    assert_eq!(reader.status, StatusCode::FORBIDDEN);
    assert_eq!(api.current().await, new);
}

#[sqlx::test(migrations = false)]
async fn rollback_can_swap_names_between_ids(pool: PgPool) {
    let api = Api::new(pool).await;
    let x = api.created("upstreams", json!({"name": "x"})).await;
    let y = api.created("upstreams", json!({"name": "y"})).await;
    let target = y.version.unwrap();
    for (from, to) in [("x", "tmp"), ("y", "x"), ("tmp", "y")] {
        let r = api
            .call(
                Method::PATCH,
                &format!("/api/v1/upstreams/{from}"),
                Some(json!({"name": to})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = api
        .call(
            Method::POST,
            "/api/v1/config/rollback",
            Some(json!({"version": target})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(names(&r.body["diff"], "upstreams", "changed"), ["x", "y"]);
    let now_x = api.call(Method::GET, "/api/v1/upstreams/x", None).await;
    assert_eq!(now_x.body["id"], x.body["id"]);
    let now_y = api.call(Method::GET, "/api/v1/upstreams/y", None).await;
    assert_eq!(now_y.body["id"], y.body["id"]);
}
