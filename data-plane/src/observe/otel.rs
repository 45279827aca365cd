//! OpenTelemetry export of the request path's spans (`observe::spans`),
//! behind the `otel` feature: a `tracing-opentelemetry` layer that sees
//! only the `turnpike::span` target, over an OTLP/gRPC exporter (tonic)
//! with a batch processor, as service `turnpike-data-plane`.
//!
//! Ids follow the W3C trace context the proxy already keeps
//! (`observe::trace`): the `request` span's remote parent is the client's
//! `traceparent`, so it has the client's trace id; when the proxy started
//! the trace, its trace id is the exporter's, adopted by the
//! `TraceContext`. The `upstream` span's id is the parent id sent upstream
//! in `traceparent`, so the upstream's spans hang under it.
//!
//! The exporter runs on a one-thread Tokio runtime of its own (tonic needs
//! one), so exports never take a proxy worker; [`Export`] flushes what is
//! buffered and stops it when dropped.

use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use super::spans;
use super::trace::TraceContext;
use crate::Error;

/// `service.name` of the exported spans.
pub const SERVICE_NAME: &str = "turnpike-data-plane";

/// The running export: flushes and stops when dropped (keep it until the
/// data plane has drained).
pub struct Export {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry export did not flush");
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// A layer exporting the data plane's spans to the OTLP/gRPC collector at
/// `endpoint` (`http://host:4317`; `https://` checks the collector's
/// certificate against the public roots).
pub fn otlp<S>(
    endpoint: &str,
) -> Result<(impl Layer<S> + Send + Sync + 'static + use<S>, Export), Error>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("turnpike-otlp")
        .enable_all()
        .build()?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        builder =
            builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots());
    }
    // tonic's channel starts its worker on the runtime it is built in.
    let exporter = {
        let _in = runtime.enter();
        builder.build()
    }
    .map_err(|e| Error::Otel(format!("{endpoint}: {e}")))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    let layer = layer(&provider);
    Ok((
        layer,
        Export {
            provider,
            runtime: Some(runtime),
        },
    ))
}

/// The `tracing` layer over `provider`'s tracer, filtered to the
/// `turnpike::span` target (tests give a provider with their own exporter).
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SERVICE_NAME))
        // Only the spans' own fields: no source location, thread, tracing
        // target (the upstream span's `target` is the upstream address) nor
        // busy/idle times (two clock reads per poll).
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(spans::TARGET, Level::DEBUG))
}

pub fn resource() -> Resource {
    Resource::builder().with_service_name(SERVICE_NAME).build()
}

/// Makes `span` (a fresh `request` span) continue the client's trace, and
/// `trace` take the exported trace id and flags (the same trace id unless
/// the proxy started the trace). No-op without the export layer.
pub(crate) fn continue_trace(span: &Span, trace: &mut TraceContext) {
    if trace.parent_id != 0 {
        let parent = SpanContext::new(
            TraceId::from(trace.trace_id),
            SpanId::from(trace.parent_id),
            TraceFlags::new(trace.flags),
            true,
            TraceState::NONE,
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    if sc.is_valid() {
        trace.trace_id = u128::from_be_bytes(sc.trace_id().to_bytes());
        trace.flags = sc.trace_flags().to_u8();
    }
}

/// Makes `span` (a fresh `upstream` span) the parent the upstream sees.
pub(crate) fn adopt_span(span: &Span, trace: &mut TraceContext) {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    if sc.is_valid() {
        trace.trace_id = u128::from_be_bytes(sc.trace_id().to_bytes());
        trace.span_id = u64::from_be_bytes(sc.span_id().to_bytes());
        trace.flags = sc.trace_flags().to_u8();
    }
}

#[cfg(test)]
#[path = "otel_tests.rs"]
mod tests;
