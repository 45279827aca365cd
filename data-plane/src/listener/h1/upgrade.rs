//! A connection handed over with bytes already read from it: after a 101
//! (to the proxy's WebSocket tunnel, as [`Upgraded`] through the request's
//! [`OnUpgrade`]) and when the first bytes were an HTTP/2 preface (to
//! hyper's HTTP/2 server). Reads give those bytes first.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// A socket of any kind, boxed for the tunnel.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The client's connection after the 101 was written.
pub type Upgraded = Rewind<Box<dyn Io>>;

/// Put in the extensions of a request that may upgrade (`Upgrade`, or
/// CONNECT): resolves to the connection once a 101 to it is written, or
/// fails if the answer was anything else.
/// (Shared and locked only because extensions must be `Clone` and `Sync`;
/// taken once.)
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    pub(crate) fn new(rx: oneshot::Receiver<Upgraded>) -> OnUpgrade {
        OnUpgrade(Arc::new(Mutex::new(Some(rx))))
    }

    pub async fn get(self) -> Result<Upgraded, &'static str> {
        let rx = self.0.lock().ok().and_then(|mut rx| rx.take());
        match rx {
            Some(rx) => rx.await.map_err(|_| "the connection was not upgraded"),
            None => Err("the upgrade was taken already"),
        }
    }
}

/// `io`, whose reads give `early` first.
pub struct Rewind<I> {
    early: Bytes,
    io: I,
}

impl<I> Rewind<I> {
    pub fn new(io: I, early: Bytes) -> Rewind<I> {
        Rewind { early, io }
    }
}

impl<I> std::fmt::Debug for Rewind<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewind")
            .field("early", &self.early.len())
            .finish_non_exhaustive()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.early.has_remaining() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early[..n]);
            this.early.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn reads_give_the_early_bytes_first() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Rewind::new(a, Bytes::from_static(b"early "));
        b.write_all(b"late").await.unwrap();
        drop(b);
        let mut all = String::new();
        r.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "early late");
    }
}
