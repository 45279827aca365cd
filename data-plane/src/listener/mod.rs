//! Accept loops: each connection served in its own task by `h1` (HTTP/1.x,
//! and HTTP/2 with prior knowledge, handed to hyper), tracked for graceful
//! shutdown. `tls` is the same over TLS, with ALPN. `limits` holds the
//! limits and their defaults; `idle` the per-connection head and idle
//! deadlines; `hold` what an upgraded (WebSocket) connection keeps of its
//! listener, and the count of open connections; `body` the request body
//! the handler gets.

pub mod body;
pub mod h1;
pub mod hold;
pub mod idle;
pub mod limits;
pub mod tls;

pub use body::{BodyError, RequestBody};
pub use h1::respond::PassedFields;
pub use hold::OpenConnections;
pub use limits::{HEADER_READ_TIMEOUT, Limits};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Time in-flight requests get to finish after shutdown begins.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// The connection a request came on, handed to the handler with each
/// request: one reference-count increment, where request extensions would
/// allocate per request.
pub struct Conn {
    pub peer: SocketAddr,
    /// Whether it arrived on the TLS listener (`X-Forwarded-Proto`).
    pub tls: bool,
    /// Keeps the connection's permit and activity alive for a tunnel made
    /// from it (`proxy::upgrade`).
    pub hold: Arc<hold::ConnectionHold>,
    /// `peer`'s address as `X-Forwarded-For` states it, made once: each
    /// request clones it (a reference count) instead of allocating it.
    pub forwarded_for: http::HeaderValue,
}

impl Conn {
    pub fn new(peer: SocketAddr, tls: bool, hold: Arc<hold::ConnectionHold>) -> Conn {
        Conn {
            peer,
            tls,
            hold,
            forwarded_for: crate::proxy::headers::client_text(peer.ip()),
        }
    }
}

/// Open connections of the proxy listeners, by kind, for `/metrics`
/// (`turnpike_open_connections{listener}`).
#[derive(Debug, Default)]
pub struct Connections {
    pub http: Arc<OpenConnections>,
    pub https: Arc<OpenConnections>,
}

/// Serves `handler` on `listener` with the default [`Limits`] until
/// `shutdown`, then drains.
pub async fn serve<H, F, B>(listener: TcpListener, handler: H, shutdown: watch::Receiver<bool>)
where
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + PassedFields + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(
        listener,
        Limits::default(),
        Arc::default(),
        handler,
        shutdown,
    )
    .await;
}

/// [`serve`] with these limits: connections past `max_connections` are
/// refused at once, and each socket carries its head and idle deadlines.
/// Admitted connections are counted in `open` while they last.
pub async fn serve_with<H, F, B>(
    listener: TcpListener,
    limits: Limits,
    open: Arc<OpenConnections>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + PassedFields + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = Arc::new(limits.service(handler));
    let admission = limits::Admission::new(limits.max_connections);
    let graceful = GracefulShutdown::new();
    let holds = hold::Holds::new(shutdown.clone(), open);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = crate::stopped(&mut shutdown) => break,
        };
        let Some(permit) = admission.admit(&stream) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(idle::Activity::default());
        let io = idle::IdleIo::new(
            stream,
            activity.clone(),
            limits.header_read_timeout,
            limits.idle_timeout,
        );
        // The permit goes with the hold: a tunnel made from the connection
        // keeps it after the connection's task ends.
        let conn = Arc::new(Conn::new(peer, false, holds.hold(activity, permit)));
        tokio::spawn(h1::serve(
            io,
            conn,
            service.clone(),
            shutdown.clone(),
            graceful.watcher(),
        ));
    }
    drop(listener);
    drain(graceful, holds).await;
}

/// The next connection; accept errors are logged and retried.
pub(crate) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(a) => return a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Lets watched connections, then tunnels, finish, for at most
/// [`DRAIN_DEADLINE`] in all.
pub(crate) async fn drain(graceful: GracefulShutdown, holds: hold::Holds) {
    let all = async {
        graceful.shutdown().await;
        holds.closed().await;
    };
    if tokio::time::timeout(DRAIN_DEADLINE, all).await.is_err() {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
}
