//! The TLS accept loop (`--proxy-tls-listen`): rustls terminates TLS 1.2
//! and 1.3 with the certificate the current config holds for the client's
//! SNI ([`SniResolver`], rule in `compile::certs`), ALPN offers `h2` and
//! `http/1.1`, and the decrypted stream goes to the same connection server
//! (`super::h1`, HTTP/2 by its preface) and handler as the plaintext listener, its [`super::Conn`] marked
//! `tls` so the proxy says `X-Forwarded-Proto: https`.
//!
//! The certificate table is read at each handshake from the config in use,
//! so a config swap changes what new handshakes get and leaves open
//! connections alone.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::hold::ConnectionHold;
use super::{Conn, RequestBody, h1};
use super::{Limits, PassedFields, idle};
use crate::{Error, Shared};

/// Time a client gets to complete the TLS handshake; a stalled one holds a
/// task and a socket, never the accept loop.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Picks each handshake's certificate from the config in use.
pub struct SniResolver {
    shared: Arc<Shared>,
}

impl SniResolver {
    pub fn new(shared: Arc<Shared>) -> SniResolver {
        SniResolver { shared }
    }
}

// By hand: `Shared` holds the whole config, which has no place in a log line.
impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self
            .shared
            .config
            .load()
            .certificates
            .resolve(hello.server_name());
        if key.is_none() {
            tracing::debug!(sni = ?hello.server_name(), "no certificate for this SNI; handshake refused");
        }
        key
    }
}

/// The listener's rustls config: ring, TLS 1.2 and 1.3 only, no client
/// certificates, ALPN `h2` then `http/1.1`.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, Error> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(crate::compile::certs::provider()))
            .with_protocol_versions(&[&TLS13, &TLS12])
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// What every connection of one TLS listener shares.
struct Listener<H> {
    acceptor: TlsAcceptor,
    service: Arc<h1::Service<H>>,
    limits: Limits,
}

/// Serves `handler` over TLS on `listener` with `limits` (as
/// [`super::serve_with`]: connection cap, head and idle deadlines, HTTP/2
/// limits, connections counted in `count` from the accept) until
/// `shutdown`, then drains the same way.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: Limits,
    count: Arc<super::OpenConnections>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + PassedFields + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Not `limits::Admission`: its plaintext 503 means nothing to a TLS
    // client, so a full TLS listener just closes the socket.
    let open = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let shared = Arc::new(Listener {
        acceptor: TlsAcceptor::from(config),
        service: Arc::new(limits.service(handler)),
        limits,
    });
    let graceful = GracefulShutdown::new();
    let holds = super::hold::Holds::new(shutdown.clone(), count);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = super::accept(&listener) => accepted,
            _ = crate::stopped(&mut shutdown) => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "TLS connection refused: max_connections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The handshake runs in the connection's own task: a slow client
        // must not hold up the next accept.
        let shared = shared.clone();
        let (watcher, shutdown) = (graceful.watcher(), shutdown.clone());
        // Dropped with the connection's task, unless a tunnel keeps it.
        let conn_hold = holds.hold(Arc::new(idle::Activity::default()), permit);
        tokio::spawn(async move {
            connection(stream, peer, &shared, (watcher, shutdown), conn_hold).await;
        });
    }
    drop(listener);
    super::drain(graceful, holds).await;
}

/// One client: the handshake (bounded, and abandoned at shutdown), then
/// HTTP/1.1 or HTTP/2 until the connection ends or is drained.
async fn connection<H, F, B>(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Listener<H>,
    (watcher, mut shutdown): (Watcher, watch::Receiver<bool>),
    conn_hold: Arc<ConnectionHold>,
) where
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + PassedFields + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handshake = listener.acceptor.accept(stream);
    let tls = tokio::select! {
        tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake) => tls,
        _ = crate::stopped(&mut shutdown) => return,
    };
    let tls = match tls {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // From here as on the plaintext listener; the first head is due within
    // the header timeout of the handshake's end. HTTP/2 is told by its
    // preface, so h2 works whether or not the client used ALPN; ALPN tells
    // clients that h2 is on offer.
    let limits = &listener.limits;
    let io = idle::IdleIo::new(
        tls,
        conn_hold.activity().clone(),
        limits.header_read_timeout,
        limits.idle_timeout,
    );
    let conn = Arc::new(Conn::new(peer, true, conn_hold));
    h1::serve(io, conn, listener.service.clone(), shutdown, watcher).await;
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
