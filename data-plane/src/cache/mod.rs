//! The last-known-good config on disk (`--cache-dir`), so a data plane that
//! restarts while no control plane is reachable serves what it last applied
//! instead of nothing.
//!
//! - At start, before the config stream connects, [`restore`] loads the
//!   file, checks it (header checksum, snapshot hash, validation) and
//!   compiles it; only then is it swapped in. Anything wrong refuses the
//!   whole file with one error line; the data plane then waits for a control
//!   plane as if there were no cache.
//! - After each swap from the stream, [`Cache::save`] writes the snapshot
//!   (atomically, see `file`) before the ACK, per PROTOCOL.md step 3. Writes
//!   run on the blocking pool, one at a time, coalescing to the newest; the
//!   ACK waits at most [`WRITE_WAIT`] for it, so a hung disk delays an ACK
//!   but never stops the stream. A failed write is logged, not NACKed: the
//!   config is serving either way.
//! - [`Origin`] says where the config in use came from and whether it is
//!   stale; one atomic, so the status page (and later a metric) can read it.

pub mod file;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use turnpike_model::Snapshot;
use turnpike_proto as proto;

use crate::Shared;
use crate::compile::Compiled;

/// Longest an ACK waits for the cache write of its version.
pub const WRITE_WAIT: Duration = Duration::from_secs(2);

/// Where the config in use came from.
///
/// Staleness rule: a config restored from the cache is stale until a control
/// plane accepts our Hello (the stream is established). That Hello carried
/// the cached version and hash; by PROTOCOL.md step 2 the control plane then
/// sends its current version unless we already hold it, so from that moment
/// we are exactly as current as any connected data plane, even though this
/// control plane sends nothing when the versions are equal. A newer snapshot
/// from the stream replaces the cached config and makes the origin
/// `ControlPlane`. Losing the control plane later does not make a config
/// stale again: `control_plane_connected` says that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Origin {
    /// Nothing applied yet.
    None = 0,
    /// Restored from the cache; no control plane has confirmed it.
    CacheStale = 1,
    /// Restored from the cache, then confirmed by a control plane.
    CacheConfirmed = 2,
    /// Applied from the config stream.
    ControlPlane = 3,
}

impl Origin {
    fn from_u8(v: u8) -> Origin {
        match v {
            1 => Origin::CacheStale,
            2 => Origin::CacheConfirmed,
            3 => Origin::ControlPlane,
            _ => Origin::None,
        }
    }

    /// `config_source` on the status page.
    pub fn source(self) -> &'static str {
        match self {
            Origin::None => "none",
            Origin::CacheStale | Origin::CacheConfirmed => "cache",
            Origin::ControlPlane => "control_plane",
        }
    }

    pub fn is_stale(self) -> bool {
        self == Origin::CacheStale
    }
}

/// The cache of one data plane, kept in [`Shared`]. Without a cache dir it
/// only tracks the origin.
#[derive(Default)]
pub struct Cache {
    origin: AtomicU8,
    writer: Option<Arc<Writer>>,
}

