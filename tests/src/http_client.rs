//! A minimal HTTP client for tests: one request, whole body, JSON if it
//! parses.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `X-Turnpike-Config-Version` of an admin write.
    pub fn version(&self) -> u64 {
        self.headers
            .get("x-turnpike-config-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no config version header in {self:?}"))
    }
}

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            // No pooling: tests kill servers, and a pooled connection to a
            // dead one would only add noise.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
        }
    }
}

impl Http {
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<Answer, hyper_util::client::legacy::Error> {
        let (headers, bytes): (Vec<(&str, &str)>, Bytes) = match body {
            Some(b) => (
                [
                    headers,
                    &[(header::CONTENT_TYPE.as_str(), "application/json")],
                ]
                .concat(),
                Bytes::from(b.to_string()),
            ),
            None => (headers.to_vec(), Bytes::new()),
        };
        self.send_bytes(method, url, &headers, bytes).await
    }

    /// A request with any body (headers as given, `Content-Type` included).
    pub async fn send_bytes(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        bytes: Bytes,
    ) -> Result<Answer, hyper_util::client::legacy::Error> {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(bytes)).expect("valid request"))
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, url: &str) -> Result<Answer, hyper_util::client::legacy::Error> {
        self.send(Method::GET, url, &[], None).await
    }
}
