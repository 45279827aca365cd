//! The status endpoints on `--status-listen`: liveness, readiness (503 until
//! a config is applied) and a JSON status of the node, including whether
//! the config in use came from the disk cache and is stale; `/metrics`
//! (`metrics`) shows the same in the Prometheus format; `/upstreams`
//! (`upstreams`) each target's health, ejection and load.

mod metrics;
mod route_metrics;
mod target_metrics;
mod upstreams;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};

use crate::Shared;
use crate::listener::{Conn, RequestBody};
use crate::proxy::{ProxyBody, json_response};

pub async fn handle(
    shared: Arc<Shared>,
    _conn: Arc<Conn>,
    req: Request<RequestBody>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"message": "use GET"}),
        ));
    }
    let config = shared.config.load();
    let resp = match req.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" => {
            if config.version == 0 {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "no config applied yet"}),
                )
            } else if shared.draining.load(Ordering::Relaxed) {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "draining"}),
                )
            } else {
                json_response(StatusCode::OK, &serde_json::json!({"status": "ready"}))
            }
        }
        "/status" => {
            let origin = shared.cache.origin();
            json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "node_id": shared.node_id,
                    "config_version": config.version,
                    "config_hash": config.hash,
                    // "control_plane", "cache" or "none"; `stale` while a
                    // config restored from the cache is unconfirmed.
                    "config_source": origin.source(),
                    "stale": origin.is_stale(),
                    "control_plane_connected": shared.connected.load(Ordering::Relaxed),
                    "routes": config.routes.len(),
                    "upstreams": config.upstreams.len(),
                    "tls_certificates": config.certificates.len(),
                    // Which path configs took (full snapshots or deltas),
                    // and the encoded size of the last one applied and how
                    // long it took from the decoded message to the swap.
                    "snapshots_applied": shared.stats.snapshots_applied.load(Ordering::Relaxed),
                    "deltas_applied": shared.stats.deltas_applied.load(Ordering::Relaxed),
                    "last_config_bytes": shared.stats.last_config_bytes.load(Ordering::Relaxed),
                    "last_apply_ms": shared.stats.last_apply_us.load(Ordering::Relaxed) as f64 / 1000.0,
                    // rate-limit checks Redis failed or answered too late.
                    "rate_limit_redis_errors": crate::policy::rate_limit::redis_errors(),
                    "software_version": env!("CARGO_PKG_VERSION"),
                }),
            )
        }
        "/upstreams" => json_response(StatusCode::OK, &upstreams::view(&config)),
        "/metrics" => {
            let mut resp = Response::new(Either::Right(Full::new(Bytes::from(metrics::render(
                &shared,
            )))));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"message": "not found"}),
        ),
    };
    Ok(resp)
}
