//! `GET /metrics` on the admin listener: the control plane in the Prometheus
//! text format. One registry, built once with the process: admin requests
//! (counted by `api`'s middleware), snapshot builds (observed by the store as
//! it records them), push latency (observed by `cluster` sessions on ACK),
//! and gauges set at scrape time from the publisher, the last build and one
//! fleet query. Labels are route templates, status codes and fleet states:
//! bounded, and nothing from a request body, token or config becomes one.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{DpStatus, Store};
use crate::{AppState, Error};

/// Buckets, in seconds, of admin request and snapshot build durations.
const FAST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets, in seconds, from a version's publication to a data plane's ACK.
const PUSH_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram of snapshot build durations (the store keeps it).
pub(crate) fn build_histogram() -> Histogram {
    Histogram::new(FAST_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FleetLabels {
    status: &'static str,
}

type Durations = Family<OperationLabels, Histogram, fn() -> Histogram>;

/// The control plane's metrics, shared by every clone of `AppState`.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Durations,
    push_seconds: Histogram,
    published_version: Gauge,
    last_build_bytes: Gauge,
    data_planes: Family<FleetLabels, Gauge>,
    /// One scrape at a time, so the gauges it sets are the ones it encodes.
    scrape: tokio::sync::Mutex<()>,
}

impl Metrics {
    /// Registers every series; `store` holds the build histogram.
    pub fn new(store: &Store) -> Metrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds: Durations =
            Family::new_with_constructor(|| Histogram::new(FAST_BUCKETS));
        let push_seconds = Histogram::new(PUSH_BUCKETS);
        let published_version = Gauge::default();
        let last_build_bytes = Gauge::default();
        let data_planes = Family::<FleetLabels, Gauge>::default();
        let mut r = Registry::with_prefix("turnpike");
        r.register(
            "admin_requests",
            "Admin listener requests by operation (method and route template; `unmatched` for no route) and status code",
            requests.clone(),
        );
        r.register(
            "admin_request_duration_seconds",
            "Admin listener request durations, until the response head, by operation",
            request_seconds.clone(),
        );
        r.register(
            "config_published_version",
            "Newest config version this control plane publishes to its data planes",
            published_version.clone(),
        );
        r.register(
            "config_build_duration_seconds",
            "Snapshot builds of this process: read, validate, encode and hash the whole config in the write transaction",
            store.build_durations(),
        );
        r.register(
            "config_last_build_bytes",
            "Encoded size of the newest snapshot this process built (0: none yet)",
            last_build_bytes.clone(),
        );
        r.register(
            "data_planes",
            "Data planes in the fleet table by status, as GET /api/v1/data-planes shows them",
            data_planes.clone(),
        );
        r.register(
            "config_push_duration_seconds",
            "Time from a version's publication by this control plane to a data plane's ACK of it (data planes connected to it when it was published)",
            push_seconds.clone(),
        );
        Metrics(Arc::new(Inner {
            registry: r,
            requests,
            request_seconds,
            push_seconds,
            published_version,
            last_build_bytes,
            data_planes,
            scrape: tokio::sync::Mutex::new(()),
        }))
    }

    /// Counts one admin request; `operation` must be bounded (a route
    /// template, not a path).
    pub fn admin_request(&self, operation: String, status: u16, took: Duration) {
        self.0
            .request_seconds
            .get_or_create(&OperationLabels {
                operation: operation.clone(),
            })
            .observe(took.as_secs_f64());
        self.0
            .requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
    }

    /// A data plane acknowledged a version `took` after its publication.
    pub fn pushed(&self, took: Duration) {
        self.0.push_seconds.observe(took.as_secs_f64());
    }

    /// The exposition text (OpenMetrics). The fleet gauges come from one
    /// query; when it fails they are left out (and the failure logged)
    /// rather than shown stale, and the rest is still served.
    pub async fn render(&self, state: &AppState) -> String {
        let m = &self.0;
        let _one = m.scrape.lock().await;
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.published_version
            .set(gauge(state.publisher.current().version));
        let bytes = state.store.last_build().map_or(0, |b| b.snapshot_bytes);
        m.last_build_bytes.set(gauge(bytes));
        match fleet(&state.store).await {
            Ok(counts) => {
                for (status, n) in counts {
                    let labels = FleetLabels {
                        status: status.as_str(),
                    };
                    m.data_planes.get_or_create(&labels).set(n);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: could not read the fleet");
                m.data_planes.clear();
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &m.registry);
        out
    }
}

/// Data planes per status, every status included.
async fn fleet(store: &Store) -> Result<[(DpStatus, i64); 4], Error> {
    let mut counts = DpStatus::ALL.map(|s| (s, 0));
    for s in store.data_plane_statuses().await? {
        if let Some(c) = counts.iter_mut().find(|(k, _)| *k == s) {
            c.1 += 1;
        }
    }
    Ok(counts)
}