impl Cache {
    pub fn new(dir: Option<PathBuf>) -> Cache {
        Cache {
            origin: AtomicU8::new(Origin::None as u8),
            writer: dir.map(|dir| {
                Arc::new(Writer {
                    dir,
                    pending: Mutex::default(),
                    written: watch::channel(0).0,
                })
            }),
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.writer.as_deref().map(|w| w.dir.as_path())
    }

    pub fn origin(&self) -> Origin {
        Origin::from_u8(self.origin.load(Ordering::Relaxed))
    }

    /// A snapshot from the stream was swapped in.
    pub fn applied_from_control_plane(&self) {
        self.origin
            .store(Origin::ControlPlane as u8, Ordering::Relaxed);
    }

    /// A control plane accepted our Hello: a restored config is no longer
    /// stale (see [`Origin`] for why that suffices).
    pub fn control_plane_connected(&self) {
        let _ = self.origin.compare_exchange(
            Origin::CacheStale as u8,
            Origin::CacheConfirmed as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Writes `snapshot` (just swapped in) to the cache and waits for it, at
    /// most [`WRITE_WAIT`]. Failures are logged by the writer.
    pub async fn save(&self, snapshot: Snapshot, secrets: Arc<proto::ClusterSecrets>) {
        let Some(writer) = &self.writer else { return };
        let version = snapshot.version;
        let mut written = writer.written.subscribe();
        writer.submit(snapshot, secrets);
        let done = tokio::time::timeout(WRITE_WAIT, written.wait_for(|v| *v >= version)).await;
        if done.is_err() {
            tracing::warn!(
                version,
                dir = %writer.dir.display(),
                "the config cache write is slow; acknowledging without it, the write goes on"
            );
        }
    }
}

/// Writes one snapshot at a time on the blocking pool. A snapshot submitted
/// while a write runs waits in `pending`, where a newer one replaces it: the
/// file only ever moves forward, and a slow disk holds one thread, not one
/// per version.
struct Writer {
    dir: PathBuf,
    pending: Mutex<Pending>,
    /// Highest version whose write finished (written or failed and logged).
    written: watch::Sender<u64>,
}

#[derive(Default)]
struct Pending {
    next: Option<(Snapshot, Arc<proto::ClusterSecrets>)>,
    busy: bool,
}

impl Writer {
    fn submit(self: &Arc<Self>, snapshot: Snapshot, secrets: Arc<proto::ClusterSecrets>) {
        let mut pending = self.pending.lock().unwrap();
        pending.next = Some((snapshot, secrets));
        if !pending.busy {
            pending.busy = true;
            let writer = self.clone();
            tokio::task::spawn_blocking(move || writer.drain());
        }
    }

    fn drain(&self) {
        loop {
            let (snapshot, secrets) = {
                let mut pending = self.pending.lock().unwrap();
                match pending.next.take() {
                    Some(s) => s,
                    None => {
                        pending.busy = false;
                        return;
                    }
                }
            };
            let version = snapshot.version;
            let mut wire = snapshot.to_proto();
            wire.secrets = Some(proto::ClusterSecrets::clone(&secrets));
            match file::write(&self.dir, &wire) {
                Ok(()) => tracing::debug!(version, "config cached"),
                Err(e) => tracing::error!(
                    version,
                    error = %e,
                    "could not cache the config; serving it anyway, a restart without a control plane would not have it"
                ),
            }
            self.written.send_modify(|v| *v = (*v).max(version));
        }
    }
}

/// Loads, checks, compiles and swaps in the cached config, if there is one
/// and every check passes. Runs before the config stream starts.
pub async fn restore(shared: &Shared) {
    let Some(dir) = shared.cache.dir().map(Path::to_path_buf) else {
        return;
    };
    let registries = shared.registries.clone();
    let path = file::path(&dir);
    let loaded = tokio::task::spawn_blocking(move || {
        let Some((snapshot, secrets)) = file::read_with_secrets(&dir)? else {
            return Ok(None);
        };
        let hash = snapshot.hash();
        // A config that does not compile is refused like a corrupt file:
        // nothing of it is served.
        Compiled::build(&snapshot, hash, Arc::new(secrets), &registries)
            .map(Some)
            .map_err(|e| crate::Error::CacheRefused {
                path: file::path(&dir),
                reason: e.to_string(),
            })
    })
    .await;
    match loaded {
        Ok(Ok(Some(compiled))) => {
            let (version, hash) = (compiled.version, compiled.hash.clone());
            shared.config.store(Arc::new(compiled));
            shared.stats.swapped();
            shared
                .cache
                .origin
                .store(Origin::CacheStale as u8, Ordering::Relaxed);
            tracing::warn!(
                version,
                %hash,
                path = %path.display(),
                "serving the cached config; stale until a control plane confirms it"
            );
        }
        Ok(Ok(None)) => {
            tracing::info!(path = %path.display(), "no cached config; waiting for a control plane");
        }
        Ok(Err(e)) => {
            tracing::error!("{e}; not serving it, waiting for a control plane");
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cached config refused: the load task failed; waiting for a control plane");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use arc_swap::ArcSwap;

    use super::file::tests::{TempDir, snapshot};
    use super::*;

    fn shared(dir: &Path) -> Shared {
        Shared {
            config: ArcSwap::from_pointee(Compiled::empty()),
            connected: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            node_id: "test".into(),
            labels: BTreeMap::new(),
            registries: Arc::default(),
            body_limits: Default::default(),
            access_log: None,
            metrics: true,
            connections: Default::default(),
            cache: Cache::new(Some(dir.to_path_buf())),
            stats: Default::default(),
        }
    }

    #[tokio::test]
    async fn saved_config_is_restored_stale_until_confirmed() {
        let dir = TempDir::new();
        let first = shared(&dir.0);
        let s = snapshot(9);
        first.cache.save(s.clone(), Arc::default()).await;
        assert!(file::path(&dir.0).exists(), "save waits for the write");

        let second = shared(&dir.0);
        assert_eq!(second.cache.origin(), Origin::None);
        restore(&second).await;
        let config = second.config.load();
        assert_eq!(
            (config.version, config.hash.as_str()),
            (9, s.hash().as_str())
        );
        assert_eq!(config.routes.len(), 1);
        assert!(second.cache.origin().is_stale());
        assert_eq!(second.cache.origin().source(), "cache");

        second.cache.control_plane_connected();
        assert_eq!(second.cache.origin(), Origin::CacheConfirmed);
        assert!(!second.cache.origin().is_stale());
        second.cache.applied_from_control_plane();
        assert_eq!(second.cache.origin().source(), "control_plane");
        // Connecting again later changes nothing.
        second.cache.control_plane_connected();
        assert_eq!(second.cache.origin(), Origin::ControlPlane);
    }

    #[tokio::test]
    async fn corrupt_cache_serves_nothing() {
        let dir = TempDir::new();
        file::write(&dir.0, &snapshot(4).to_proto()).unwrap();
        let mut bytes = std::fs::read(file::path(&dir.0)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(file::path(&dir.0), bytes).unwrap();
        let shared = shared(&dir.0);
        restore(&shared).await;
        assert_eq!(shared.config.load().version, 0);
        assert_eq!(shared.cache.origin(), Origin::None);
        // Confirming nothing makes nothing current.
        shared.cache.control_plane_connected();
        assert_eq!(shared.cache.origin(), Origin::None);
    }

    #[tokio::test]
    async fn writes_coalesce_to_the_newest() {
        let dir = TempDir::new();
        let shared = shared(&dir.0);
        let writer = shared.cache.writer.clone().unwrap();
        // Versions arrive faster than the disk takes them.
        for v in 1..=20 {
            writer.submit(snapshot(v), Arc::default());
        }
        shared.cache.save(snapshot(21), Arc::default()).await;
        assert_eq!(file::read(&dir.0).unwrap().unwrap().version, 21);
        assert_eq!(*writer.written.borrow(), 21);
    }

    #[tokio::test]
    async fn without_a_dir_nothing_is_written() {
        let cache = Cache::new(None);
        assert!(cache.dir().is_none());
        cache.save(snapshot(1), Arc::default()).await;
        assert_eq!(cache.origin(), Origin::None);
    }
}
