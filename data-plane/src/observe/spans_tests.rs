//! The spans of a request driven through the proxy in this process: all
//! there when the filter enables `turnpike::span`, none (their callsites
//! disabled) under the default `info`. `Proxied` is shared with the
//! OpenTelemetry tests (`observe::otel`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Subscriber;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};
use turnpike_model::{Plugin, PluginSpec, Route, RouteSpec, Snapshot, Upstream, UpstreamSpec};
use uuid::Uuid;

use super::*;
use crate::compile::Compiled;
use crate::observe::trace::TRACEPARENT;
use crate::{Shared, listener, proxy};

/// A proxy and its upstream in this process: one route with a policy in
/// each phase that has spans (access, limit, rewrite, response); the
/// upstream records the `traceparent` of each request it gets.
pub(crate) struct Proxied {
    pub addr: SocketAddr,
    pub traceparents: Arc<Mutex<Vec<String>>>,
    _stop: watch::Sender<bool>,
}

impl Proxied {
    pub(crate) async fn start() -> Proxied {
        let (stop, stopped) = watch::channel(false);
        let traceparents = Arc::new(Mutex::new(Vec::new()));
        let seen = traceparents.clone();
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(listener::serve(
            upstream,
            move |_conn, req: http::Request<listener::RequestBody>| {
                let given = req.headers().get(&TRACEPARENT);
                let given = given.and_then(|v| v.to_str().ok()).unwrap_or("");
                seen.lock().unwrap().push(given.to_owned());
                async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
            },
            stopped.clone(),
        ));

        let registries = Arc::new(crate::compile::Registries::default());
        let compiled = Compiled::build(
            &snapshot(upstream_addr),
            "test".into(),
            Arc::default(),
            &registries,
        )
        .unwrap();
        let shared = Arc::new(Shared {
            config: ArcSwap::from_pointee(compiled),
            connected: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            node_id: "test".into(),
            labels: BTreeMap::new(),
            registries,
            body_limits: Default::default(),
            access_log: None,
            metrics: true,
            connections: Default::default(),
            cache: crate::cache::Cache::default(),
            stats: Default::default(),
        });
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        tokio::spawn(listener::serve(
            proxy,
            move |conn, req| proxy::handle(shared.clone(), conn, req),
            stopped,
        ));
        Proxied {
            addr,
            traceparents,
            _stop: stop,
        }
    }

    /// `GET /` with this `traceparent`, if any; the answer's status line.
    pub(crate) async fn get(&self, traceparent: Option<&str>) -> String {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
        if let Some(t) = traceparent {
            head.push_str(&format!("traceparent: {t}\r\n"));
        }
        head.push_str("\r\n");
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut answer))
            .await
            .expect("the proxy answers")
            .unwrap();
        answer.lines().next().unwrap_or("").to_owned()
    }
}

fn snapshot(upstream_addr: SocketAddr) -> Snapshot {
    let upstream = Upstream {
        id: Uuid::now_v7(),
        spec: serde_json::from_value::<UpstreamSpec>(json!({
            "name": "up", "targets": [{"address": upstream_addr.to_string()}]
        }))
        .unwrap(),
    };
    let route = Route {
        id: Uuid::now_v7(),
        spec: serde_json::from_value::<RouteSpec>(json!({
            "name": "r", "paths": ["/"], "upstream": upstream.id.to_string()
        }))
        .unwrap(),
    };
    let plugin = |name: &str, config| Plugin {
        id: Uuid::now_v7(),
        spec: PluginSpec {
            name: name.into(),
            config,
            route: Some(route.id.to_string()),
            consumer: None,
            enabled: true,
            tags: vec![],
        },
    };
    let plugins = vec![
        plugin("ip-restriction", json!({"allow": ["127.0.0.0/8"]})),
        plugin("request-size-limit", json!({"max_bytes": 1024})),
        plugin(
            "request-transformer",
            json!({"add": {"headers": {"x-t": "1"}}}),
        ),
        plugin(
            "response-transformer",
            json!({"add": {"headers": {"x-r": "1"}}}),
        ),
    ];
    let mut snapshot = Snapshot::new(1, vec![upstream], vec![route]);
    snapshot.plugins = plugins;
    snapshot
}

/// One span as a plain subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<&'static str, String>,
}

