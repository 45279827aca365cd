//! The request path's `tracing` spans, all with target [`TARGET`] at
//! `DEBUG`:
//!
//! - `request` (`method`, `route`, `status`, `trace_id`): from the head to
//!   the answer's head (the body streams after it closes);
//! - `policy` (`phase`: `access`, `limit`, `rewrite`, `response`), one per
//!   policy phase that has policies to run, inside `request`;
//! - `upstream` (`upstream`, `target`, `status`, `error`): the upstream
//!   call, retries included, inside `request`; `proxy::send` records
//!   `attempts` on it (`Span::current()` there is this span).
//!
//! With the default filter (`info`) and no OpenTelemetry export, no
//! subscriber is interested in these callsites: `tracing` caches that per
//! callsite, so each span costs a load and a branch, its fields are never
//! evaluated and nothing is allocated. `TURNPIKE_LOG=info,turnpike::span=debug`
//! shows them around log lines; with the `otel` feature and
//! `--otlp-endpoint` they are exported (`observe::otel`), continuing the
//! request's `traceparent`.

use std::fmt;

use http::{Method, StatusCode};
use tracing::Span;
use tracing::field::{Empty, display};

use super::trace::TraceContext;
use crate::policy::Phase;

/// The target of every span here (`TURNPIKE_LOG=turnpike::span=debug`).
pub const TARGET: &str = "turnpike::span";

/// The span of one request. Under OpenTelemetry it continues the client's
/// trace, and a trace the proxy started takes the exporter's trace id
/// (`trace` is updated), so logs, the access log, the export and the
/// upstream all see one trace id.
pub fn request(method: &Method, trace: &mut TraceContext) -> Span {
    let span = tracing::debug_span!(
        target: TARGET,
        "request",
        otel.kind = "server",
        method = %method,
        route = Empty,
        status = Empty,
        trace_id = Empty,
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        #[cfg(feature = "otel")]
        super::otel::continue_trace(&span, trace);
        span.record("trace_id", display(TraceId(trace.trace_id)));
    }
    span
}

/// The route the request matched.
pub fn record_route(span: &Span, route: &str) {
    if !span.is_disabled() {
        span.record("route", route);
    }
}

/// The answer's status, once its head is ready.
pub fn record_status(span: &Span, status: StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("status", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one policy phase.
pub fn policy(phase: Phase) -> Span {
    let (phase, name) = match phase {
        Phase::Access => ("access", "policy access"),
        Phase::Limit => ("limit", "policy limit"),
        Phase::Rewrite => ("rewrite", "policy rewrite"),
        Phase::Response => ("response", "policy response"),
        Phase::Log => ("log", "policy log"),
    };
    tracing::debug_span!(target: TARGET, "policy", phase, otel.name = name)
}

/// The span of the upstream call. Under OpenTelemetry its span id becomes
/// `trace.span_id`, the parent id the upstream gets in `traceparent`.
pub fn upstream(upstream: &str, trace: &mut TraceContext) -> Span {
    let span = tracing::debug_span!(
        target: TARGET,
        "upstream",
        otel.kind = "client",
        upstream,
        target = Empty,
        attempts = Empty,
        status = Empty,
        error = Empty,
        otel.status_code = Empty,
    );
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        super::otel::adopt_span(&span, trace);
    }
    #[cfg(not(feature = "otel"))]
    let _ = trace;
    span
}

/// How the upstream call ended: the target that answered and its status,
/// or the error.
pub fn record_upstream<E: fmt::Display>(
    span: &Span,
    outcome: Result<(&http::uri::Authority, StatusCode), &E>,
) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok((target, status)) => {
            span.record("target", target.as_str());
            span.record("status", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(e) => {
            span.record("error", display(e));
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// A trace id as 32 lowercase hex digits, formatted only when written.
struct TraceId(u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
#[path = "spans_tests.rs"]
pub(crate) mod tests;
