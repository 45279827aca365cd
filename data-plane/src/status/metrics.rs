//! `GET /metrics` on the status port: the config state of this data plane in
//! the Prometheus text format. Values are read from the same atomics
//! `/status` shows, at scrape time, into a registry built for the scrape;
//! nothing here touches the request path. Per-target series come from
//! `target_metrics`; request and policy metrics join with the
//! observability work.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::Shared;

/// The exposition text (Prometheus text format 0.0.4 / OpenMetrics).
pub fn render(shared: &Shared) -> String {
    let config = shared.config.load();
    let origin = shared.cache.origin();
    let stats = &shared.stats;
    let flag = |b: bool| ConstGauge::new(i64::from(b));
    let mut r = Registry::with_prefix("turnpike");
    r.register(
        "config_version",
        "Config version this data plane serves (0: none yet)",
        ConstGauge::new(i64::try_from(config.version).unwrap_or(i64::MAX)),
    );
    r.register(
        "config_stale",
        "1 while the config in use was restored from the disk cache and no control plane has confirmed it",
        flag(origin.is_stale()),
    );
    r.register(
        "config_from_cache",
        "1 while the config in use came from the disk cache",
        flag(origin.source() == "cache"),
    );
    r.register(
        "control_plane_connected",
        "1 while the config stream to a control plane is up",
        flag(shared.connected.load(Ordering::Relaxed)),
    );
    r.register(
        "config_snapshots_applied",
        "Full config snapshots applied since start",
        ConstCounter::new(stats.snapshots_applied.load(Ordering::Relaxed)),
    );
    r.register(
        "config_deltas_applied",
        "Config deltas applied since start",
        ConstCounter::new(stats.deltas_applied.load(Ordering::Relaxed)),
    );
    r.register(
        "config_last_apply_seconds",
        "Time from the decoded message to the swap for the last config applied",
        ConstGauge::new(stats.last_apply_us.load(Ordering::Relaxed) as f64 / 1e6),
    );
    r.register_collector(Box::new(super::target_metrics::TargetMetrics(
        shared.config.load_full(),
    )));
    r.register_collector(Box::new(super::route_metrics::PolicyRejections));
    r.register_collector(Box::new(super::route_metrics::RouteMetrics(
        shared.config.load_full(),
    )));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}
