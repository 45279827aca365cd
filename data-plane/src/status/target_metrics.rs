//! Per-target metrics for `/metrics`: requests, failures, ejections (as
//! counters) and health, ejection and requests in flight (as gauges), one
//! series per upstream and target address. Encoded by a collector at scrape
//! time from the targets' atomics, so each family is written once with all
//! its label sets. Label values are config names and addresses, which the
//! operator bounds; nothing from requests becomes a label.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::balancer::state::{TargetState, now_ms};
use crate::compile::Compiled;

pub struct TargetMetrics(pub Arc<Compiled>);

impl std::fmt::Debug for TargetMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TargetMetrics")
            .field(&self.0.version)
            .finish()
    }
}

type Read = fn(&TargetState, u64) -> u64;

const COUNTERS: [(&str, &str, Read); 3] = [
    (
        "upstream_target_requests",
        "Attempts sent to the target",
        |s, _| s.requests.load(Ordering::Relaxed),
    ),
    (
        "upstream_target_failures",
        "Attempts that failed to connect, timed out or broke off before a response",
        |s, _| s.failures.load(Ordering::Relaxed),
    ),
    (
        "upstream_target_ejections",
        "Times passive health checks ejected the target",
        |s, _| u64::from(s.ejections.load(Ordering::Relaxed)),
    ),
];

const GAUGES: [(&str, &str, Read); 3] = [
    (
        "upstream_target_healthy",
        "1 while active health checks find the target healthy",
        |s, _| u64::from(s.healthy.load(Ordering::Relaxed)),
    ),
    (
        "upstream_target_ejected",
        "1 while passive health checks keep the target out of rotation",
        |s, now| u64::from(s.ejected_until_ms.load(Ordering::Relaxed) > now),
    ),
    (
        "upstream_target_in_flight",
        "Requests in flight to the target",
        |s, _| u64::from(s.in_flight.load(Ordering::Relaxed)),
    ),
];

impl Collector for TargetMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = now_ms();
        for (kind, families) in [
            (ConstCounter::<u64>::TYPE, &COUNTERS),
            (ConstGauge::<i64>::TYPE, &GAUGES),
        ] {
            for (name, help, read) in families {
                let mut family = encoder.encode_descriptor(name, help, None, kind)?;
                for u in &self.0.upstreams {
                    for t in u.balancer.targets() {
                        let labels = [
                            ("upstream", u.name.as_str()),
                            ("target", t.authority.as_str()),
                        ];
                        let series = family.encode_family(&labels)?;
                        let v = read(&t.state, now);
                        if matches!(kind, MetricType::Counter) {
                            ConstCounter::new(v).encode(series)?;
                        } else {
                            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(series)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
