//! `GET /metrics` on the status port: the config state of this data plane in
//! the Prometheus text format. Values are read from the same atomics
//! `/status` shows, at scrape time, into a registry built for the scrape;
//! nothing here touches the request path. Per-target series come from
//! `target_metrics`, per-route and per-plugin ones from `route_metrics`
//! (still rendered with `--no-metrics`, then without new counts).

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
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
    // Only once a config was applied: a 0 would read as "just now".
    if let Some(age) = stats.since_applied() {
        r.register(
            "config_last_applied_age_seconds",
            "Seconds since the config in use was swapped in (from a control plane or the disk cache)",
            ConstGauge::new(age),
        );
        r.register(
            "config_last_applied_timestamp_seconds",
            "Unix time the config in use was swapped in",
            ConstGauge::new(stats.last_applied_unix_ms.load(Ordering::Relaxed) as f64 / 1e3),
        );
    }
    let open = Family::<[(&str, &str); 1], Gauge>::default();
    for (kind, count) in [
        ("http", &shared.connections.http),
        ("https", &shared.connections.https),
    ] {
        open.get_or_create(&[("listener", kind)])
            .set(i64::try_from(count.get()).unwrap_or(i64::MAX));
    }
    r.register(
        "open_connections",
        "Client connections open on each proxy listener (accepted, not yet ended; WebSocket tunnels included)",
        open,
    );
    // Only with --access-log: lines its writer could not keep up with.
    if let Some(log) = &shared.access_log {
        r.register(
            "access_log_dropped_lines",
            "Access-log lines dropped because the writer fell behind (a thread's buffer was full)",
            ConstCounter::new(log.dropped()),
        );
    }
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
