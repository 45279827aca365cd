//! The listener's limits and their defaults (docs/proxy.md, "Limits and
//! request hygiene"), applied to its connections (`Limits::service`), plus
//! the connection cap of the accept loop.
//!
//! What is enforced once configured here: more than `max_headers` headers
//! or a head larger than `max_header_bytes` → 431 and close (HTTP/1.1,
//! `h1::head`); the HTTP/2 stream, reset-flood and header-list limits →
//! stream or connection errors (hyper). The request-target limit (414) is
//! checked by the proxy, for both.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::h1;

/// Time a client gets to send a complete request head, from its first byte
/// (or from the accept, for the first request): the slowloris guard.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest request target (path and query, or the absolute URI) → 414.
pub const MAX_REQUEST_TARGET: usize = 8 * 1024;
/// Default cap on open connections per listener.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Written to a connection refused because the listener is full. Best
/// effort (one non-blocking write): a client that reads gets a reason.
const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Limits of one listener. Only `max_connections` is a flag
/// (`--max-connections`); the rest are fixed defaults, documented.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections; one more is answered 503 and closed at once.
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Request headers per HTTP/1.1 request (every line counts).
    pub max_headers: usize,
    /// Request line plus headers (HTTP/1.1), or the decoded header list
    /// (HTTP/2, `SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_bytes: usize,
    pub h2_max_concurrent_streams: u32,
    /// Streams a client may open and reset before the server accepts them
    /// (rapid reset, CVE-2023-44487) before a GOAWAY.
    pub h2_max_pending_accept_reset_streams: usize,
    /// Streams the server may reset because of the client's protocol errors
    /// before a GOAWAY (RUSTSEC-2024-0003).
    pub h2_max_local_error_reset_streams: usize,
    pub h2_stream_window: u32,
    pub h2_connection_window: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 100,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            h2_stream_window: 64 * 1024,
            h2_connection_window: 1024 * 1024,
        }
    }
}

impl Limits {
    /// What the listener serves connections with: `handler`, the HTTP/1
    /// head limits, and hyper's HTTP/2 server with these limits (for
    /// sockets wrapped in `idle::IdleIo`). Every HTTP/2 value is set
    /// explicitly, so a hyper upgrade that changes a default changes
    /// nothing here.
    pub fn service<H>(&self, handler: H) -> h1::Service<H> {
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(self.h2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(self.h2_max_local_error_reset_streams)
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .initial_stream_window_size(self.h2_stream_window)
            .initial_connection_window_size(self.h2_connection_window);
        h1::Service {
            handler,
            max_headers: self.max_headers,
            max_head_bytes: self.max_header_bytes,
            h2,
        }
    }
}

/// The accept loop's connection cap: one permit per open connection, taken
/// without waiting (a full listener refuses at once rather than letting
/// clients queue in the backlog), released when the connection ends.
#[derive(Debug, Clone)]
pub struct Admission(Arc<Semaphore>);

impl Admission {
    pub fn new(max_connections: usize) -> Admission {
        Admission(Arc::new(Semaphore::new(
            max_connections.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// A permit for `stream`, or `None` after a best-effort 503 when the
    /// listener is full; the caller then drops the stream.
    pub fn admit(&self, stream: &TcpStream) -> Option<OwnedSemaphorePermit> {
        match self.0.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let _ = stream.try_write(REFUSAL);
                tracing::debug!("connection refused: max_connections reached");
                None
            }
        }
    }

    /// Connections that could still be admitted.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admission_refuses_past_the_cap_and_frees_on_drop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let admission = Admission::new(1);
        let permit = admission.admit(&stream).expect("first is admitted");
        assert!(admission.admit(&stream).is_none(), "second is refused");
        drop(permit);
        assert_eq!(admission.available(), 1);
        assert!(admission.admit(&stream).is_some());
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let l = Limits::default();
        assert_eq!(l.max_headers, 100);
        assert_eq!(l.max_header_bytes, 65_536);
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
        assert_eq!(l.h2_max_concurrent_streams, 100);
        assert_eq!(MAX_REQUEST_TARGET, 8192);
        let service = l.service(());
        assert_eq!(service.max_head_bytes, 65_536);
    }
}
