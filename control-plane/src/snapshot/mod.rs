//! Snapshot publishing: the newest committed version, shared with every
//! cluster stream through a `watch` channel. `routing` compiles a version's
//! routes for the admin API's route matcher.

mod routing;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::watch;
use turnpike_proto as proto;

pub use routing::Routing;

/// A committed version, ready to send.
#[derive(Debug)]
pub struct Published {
    pub version: u64,
    pub hash: String,
    pub wire: proto::Snapshot,
    /// When this process committed it, or learned of it (a version read
    /// from the database: committed elsewhere, or before this process
    /// started). Push latency is measured from here.
    pub published_at: Instant,
    /// Its routes compiled for `GET /routes/match`, built on first use.
    routing: OnceLock<Result<Arc<Routing>, String>>,
}

impl Published {
    pub fn new(wire: proto::Snapshot) -> Arc<Published> {
        Arc::new(Published {
            version: wire.version,
            hash: wire.hash.clone(),
            wire,
            published_at: Instant::now(),
            routing: OnceLock::new(),
        })
    }
}

/// Hands the newest version to all streams. Streams that fall behind see
/// only the newest one (versions coalesce), never an older one after a
/// newer.
#[derive(Clone)]
pub struct Publisher {
    tx: watch::Sender<Arc<Published>>,
}

impl Publisher {
    pub fn new(current: Arc<Published>) -> Publisher {
        Publisher {
            tx: watch::Sender::new(current),
        }
    }

    /// Publishes `p` unless a newer version was published already (two
    /// writers may finish in either order).
    pub fn publish(&self, p: Arc<Published>) {
        self.tx.send_if_modified(|cur| {
            if p.version > cur.version {
                *cur = p;
                true
            } else {
                false
            }
        });
    }

    pub fn current(&self) -> Arc<Published> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }
}
