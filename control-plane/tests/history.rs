//! The whole-config endpoints against real Postgres (`#[sqlx::test]`: one
//! database per test): version history, diff, rollback, export and import.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use turnpike_control_plane::snapshot::Publisher;
use turnpike_control_plane::store::Store;
use turnpike_control_plane::{AppState, api, secret};

const ADMIN: &str = "test-admin-token-0123456789";
const READER: &str = "test-reader-token-0123456789";

struct Api {
    router: axum::Router,
    state: AppState,
}

struct Reply {
    status: StatusCode,
    version: Option<u64>,
    content_type: String,
    text: String,
    body: Value,
}

impl Api {
    async fn new(pool: PgPool) -> Api {
        let store = Store::from_pool(pool).await.unwrap();
        store
            .put_admin_token("admin", &secret::digest(ADMIN), "admin")
            .await
            .unwrap();
        store
            .put_admin_token("reader", &secret::digest(READER), "read-only")
            .await
            .unwrap();
        let publisher = Publisher::new(store.ensure_initial_version().await.unwrap());
        let state = AppState::new(store, publisher);
        Api {
            router: api::router(state.clone()),
            state,
        }
    }

    /// One request; `headers` are sent as given, the body as bytes.
    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let version = resp
            .headers()
            .get(api::VERSION_HEADER)
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            version,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        match body {
            Some(b) => {
                let ct = [("content-type", "application/json")];
                self.send(ADMIN, method, path, &ct, b.to_string().into_bytes())
                    .await
            }
            None => self.send(ADMIN, method, path, &[], Vec::new()).await,
        }
    }

    async fn import(&self, query: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let path = format!("/api/v1/config/import{query}");
        let ct = [("content-type", content_type)];
        self.send(ADMIN, Method::POST, &path, &ct, body.into())
            .await
    }

    async fn created(&self, collection: &str, body: Value) -> Reply {
        let r = self
            .call(Method::POST, &format!("/api/v1/{collection}"), Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r
    }

    async fn current(&self) -> u64 {
        self.state.store.current_version().await.unwrap().version
    }
}

fn fields(r: &Reply) -> Vec<String> {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
    r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// Names in one list of a diff (`added`, `removed`, `changed`).
fn names(diff: &Value, kind: &str, list: &str) -> Vec<String> {
    diff[kind][list]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind}.{list} in {diff}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn versions_are_listed_newest_first_in_pages(pool: PgPool) {
    let api = Api::new(pool).await;
    for i in 0..4 {
        api.created("upstreams", json!({"name": format!("u{i}")}))
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/config/versions?limit=2".to_owned();
    loop {
        let page = api.call(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["version"].as_u64().unwrap());
        }
        match page.body["next"].as_str() {
            Some(next) => path = format!("/api/v1/config/versions?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, [5, 4, 3, 2, 1]);
    let newest = api
        .call(Method::GET, "/api/v1/config/versions?limit=1", None)
        .await;
    let item = &newest.body["items"][0];
    assert_eq!(item["summary"], "create upstream u3");
    assert_eq!(item["author"], "admin");
    assert_eq!(item["hash"].as_str().unwrap().len(), 64);
    assert!(item["created_at"].is_string());

    let bad = api
        .call(
            Method::GET,
            "/api/v1/config/versions?limit=0&before=x",
            None,
        )
        .await;
    assert_eq!(fields(&bad), ["limit", "before"]);
}

#[sqlx::test(migrations = false)]
async fn a_version_shows_its_content_as_a_declarative_document(pool: PgPool) {
    let api = Api::new(pool).await;
    api.created("upstreams", json!({"name": "users"})).await;
    let route = api
        .created("routes", json!({"name": "users-api", "upstream": "users"}))
        .await;
    let v = route.version.unwrap();
    let detail = api
        .call(Method::GET, &format!("/api/v1/config/versions/{v}"), None)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(detail.body["version"], v);
    assert_eq!(detail.body["summary"], "create route users-api");
    let config = &detail.body["config"];
    assert_eq!(config["format_version"], "1");
    assert_eq!(config["routes"][0]["upstream"], "users", "by name");
    assert!(config["routes"][0].get("id").is_none(), "no ids");
    let current = api.call(Method::GET, "/api/v1/config", None).await;
    assert_eq!(detail.body["hash"], current.body["hash"]);

    let missing = api
        .call(Method::GET, "/api/v1/config/versions/999", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type, "application/problem+json");
    let bad = api
        .call(Method::GET, "/api/v1/config/versions/abc", None)
        .await;
    assert_eq!(fields(&bad), ["version"]);
}

#[sqlx::test(migrations = false)]
async fn diff_names_added_removed_and_changed_fields(pool: PgPool) {
    let api = Api::new(pool).await;
    api.created(
        "upstreams",
        json!({"name": "users", "targets": [{"address": "10.0.0.1:80"}]}),
    )
    .await;
    let from = api
        .created("upstreams", json!({"name": "old"}))
        .await
        .version
        .unwrap();
    let patch = json!({"targets": [{"address": "10.0.0.2:80"}]});
    api.call(Method::PATCH, "/api/v1/upstreams/users", Some(patch))
        .await;
    api.call(Method::DELETE, "/api/v1/upstreams/old", None)
        .await;
    let to = api
        .created("upstreams", json!({"name": "new"}))
        .await
        .version
        .unwrap();

    let d = api
        .call(
            Method::GET,
            &format!("/api/v1/config/diff?from={from}&to={to}"),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(names(&d.body, "upstreams", "added"), ["new"]);
    assert_eq!(names(&d.body, "upstreams", "removed"), ["old"]);
    assert_eq!(names(&d.body, "upstreams", "changed"), ["users"]);
    assert_eq!(
        d.body["upstreams"]["changed"][0]["fields"],
        json!([{"field": "targets[0].address", "from": "10.0.0.1:80", "to": "10.0.0.2:80"}])
    );
    assert_eq!(
        d.body["routes"],
        json!({"added": [], "removed": [], "changed": []})
    );

    let same = api
        .call(
            Method::GET,
            &format!("/api/v1/config/diff?from={to}&to={to}"),
            None,
        )
        .await;
    assert_eq!(
        names(&same.body, "upstreams", "changed"),
        Vec::<String>::new()
    );
    let missing = api
        .call(
            Method::GET,
            &format!("/api/v1/config/diff?from={from}"),
            None,
        )
        .await;
    assert_eq!(fields(&missing), ["to"]);
    let bad = api
        .call(Method::GET, "/api/v1/config/diff?from=x&to=-1", None)
        .await;
    assert_eq!(fields(&bad), ["from", "to"]);
    let unknown = api
        .call(
            Method::GET,
            &format!("/api/v1/config/diff?from={from}&to=999"),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[path = "history/rollback.rs"]
mod rollback;

#[path = "history/import.rs"]
mod import;