/// Records every span it is shown, with its parent and fields.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<BTreeMap<u64, Seen>>>);

impl Capture {
    fn spans(&self) -> Vec<Seen> {
        self.0.lock().unwrap().values().cloned().collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.name());
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let seen = Seen {
            name: attrs.metadata().name(),
            parent,
            fields,
        };
        self.0.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(seen) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
}

const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Drives one request with `filter` deciding which spans exist: the spans
/// and the `traceparent` the upstream got.
async fn request_under(filter: &str) -> (Vec<Seen>, String) {
    let capture = Capture::default();
    let subscriber =
        tracing_subscriber::registry().with(capture.clone().with_filter(EnvFilter::new(filter)));
    let _default = tracing::subscriber::set_default(subscriber);
    let proxied = Proxied::start().await;
    assert_eq!(proxied.get(Some(GIVEN)).await, "HTTP/1.1 200 OK");
    let upstream_got = proxied.traceparents.lock().unwrap()[0].clone();
    (capture.spans(), upstream_got)
}

#[tokio::test]
async fn a_request_has_request_policy_and_upstream_spans_when_enabled() {
    let (spans, upstream_got) = request_under("warn,turnpike::span=debug").await;
    // Without the export, the upstream's parent is the proxy's own span id.
    assert!(upstream_got.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(!upstream_got.contains("00f067aa0ba902b7"), "{upstream_got}");
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();

    let request = named("request");
    assert_eq!(request.len(), 1, "{spans:?}");
    let request = &request[0].fields;
    assert_eq!(request["method"], "GET");
    assert_eq!(request["route"], "r");
    assert_eq!(request["status"], "200");
    assert_eq!(request["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    let phases: Vec<_> = named("policy")
        .iter()
        .map(|s| (s.fields["phase"].as_str(), s.parent))
        .collect();
    assert_eq!(
        phases,
        [
            ("access", Some("request")),
            ("limit", Some("request")),
            ("rewrite", Some("request")),
            ("response", Some("request")),
        ]
    );

    let upstream = named("upstream");
    assert_eq!(upstream.len(), 1, "{spans:?}");
    assert_eq!(upstream[0].parent, Some("request"));
    assert_eq!(upstream[0].fields["upstream"], "up");
    assert_eq!(upstream[0].fields["status"], "200");
    assert!(upstream[0].fields["target"].starts_with("127.0.0.1:"));
    assert_eq!(upstream[0].fields["attempts"], "1");
}

/// The log's filter, counting how often it is asked about a span of ours
/// one callsite at a time.
struct Counting(EnvFilter, Arc<AtomicUsize>);

impl<S: Subscriber> tracing_subscriber::layer::Filter<S> for Counting {
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if meta.target() == TARGET {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
        tracing_subscriber::layer::Filter::<S>::enabled(&self.0, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        tracing_subscriber::layer::Filter::<S>::callsite_enabled(&self.0, meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        tracing_subscriber::layer::Filter::<S>::max_level_hint(&self.0)
    }
}

#[tokio::test]
async fn the_default_filter_disables_the_spans() {
    // Through the proxy: no span, and the filter never asked per span (the
    // level and the callsites' cached interest already said no).
    let asked = Arc::new(AtomicUsize::new(0));
    let capture = Capture::default();
    let filter = Counting(EnvFilter::new("info"), asked.clone());
    let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(filter));
    {
        let _default = tracing::subscriber::set_default(subscriber);
        let proxied = Proxied::start().await;
        assert_eq!(proxied.get(Some(GIVEN)).await, "HTTP/1.1 200 OK");
    }
    assert!(capture.spans().is_empty());
    assert_eq!(asked.load(Ordering::Relaxed), 0);

    // Disabled at the callsite: the span is never built, so nothing is
    // allocated or recorded for it.
    let subscriber =
        tracing_subscriber::registry().with(Capture::default().with_filter(EnvFilter::new("info")));
    tracing::subscriber::with_default(subscriber, || {
        let mut trace = TraceContext::of(&http::HeaderMap::new());
        let before = trace;
        assert!(request(&Method::GET, &mut trace).is_disabled());
        assert!(upstream("up", &mut trace).is_disabled());
        assert!(policy(Phase::Access).is_disabled());
        assert_eq!(trace, before, "the trace context is left alone");
    });
}
