//! What the data plane tells operators about the traffic it carries:
//! per-route statistics (`stats`, rendered by the status port's
//! `/metrics`), the access log (`access_log`, its lines encoded by
//! `access_line`) and W3C trace context
//! (`trace`), tied to each request by `exchange`; the request path's
//! `tracing` spans (`spans`), exported over OTLP by `otel` (feature
//! `otel`). The request path only bumps atomics and, when the access log
//! is on, hands one line to its writer thread; the spans cost nothing
//! unless a filter or the export enables them.

pub mod access_line;
pub mod access_log;
pub mod exchange;
#[cfg(feature = "otel")]
pub mod otel;
pub mod spans;
pub mod stats;
pub mod trace;
