//! Per-route request series for `/metrics`, from the routes' atomics
//! (`observe::stats`) at scrape time: answers by status class (and how many
//! of them the proxy gave itself), latency histograms (total, and upstream
//! time to the response head), bytes in and out; and the policies'
//! refusals by plugin (`PolicyRejections`). Labels: route and upstream
//! names, plugin names and the status class, all bounded by the config; no path
//! or consumer ever becomes a label.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::compile::Compiled;
use crate::observe::stats::{AtomicHistogram, CLASSES, RouteStats};

pub struct RouteMetrics(pub Arc<Compiled>);

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RouteMetrics")
            .field(&self.0.version)
            .finish()
    }
}

impl RouteMetrics {
    fn routes(&self) -> impl Iterator<Item = (&str, &str, &RouteStats)> {
        self.0.routes.iter().map(|r| {
            let upstream = self
                .0
                .upstreams
                .get(r.upstream)
                .map_or("", |u| u.name.as_str());
            (r.name.as_str(), upstream, &*r.stats)
        })
    }
}

type Counted = fn(&RouteStats) -> &[std::sync::atomic::AtomicU64; 5];

impl Collector for RouteMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let families: [(&str, &str, Counted); 2] = [
            (
                "requests",
                "Answers by route, upstream and status class",
                |s| &s.responses,
            ),
            (
                "local_responses",
                "Answers the proxy gave itself (no upstream response), by route and status class",
                |s| &s.local,
            ),
        ];
        for (name, help, counts) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (route, upstream, stats) in self.routes() {
                for (class, n) in CLASSES.iter().zip(counts(stats)) {
                    let labels = [("route", route), ("upstream", upstream), ("status", class)];
                    ConstCounter::new(n.load(Ordering::Relaxed))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        for (name, help, bytes) in [
            (
                "request_bytes",
                "Request body bytes received, by route",
                (|s| &s.bytes_in) as fn(&RouteStats) -> &std::sync::atomic::AtomicU64,
            ),
            (
                "response_bytes",
                "Response body bytes sent, by route",
                |s| &s.bytes_out,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (route, upstream, stats) in self.routes() {
                let labels = [("route", route), ("upstream", upstream)];
                ConstCounter::new(bytes(stats).load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, hist) in [
            (
                "request_duration_seconds",
                "Time from the request head to the end of the answer, by route",
                (|s| &s.latency) as fn(&RouteStats) -> &AtomicHistogram,
            ),
            (
                "upstream_duration_seconds",
                "Time from sending upstream to the response head, by route",
                |s| &s.upstream_latency,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (route, upstream, stats) in self.routes() {
                let labels = [("route", route), ("upstream", upstream)];
                let (sum, count, buckets) = hist(stats).snapshot();
                family
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

/// `turnpike_policy_rejections_total{plugin, status}`: requests each plugin
/// refused (auth failures, denials, rate limits...), by status class.
#[derive(Debug)]
pub struct PolicyRejections;

impl Collector for PolicyRejections {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "policy_rejections",
            "Requests a policy answered instead of the upstream, by plugin and status class",
            None,
            MetricType::Counter,
        )?;
        for (plugin, class, n) in crate::policy::rejections::all() {
            let labels = [("plugin", plugin), ("status", class)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
