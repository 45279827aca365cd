//! One data plane's stream: send it every new version, record its ACKs and
//! NACKs, and mark it disconnected when the stream ends.

use std::net::SocketAddr;

use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use turnpike_proto as proto;
use turnpike_proto::data_plane_message::Message as Up;
use uuid::Uuid;

use super::ClusterService;
use crate::snapshot::Published;
use crate::store::HelloInfo;

pub struct Session {
    service: ClusterService,
    id: Uuid,
    node_id: String,
    /// Version the data plane holds (from its Hello, then from what we sent).
    held: (u64, String),
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
        tracing::info!(node_id = %hello.node_id, ?peer, cached_version = hello.cached_version, "data plane connected");
        Ok(Session {
            service,
            id,
            node_id: hello.node_id,
            held: (hello.cached_version, hello.cached_hash),
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

    /// Sends `current` unless the data plane already holds that content.
    /// Returns false once the stream is gone.
    async fn send_if_needed(&mut self, current: &Published, tx: &Outbound) -> bool {
        if self.held.0 >= current.version {
            return true;
        }
        let msg = proto::ControlPlaneMessage {
            message: Some(proto::control_plane_message::Message::Snapshot(
                current.wire.clone(),
            )),
        };
        self.held = (current.version, current.hash.clone());
        tx.send(Ok(msg)).await.is_ok()
    }

    async fn handle(&mut self, msg: proto::DataPlaneMessage) {
        let store = &self.service.state.store;
        let result = match msg.message {
            Some(Up::Ack(a)) => {
                tracing::debug!(node_id = %self.node_id, version = a.version, "ack");
                store.dp_ack(self.id, a.version, &a.hash).await
            }
            Some(Up::Nack(n)) => {
                tracing::warn!(node_id = %self.node_id, version = n.version, error = %n.error, "data plane refused config");
                // The data plane kept its previous config; send this version
                // again only when a newer one replaces it.
                store.dp_nack(self.id, n.version, &n.error).await
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
