//! The cluster side: the gRPC config stream each data plane opens, and the
//! fleet records it keeps in Postgres.

mod deltas;
mod session;
mod tls;

pub use tls::ClusterTls;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use turnpike_proto as proto;
use turnpike_proto::config_discovery_server::{ConfigDiscovery, ConfigDiscoveryServer};
use uuid::Uuid;

use crate::{AppState, Error, secret};

/// Largest message either side accepts. Set explicitly (tonic's default is
/// 4 MiB) and large enough for a snapshot of tens of thousands of entities.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How often the control plane refreshes `last_seen` of its streams.
const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ClusterService {
    state: AppState,
    token_hash: Arc<str>,
    /// Sessions this process holds, for the heartbeat.
    sessions: Arc<Mutex<HashSet<Uuid>>>,
    /// Recent versions decoded and deltas between them, shared by streams.
    deltas: Arc<deltas::DeltaCache>,
    /// Added to every snapshot sent (outside its hash).
    secrets: proto::ClusterSecrets,
}

impl ClusterService {
    pub fn new(
        state: AppState,
        token_hash: String,
        secrets: proto::ClusterSecrets,
    ) -> ClusterService {
        ClusterService {
            secrets,
            token_hash: token_hash.into(),
            sessions: Arc::default(),
            deltas: Arc::new(deltas::DeltaCache::new(state.store.clone())),
            state,
        }
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing cluster token"))?;
        if secret::matches(presented, &self.token_hash) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid cluster token"))
        }
    }
}

#[tonic::async_trait]
impl ConfigDiscovery for ClusterService {
    type StreamStream = ReceiverStream<Result<proto::ControlPlaneMessage, Status>>;

    async fn stream(
        &self,
        req: Request<Streaming<proto::DataPlaneMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        self.authorize(&req)?;
        let peer = req.remote_addr();
        let mut inbound = req.into_inner();
        let hello = match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
            Ok(Ok(Some(proto::DataPlaneMessage {
                message: Some(proto::data_plane_message::Message::Hello(h)),
            }))) => h,
            Ok(Err(status)) => return Err(status),
            Err(_) => return Err(Status::deadline_exceeded("no Hello within 10 s")),
            Ok(_) => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        if hello.node_id.is_empty() || hello.node_id.len() > 256 {
            return Err(Status::invalid_argument(
                "node_id must be 1 to 256 characters",
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let session = session::Session::open(self.clone(), hello, peer).await?;
        tokio::spawn(session.run(inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves the config stream until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    service: ClusterService,
    tls: Option<ClusterTls>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let svc = ConfigDiscoveryServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        server = server
            .tls_config(tls.server_config())
            .map_err(|e| Error::BadRequest(format!("cluster TLS: {e}")))?;
    }
    server
        // Pings both ways (the data plane sends its own): a stream whose
        // peer stopped answering is closed within 10 s.
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| Error::Internal(format!("cluster listener: {e}")))
}

/// Keeps `last_seen` fresh for the streams this process holds.
pub async fn heartbeat(service: ClusterService, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let sessions: Vec<Uuid> = service.sessions.lock().unwrap().iter().copied().collect();
        if sessions.is_empty() {
            continue;
        }
        if let Err(e) = service.state.store.dp_heartbeat(&sessions).await {
            tracing::warn!(error = %e, "could not refresh data-plane heartbeats");
        }
    }
}
