//! The exported spans of a request driven through the proxy in this
//! process, collected by an in-memory exporter: their tree, their trace id
//! (the client's, or the one the upstream got when the proxy started the
//! trace) and the parent id the upstream sees.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::observe::spans::tests::Proxied;

/// Keeps what it exports, and the resource it was given.
#[derive(Debug, Clone, Default)]
struct InMemory {
    spans: Arc<Mutex<Vec<SpanData>>>,
    service: Arc<Mutex<Option<String>>>,
}

impl SpanExporter for InMemory {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.lock().unwrap().extend(batch);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let name = resource.get(&opentelemetry::Key::from_static_str("service.name"));
        *self.service.lock().unwrap() = name.map(|v| v.to_string());
    }
}

/// One request, with this `traceparent`, under the export layer: the
/// exported spans and the `traceparent` the upstream got.
async fn exported(traceparent: Option<&str>) -> (InMemory, String) {
    let exporter = InMemory::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(resource())
        .build();
    // No log layer at all: the export sees the spans on its own.
    let subscriber = tracing_subscriber::registry().with(layer(&provider));
    let _default = tracing::subscriber::set_default(subscriber);
    let proxied = Proxied::start().await;
    assert_eq!(proxied.get(traceparent).await, "HTTP/1.1 200 OK");
    provider.force_flush().unwrap();
    let upstream_got = proxied.traceparents.lock().unwrap()[0].clone();
    (exporter, upstream_got)
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
    found[0]
}

#[tokio::test]
async fn otel_spans_continue_the_clients_trace_and_parent_the_upstream() {
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (exporter, upstream_got) = exported(Some(given)).await;
    let spans = exporter.spans.lock().unwrap().clone();
    let trace_id = TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736u128);

    let request = one(&spans, "request");
    assert_eq!(request.span_context.trace_id(), trace_id);
    assert_eq!(request.parent_span_id, SpanId::from(0x00f067aa0ba902b7u64));
    assert!(request.parent_span_is_remote);
    assert_eq!(request.span_kind, SpanKind::Server);
    let request_id = request.span_context.span_id();

    for phase in ["access", "limit", "rewrite", "response"] {
        let policy = one(&spans, &format!("policy {phase}"));
        assert_eq!(policy.span_context.trace_id(), trace_id, "{phase}");
        assert_eq!(policy.parent_span_id, request_id, "{phase}");
    }

    let upstream = one(&spans, "upstream");
    assert_eq!(upstream.span_context.trace_id(), trace_id);
    assert_eq!(upstream.parent_span_id, request_id);
    assert_eq!(upstream.span_kind, SpanKind::Client);
    // The upstream's parent is the exported upstream span.
    assert_eq!(
        upstream_got,
        format!("00-{trace_id}-{}-01", upstream.span_context.span_id())
    );
    assert_eq!(spans.len(), 6, "{spans:#?}");
    assert_eq!(
        exporter.service.lock().unwrap().as_deref(),
        Some(SERVICE_NAME)
    );
}

#[tokio::test]
async fn otel_trace_started_by_the_proxy_is_the_one_the_upstream_gets() {
    let (exporter, upstream_got) = exported(None).await;
    let spans = exporter.spans.lock().unwrap().clone();
    let request = one(&spans, "request");
    assert_eq!(request.parent_span_id, SpanId::INVALID);
    let upstream = one(&spans, "upstream");
    let trace_id = request.span_context.trace_id();
    assert_eq!(upstream.span_context.trace_id(), trace_id);
    assert_eq!(
        upstream_got,
        format!("00-{trace_id}-{}-01", upstream.span_context.span_id())
    );
}

/// A stand-in OTLP/gRPC collector: keeps the bytes of every export and
/// answers each with an empty `ExportTraceServiceResponse`, status OK.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<u8>>>) {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let kept = kept.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    kept.lock().unwrap().extend_from_slice(&body);
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    // One gRPC message: not compressed, zero bytes long.
                    let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
                        .with_trailers(async move { Some(Ok(trailers)) });
                    let answer = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap();
                    Ok::<_, hyper::Error>(answer)
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, got)
}

#[test]
fn otel_spans_reach_an_otlp_grpc_collector() {
    let collector_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (addr, got) = collector_rt.block_on(collector());

    // The data plane's own export: tonic on its runtime, batch processor.
    let (layer, export) = otlp(&format!("http://{addr}")).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let mut given = http::HeaderMap::new();
        given.insert(
            &crate::observe::trace::TRACEPARENT,
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let mut trace = TraceContext::of(&given);
        let request = spans::request(&http::Method::GET, &mut trace);
        let _in = request.enter();
        drop(spans::upstream("up", &mut trace));
    });
    // Dropping the export flushes the batch.
    drop(export);

    let got = got.lock().unwrap().clone();
    let has = |needle: &[u8]| got.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(&0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes()),
        "the client's trace id reached the collector ({} bytes)",
        got.len()
    );
    for name in ["request", "upstream", SERVICE_NAME] {
        assert!(has(name.as_bytes()), "{name} reached the collector");
    }
}
