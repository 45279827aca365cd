//! One data plane's stream: send it every new version, record its ACKs,
//! NACKs and traffic reports, and mark it disconnected when the stream ends.
//!
//! One config message is in flight at a time. The next goes out when the
//! data plane has answered, and it is the newest version (versions
//! coalesce), as a delta from the version the data plane acknowledged when
//! it declared delta support and the delta is available and smaller, else
//! as the full snapshot. A refused delta is followed by the full snapshot.

use std::net::SocketAddr;
use std::time::Instant;

use prost::Message as _;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use turnpike_proto as proto;
use turnpike_proto::control_plane_message::Message as Down;
use turnpike_proto::data_plane_message::Message as Up;
use uuid::Uuid;

use super::ClusterService;
use crate::snapshot::Published;
use crate::store::HelloInfo;

pub struct Session {
    service: ClusterService,
    id: Uuid,
    node_id: String,
    /// Version and hash the data plane runs: from its Hello, then from its
    /// ACKs. The base of the deltas it gets.
    acked: (u64, String),
    /// The version sent and not answered yet.
    in_flight: Option<InFlight>,
    /// When the stream opened: versions published before it are not
    /// pushes to this data plane, so their ACK is no push latency.
    opened: Instant,
    /// The newest version refused as a full snapshot: sent again only when
    /// a newer one replaces it.
    refused: u64,
    /// The data plane said in its Hello that it applies deltas.
    takes_deltas: bool,
    /// A delta was refused: the next message is a full snapshot.
    full_next: bool,
}

/// A config message sent and not answered yet.
struct InFlight {
    version: u64,
    delta: bool,
    published_at: Instant,
}

type Outbound = mpsc::Sender<Result<proto::ControlPlaneMessage, Status>>;

impl Session {
    pub async fn open(
        service: ClusterService,
        hello: proto::Hello,
        peer: Option<SocketAddr>,
    ) -> Result<Session, Status> {
        let id = Uuid::now_v7();
        service
            .state
            .store
            .dp_hello(
                id,
                &HelloInfo {
                    node_id: &hello.node_id,
                    hostname: &hello.hostname,
                    software_version: &hello.software_version,
                    labels: &hello.labels,
                    cached_version: hello.cached_version,
                    cached_hash: &hello.cached_hash,
                },
            )
            .await
            .map_err(|e| Status::unavailable(format!("control plane storage unavailable: {e}")))?;
        service.sessions.lock().unwrap().insert(id);
        let takes_deltas = hello.features.iter().any(|f| f == proto::FEATURE_DELTA);
        tracing::info!(node_id = %hello.node_id, ?peer, cached_version = hello.cached_version, takes_deltas, "data plane connected");
        Ok(Session {
            service,
            id,
            node_id: hello.node_id,
            acked: (hello.cached_version, hello.cached_hash),
            in_flight: None,
            opened: Instant::now(),
            refused: 0,
            takes_deltas,
            full_next: false,
        })
    }

    pub async fn run(mut self, mut inbound: Streaming<proto::DataPlaneMessage>, tx: Outbound) {
        let mut versions = self.service.state.publisher.subscribe();
        loop {
            let current = versions.borrow_and_update().clone();
            if !self.send_if_needed(&current, &tx).await {
                break;
            }
            tokio::select! {
                changed = versions.changed() => if changed.is_err() { break },
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => self.handle(m).await,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::info!(node_id = %self.node_id, %status, "data plane stream failed");
                        break;
                    }
                },
                _ = tx.closed() => break,
            }
        }
        self.service.sessions.lock().unwrap().remove(&self.id);
        if let Err(e) = self.service.state.store.dp_disconnect(self.id).await {
            tracing::warn!(node_id = %self.node_id, error = %e, "could not record disconnect");
        }
        tracing::info!(node_id = %self.node_id, "data plane disconnected");
    }

    /// Sends `current` unless a message is in flight, the data plane holds
    /// that content already, or refused it. Returns false once the stream
    /// is gone.
    async fn send_if_needed(&mut self, current: &Published, tx: &Outbound) -> bool {
        let (held, held_hash) = &self.acked;
        if self.in_flight.is_some()
            || current.version <= self.refused
            || *held > current.version
            || (*held == current.version && *held_hash == current.hash)
        {
            return true;
        }
        let delta = if self.takes_deltas && !self.full_next {
            let deltas = &self.service.deltas;
            deltas.delta((*held, held_hash), current).await
        } else {
            None
        };
        let (message, is_delta) = match delta {
            Some(d) => {
                tracing::debug!(node_id = %self.node_id, base = d.from_version, version = current.version, bytes = d.encoded_len(), "sending delta");
                (Down::Delta(proto::Delta::clone(&d)), true)
            }
            None => {
                tracing::debug!(node_id = %self.node_id, version = current.version, bytes = current.wire.encoded_len(), "sending snapshot");
                self.full_next = false;
                let mut wire = current.wire.clone();
                wire.secrets = Some(self.service.secrets.clone());
                (Down::Snapshot(wire), false)
            }
        };
        self.in_flight = Some(InFlight {
            version: current.version,
            delta: is_delta,
            published_at: current.published_at,
        });
        let msg = proto::ControlPlaneMessage {
            message: Some(message),
        };
        tx.send(Ok(msg)).await.is_ok()
    }

    async fn handle(&mut self, msg: proto::DataPlaneMessage) {
        let store = &self.service.state.store;
        // The data plane answers every config message in order, and one is
        // in flight at a time, so any answer (ACK or NACK) is the answer to it.
        let result = match msg.message {
            Some(Up::Ack(a)) => {
                tracing::debug!(node_id = %self.node_id, version = a.version, "ack");
                if let Some(sent) = self.in_flight.take()
                    && sent.version == a.version
                    && sent.published_at >= self.opened
                {
                    self.service
                        .state
                        .metrics
                        .pushed(sent.published_at.elapsed());
                }
                let r = store.dp_ack(self.id, a.version, &a.hash).await;
                self.acked = (a.version, a.hash);
                r
            }
            Some(Up::Nack(n)) => {
                tracing::warn!(node_id = %self.node_id, version = n.version, error = %n.error, "data plane refused config");
                // The data plane kept its previous config (`acked`). A
                // refused delta may not fit what it runs: send the whole
                // version. A refused snapshot is sent again only when a
                // newer version replaces it.
                match self.in_flight.take() {
                    Some(InFlight { delta: true, .. }) => self.full_next = true,
                    _ => self.refused = self.refused.max(n.version),
                }
                store.dp_nack(self.id, n.version, &n.error).await
            }
            // Not an answer: the in-flight version is untouched.
            Some(Up::Stats(s)) => {
                tracing::trace!(node_id = %self.node_id, requests = s.requests, errors = s.errors, p99_ms = s.p99_ms, "stats");
                store.dp_stats(self.id, &s).await
            }
            Some(Up::Hello(_)) | None => {
                tracing::warn!(node_id = %self.node_id, "unexpected message on an open stream; ignored");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(node_id = %self.node_id, error = %e, "could not record data-plane status");
        }
    }
}
