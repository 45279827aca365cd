//! `GET /upstreams` on the status port: per upstream, each target's health
//! (active checks), ejection (passive checks), requests in flight and
//! counters, read from the targets' atomics at request time.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::balancer::state::now_ms;
use crate::compile::Compiled;

pub fn view(config: &Compiled) -> Value {
    let now = now_ms();
    let upstreams: Vec<Value> = config
        .upstreams
        .iter()
        .map(|u| {
            let targets: Vec<Value> = u
                .balancer
                .targets()
                .iter()
                .map(|t| {
                    let s = &t.state;
                    let until = s.ejected_until_ms.load(Ordering::Relaxed);
                    json!({
                        "address": t.authority.as_str(),
                        "weight": t.weight,
                        "healthy": s.healthy.load(Ordering::Relaxed),
                        "ejected": until > now,
                        "ejected_for_ms": until.saturating_sub(now),
                        "available": s.available(now),
                        "in_flight": s.in_flight.load(Ordering::Relaxed),
                        "requests": s.requests.load(Ordering::Relaxed),
                        "failures": s.failures.load(Ordering::Relaxed),
                        "ejections": s.ejections.load(Ordering::Relaxed),
                        "latency_ewma_ms": s.ewma_ns() / 1e6,
                    })
                })
                .collect();
            json!({
                "id": u.id,
                "name": u.name,
                // The circuit breaker's counts (kept even without caps).
                "requests_in_progress": u.load.requests(),
                "requests_pending": u.load.pending(),
                "targets": targets,
            })
        })
        .collect();
    json!({ "config_version": config.version, "upstreams": upstreams })
}
