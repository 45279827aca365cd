//! Applying a `Delta` from the control plane: the snapshot the data plane
//! runs (kept in `Compiled`) plus the change gives the new version, which
//! must come from that very version and hash to what the control plane says
//! before it is validated, compiled and swapped in like a full snapshot.
//! Any failure is a NACK and the control plane follows up with a full
//! snapshot. Also the counters `/status` shows of which path each applied
//! version took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use turnpike_model::Delta;
use turnpike_proto as proto;

use crate::Shared;
use crate::compile::Compiled;

/// How configs arrived, for `/status` and for tests that must tell a delta
/// from a full snapshot.
#[derive(Debug, Default)]
pub struct ConfigStats {
    pub snapshots_applied: AtomicU64,
    pub deltas_applied: AtomicU64,
    /// Encoded size of the last config message applied (either kind).
    pub last_config_bytes: AtomicU64,
    /// Microseconds the last applied config took from the decoded message
    /// to the swap: conversion to the model with its hash check (and, for
    /// a delta, patching the running snapshot), validation, compilation,
    /// `ArcSwap::store`. Not the protobuf decoding (done by tonic as the
    /// message arrives) nor the disk cache write after the swap.
    pub last_apply_us: AtomicU64,
    /// When the config in use was swapped in, from a control plane or the
    /// disk cache: Unix time in milliseconds, 0 before the first.
    pub last_applied_unix_ms: AtomicU64,
}

/// Which kind of message produced an applied version, and its encoded size.
#[derive(Debug, Clone, Copy)]
pub enum Applied {
    Snapshot { bytes: usize },
    Delta { bytes: usize },
}

impl Applied {
    pub fn kind(self) -> &'static str {
        match self {
            Applied::Snapshot { .. } => "snapshot",
            Applied::Delta { .. } => "delta",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Applied::Snapshot { bytes } | Applied::Delta { bytes } => bytes,
        }
    }
}

impl ConfigStats {
    pub fn record(&self, applied: Applied, took: Duration) {
        let counter = match applied {
            Applied::Snapshot { .. } => &self.snapshots_applied,
            Applied::Delta { .. } => &self.deltas_applied,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last_config_bytes
            .store(applied.bytes() as u64, Ordering::Relaxed);
        self.last_apply_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
        self.swapped();
    }

    /// A config was swapped in now.
    pub fn swapped(&self) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_applied_unix_ms.store(ms, Ordering::Relaxed);
    }

    /// Seconds since the config in use was swapped in; `None` before the
    /// first.
    pub fn since_applied(&self) -> Option<f64> {
        let ms = self.last_applied_unix_ms.load(Ordering::Relaxed);
        let at = UNIX_EPOCH + Duration::from_millis((ms > 0).then_some(ms)?);
        Some(
            SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64(),
        )
    }
}

/// Applies one delta to the running snapshot; answers ACK or NACK.
pub(super) async fn apply(
    shared: &Shared,
    wire: proto::Delta,
) -> proto::data_plane_message::Message {
    let started = Instant::now();
    let version = wire.to_version;
    let applied = Applied::Delta {
        bytes: wire.encoded_len(),
    };
    let current = shared.config.load_full();
    if version < current.version {
        return super::nack(
            version,
            format!(
                "version {version} is older than the applied version {}",
                current.version
            ),
        );
    }
    let hash = wire.hash.clone();
    let registries = shared.registries.clone();
    // Patching, hashing and compiling a large config is CPU work; keep it
    // off the proxy's threads.
    let result = tokio::task::spawn_blocking(move || {
        let delta = Delta::try_from(wire)?;
        // Checks the base version, the hash of the result, and validates.
        let snapshot = delta.apply(&current.snapshot)?;
        Compiled::build(&snapshot, hash, current.secrets.clone(), &registries)
            .map(|c| (c, snapshot))
    })
    .await;
    super::finish(shared, version, (applied, started), result).await
}

#[cfg(test)]
mod tests {
    use turnpike_model::Snapshot;

    use super::*;
    use crate::config_client::tests::{is_ack, nack_error, shared, snapshot};

    fn model(wire: &proto::Snapshot) -> Snapshot {
        Snapshot::try_from(wire.clone()).unwrap()
    }

    #[tokio::test]
    async fn applies_a_delta_to_the_running_snapshot_and_counts_it() {
        let shared = shared();
        let first = snapshot(5);
        let base = model(&first);
        assert!(is_ack(&super::super::apply(&shared, first).await, 5));

        let mut next = base.clone();
        next.version = 6;
        next.routes[0].spec.paths = vec!["/next".into()];
        let wire = Delta::between(&base, &next).to_proto();
        let bytes = wire.encoded_len() as u64;
        assert!(is_ack(&apply(&shared, wire).await, 6));
        let running = shared.config.load();
        assert_eq!(
            (running.version, running.hash.as_str()),
            (6, next.hash().as_str())
        );
        assert_eq!(*running.snapshot, next);
        let stats = &shared.stats;
        assert_eq!(stats.snapshots_applied.load(Ordering::Relaxed), 1);
        assert_eq!(stats.deltas_applied.load(Ordering::Relaxed), 1);
        assert_eq!(stats.last_config_bytes.load(Ordering::Relaxed), bytes);
        assert!(stats.last_apply_us.load(Ordering::Relaxed) > 0);
    }

    #[tokio::test]
    async fn a_delta_that_does_not_fit_is_refused_and_the_config_kept() {
        let shared = shared();
        let first = snapshot(5);
        let base = model(&first);
        assert!(is_ack(&super::super::apply(&shared, first).await, 5));

        // Computed from another version than the one running.
        let mut other = base.clone();
        other.version = 4;
        let mut next = base.clone();
        next.version = 7;
        next.routes[0].spec.priority = 3;
        let error = nack_error(apply(&shared, Delta::between(&other, &next).to_proto()).await);
        assert!(error.contains("does not apply to version 5"), "{error}");

        // The right base, but the promised hash is not what results.
        let mut wire = Delta::between(&base, &next).to_proto();
        wire.hash = "0".repeat(64);
        let error = nack_error(apply(&shared, wire).await);
        assert!(error.contains("hash mismatch"), "{error}");

        // A plugin this data plane cannot enforce arrives by delta: a rate
        // limit counted in Redis, and this data plane has no Redis.
        let mut with_plugin = next.clone();
        with_plugin.plugins.push(turnpike_model::Plugin {
            id: uuid::Uuid::now_v7(),
            spec: serde_json::from_value(serde_json::json!({
                "name": "rate-limit",
                "config": {"limit": 10, "policy": "redis"}
            }))
            .unwrap(),
        });
        let error =
            nack_error(apply(&shared, Delta::between(&base, &with_plugin).to_proto()).await);
        assert!(
            error.contains("plugin rate-limit") && error.contains("--redis-url"),
            "{error}"
        );

        let running = shared.config.load();
        assert_eq!((running.version, &*running.snapshot), (5, &base));
        assert_eq!(shared.stats.deltas_applied.load(Ordering::Relaxed), 0);
    }
}
