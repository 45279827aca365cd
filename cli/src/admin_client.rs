//! A small admin API client for the CLI (used by `demo` to seed config).

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub struct AdminClient {
    base: String,
    token: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    pub fn new(base: String, token: String) -> AdminClient {
        AdminClient {
            base,
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(StatusCode, serde_json::Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let resp = self.http.request(req.body(Full::new(bytes))?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let json = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            })
        };
        Ok((status, json))
    }

    /// One call with a body sent as is (`config import` sends YAML files
    /// untouched); answers the status and the body bytes.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = self.http.request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Creates the entity, or replaces it when one with that name exists.
    pub async fn upsert(
        &self,
        collection: &str,
        name: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let (status, _) = self
            .call(Method::GET, &format!("/api/v1/{collection}/{name}"), None)
            .await?;
        let (status, answer) = if status == StatusCode::NOT_FOUND {
            self.call(Method::POST, &format!("/api/v1/{collection}"), Some(body))
                .await?
        } else {
            self.call(
                Method::PUT,
                &format!("/api/v1/{collection}/{name}"),
                Some(body),
            )
            .await?
        };
        anyhow::ensure!(
            status.is_success(),
            "{collection}/{name}: {status}: {answer}"
        );
        Ok(())
    }
}
