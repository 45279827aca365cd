//! Deltas for the config stream: what turns the version a data plane holds
//! into the current one, computed once per pair of versions and shared by
//! every stream that needs it.
//!
//! A delta needs the data plane's version decoded. The last few versions
//! are kept decoded in memory, so a push to many data planes costs one
//! decode and one diff, not a database read per data plane; older ones (a
//! data plane reconnecting after a while, or one that was served by another
//! control plane) are read from the history once. A delta is offered only
//! when the data plane's hash is this cluster's hash of that version, and
//! only when it encodes smaller than the full snapshot.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::sync::OnceCell;
use turnpike_model::{Delta, Snapshot};
use turnpike_proto as proto;

use crate::Error;
use crate::snapshot::Published;
use crate::store::Store;

/// Decoded versions kept. Data planes are mostly one or two versions behind;
/// a handful covers bursts of writes without holding many large configs.
const SNAPSHOTS_KEPT: usize = 8;
/// Computed deltas kept (including "no delta: send the snapshot" answers).
const DELTAS_KEPT: usize = 64;

/// One version, decoded, with its hash and the size of its full snapshot.
pub struct Version {
    pub snapshot: Snapshot,
    pub hash: String,
    pub full_bytes: usize,
}

/// One cached answer, computed by whichever stream asks first while the
/// others wait for it. `None`: there is no such version, or no delta worth
/// sending.
type Slot<T> = Arc<OnceCell<Option<Arc<T>>>>;
/// Slots by key, oldest first.
type Slots<K, T> = Mutex<VecDeque<(K, Slot<T>)>>;

pub struct DeltaCache {
    store: Store,
    snapshots: Slots<u64, Version>,
    /// By (base version, target version).
    deltas: Slots<(u64, u64), proto::Delta>,
}

impl DeltaCache {
    pub fn new(store: Store) -> DeltaCache {
        DeltaCache {
            store,
            snapshots: Mutex::default(),
            deltas: Mutex::default(),
        }
    }

    /// The delta from `held` (version and hash the data plane runs) to
    /// `current`, or None when a full snapshot should go: the history lacks
    /// that version, the hashes differ, or the delta would not be smaller.
    pub async fn delta(&self, held: (u64, &str), current: &Published) -> Option<Arc<proto::Delta>> {
        if held.0 == 0 || held.0 >= current.version {
            return None;
        }
        let base = self.version(held.0, None).await?;
        if base.hash != held.1 {
            return None;
        }
        let slot = slot(&self.deltas, (held.0, current.version), DELTAS_KEPT);
        let result = slot
            .get_or_try_init(|| async move {
                let Some(target) = self.version(current.version, Some(current)).await else {
                    return Err(());
                };
                // Diffing and encoding a large config is CPU work.
                let delta = tokio::task::spawn_blocking(move || {
                    let delta = Delta::between(&base.snapshot, &target.snapshot).to_proto();
                    (delta.encoded_len() < target.full_bytes).then(|| Arc::new(delta))
                })
                .await
                .map_err(|_| ())?;
                Ok::<_, ()>(delta)
            })
            .await;
        result.ok().cloned().flatten()
    }

    /// A version decoded: from memory, from `published` when it is that
    /// version, or from the history. None if it cannot be had now; a
    /// version the history lacks is remembered as such, a failed read is
    /// tried again next time.
    async fn version(&self, version: u64, published: Option<&Published>) -> Option<Arc<Version>> {
        let slot = slot(&self.snapshots, version, SNAPSHOTS_KEPT);
        let result = slot
            .get_or_try_init(|| async {
                match published.filter(|p| p.version == version) {
                    Some(p) => decode_published(p).await.map(Some),
                    None => self.load(version).await,
                }
            })
            .await;
        match result {
            Ok(v) => v.clone(),
            Err(e) => {
                tracing::warn!(version, error = %e, "could not read a config version for a delta; sending the full snapshot");
                None
            }
        }
    }

    async fn load(&self, version: u64) -> Result<Option<Arc<Version>>, Error> {
        match self.store.get_version(version).await {
            Ok(stored) => {
                let snapshot = stored.snapshot;
                let hash = stored.entry.hash;
                let full = tokio::task::spawn_blocking(move || {
                    let full_bytes = snapshot.to_proto().encoded_len();
                    Version {
                        snapshot,
                        hash,
                        full_bytes,
                    }
                })
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
                Ok(Some(Arc::new(full)))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Decodes the version being published (off the async threads).
async fn decode_published(p: &Published) -> Result<Arc<Version>, Error> {
    let wire = p.wire.clone();
    tokio::task::spawn_blocking(move || {
        let full_bytes = wire.encoded_len();
        let hash = wire.hash.clone();
        let snapshot = Snapshot::decode(wire)
            .map_err(|e| Error::Internal(format!("published snapshot: {e}")))?;
        Ok(Arc::new(Version {
            snapshot,
            hash,
            full_bytes,
        }))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// The slot of `key`, created if missing; the oldest slot goes beyond `cap`.
fn slot<K: PartialEq + Copy, T>(list: &Slots<K, T>, key: K, cap: usize) -> Slot<T> {
    let mut list = list.lock().unwrap();
    if let Some((_, s)) = list.iter().find(|(k, _)| *k == key) {
        return s.clone();
    }
    let s = Slot::default();
    list.push_back((key, s.clone()));
    if list.len() > cap {
        list.pop_front();
    }
    s
}
