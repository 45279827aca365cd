//! The admin listener's side of `crate::metrics`: the middleware that counts
//! every request by operation and status, and `GET /metrics` itself (no
//! token, like `/healthz`: it shows counts, versions and durations, never a
//! name, id or secret).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The content type the data plane's `/metrics` uses too.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Times the request and counts it under its route template (`POST
/// /api/v1/upstreams`, `GET /api/v1/upstreams/{key}`): ids and names in the
/// path never become labels. A request no route matched is `unmatched`.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let operation = match req.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", method_label(req.method()), path.as_str()),
        None => "unmatched".to_owned(),
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .admin_request(operation, resp.status().as_u16(), started.elapsed());
    resp
}

/// The standard methods by name; any other (extension methods are
/// arbitrary tokens) as `OTHER`, so the label stays bounded.
fn method_label(m: &Method) -> &str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(m) {
        m.as_str()
    } else {
        "OTHER"
    }
}

pub async fn serve(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&state).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}
