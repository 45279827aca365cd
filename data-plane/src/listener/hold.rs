//! What an upgraded (WebSocket) connection keeps from the listener that
//! accepted it. Once the 101 is written hyper hands the socket over and the
//! connection's task ends, so without this the tunnel would no longer count
//! against `max_connections`, the idle deadlines would close it, and the
//! drain at shutdown would not wait for it.
//!
//! Each connection puts one [`ConnectionHold`] in its requests' extensions;
//! a tunnel keeps it (and a request counted in flight, so `idle::IdleIo`
//! sees the connection busy) for as long as it runs.

use std::sync::Arc;

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
}

impl Holds {
    pub fn new(shutdown: watch::Receiver<bool>) -> Holds {
        let (open, closed) = mpsc::channel(1);
        Holds {
            open,
            closed,
            shutdown,
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
