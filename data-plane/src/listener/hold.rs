//! What an upgraded (WebSocket) connection keeps from the listener that
//! accepted it. Once the 101 is written `h1` hands the socket over and the
//! connection's task ends, so without this the tunnel would no longer count
//! against `max_connections`, the idle deadlines would close it, and the
//! drain at shutdown would not wait for it.
//!
//! Each connection puts one [`ConnectionHold`] in its requests' extensions;
//! a tunnel keeps it (and a request counted in flight, so `idle::IdleIo`
//! sees the connection busy) for as long as it runs. The hold also counts
//! the connection in its listener's [`OpenConnections`] (`/metrics`), from
//! the accept until the connection, and any tunnel made from it, ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::idle::{Activity, InFlight};

/// One connection's share of the listener, held by the connection's task
/// and by any tunnel made from it.
#[derive(Debug)]
pub struct ConnectionHold {
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
    /// Never sent on: the listener's drain waits until every clone is gone.
    _open: mpsc::Sender<()>,
    _counted: Counted,
}

/// How many connections a listener has open: accepted and not yet ended
/// (an upgraded one while its tunnel runs). One relaxed add at the accept,
/// one subtract at the end.
#[derive(Debug, Default)]
pub struct OpenConnections(AtomicU64);

impl OpenConnections {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One connection counted in its listener's [`OpenConnections`] while it
/// lives.
#[derive(Debug)]
struct Counted(Arc<OpenConnections>);

impl Counted {
    fn new(open: &Arc<OpenConnections>) -> Counted {
        open.0.fetch_add(1, Ordering::Relaxed);
        Counted(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps an upgraded connection counted (connection cap, in flight) while
/// it lives.
#[derive(Debug)]
pub struct TunnelGuard {
    _in_flight: InFlight,
    _hold: Arc<ConnectionHold>,
}

impl ConnectionHold {
    /// The connection's request counter (`idle::track`).
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// A tunnel's guard, and the listener's shutdown signal to end it on.
    pub fn tunnel(self: &Arc<Self>) -> (TunnelGuard, watch::Receiver<bool>) {
        let guard = TunnelGuard {
            _in_flight: InFlight::hold(&self.activity),
            _hold: self.clone(),
        };
        (guard, self.shutdown.clone())
    }
}

/// The listener's side: makes the holds, and waits for them at the drain.
#[derive(Debug)]
pub struct Holds {
    open: mpsc::Sender<()>,
    closed: mpsc::Receiver<()>,
    shutdown: watch::Receiver<bool>,
    count: Arc<OpenConnections>,
}

impl Holds {
    /// Holds counted in `count` while they live.
    pub fn new(shutdown: watch::Receiver<bool>, count: Arc<OpenConnections>) -> Holds {
        let (open, closed) = mpsc::channel(1);
        Holds {
            open,
            closed,
            shutdown,
            count,
        }
    }

    pub fn hold(
        &self,
        activity: Arc<Activity>,
        permit: OwnedSemaphorePermit,
    ) -> Arc<ConnectionHold> {
        Arc::new(ConnectionHold {
            activity,
            _permit: permit,
            shutdown: self.shutdown.clone(),
            _open: self.open.clone(),
            _counted: Counted::new(&self.count),
        })
    }

    /// Resolves once every connection and tunnel made here has ended.
    pub async fn closed(self) {
        let Holds {
            open, mut closed, ..
        } = self;
        drop(open);
        let _ = closed.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test]
    async fn connections_count_while_held_and_tunnelled() {
        let count = Arc::new(OpenConnections::default());
        let (_stop, shutdown) = watch::channel(false);
        let holds = Holds::new(shutdown, count.clone());
        let permits = Arc::new(Semaphore::new(10));
        let hold = |holds: &Holds| {
            holds.hold(Arc::default(), permits.clone().try_acquire_owned().unwrap())
        };
        let (a, b) = (hold(&holds), hold(&holds));
        assert_eq!(count.get(), 2);
        drop(a);
        assert_eq!(count.get(), 1);
        // A tunnel keeps its connection counted after the connection's
        // task let go of it.
        let (tunnel, _) = b.tunnel();
        drop(b);
        assert_eq!(count.get(), 1);
        drop(tunnel);
        assert_eq!(count.get(), 0);
        holds.closed().await;
    }
}
