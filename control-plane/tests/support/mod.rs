//! Shared harness of the admin API tests: a store on the test's database,
//! an admin and a read-only token, and calls through the axum router.
#![allow(dead_code)]

pub mod prom_text;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;
use turnpike_control_plane::snapshot::Publisher;
use turnpike_control_plane::store::Store;
use turnpike_control_plane::{AppState, api, secret};

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const READER: &str = "test-reader-token-0123456789";

pub struct Api {
    pub router: axum::Router,
    pub state: AppState,
}

pub struct Reply {
    pub status: StatusCode,
    pub version: Option<u64>,
    pub content_type: String,
    pub etag: Option<String>,
    pub body: Value,
}

impl Api {
    pub async fn new(pool: PgPool) -> Api {
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

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.call_with(token, &[], method, path, body).await
    }

    pub async fn call_with(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let version = resp
            .headers()
            .get(api::VERSION_HEADER)
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            version,
            content_type,
            etag,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(Some(ADMIN), method, path, body).await
    }
}

pub fn fields(r: &Reply) -> Vec<String> {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}
