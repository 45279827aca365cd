//! The socket an HTTP/1 upstream connection owns: plain TCP, read and
//! written through tokio directly, or TLS through hyper-rustls's stream.
//!
//! Why not hyper-rustls's `MaybeHttpsStream` for both, as the connector
//! hands it over: it speaks hyper's I/O traits, so every read and write of
//! a plain connection would go tokio → hyper → tokio through adapters (a
//! few hundred instructions a request, callgrind). TLS keeps them: its
//! record layer costs far more than they do.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::proxy::connector::WriteTimeout;

/// What the connector makes: TCP with the write deadline, maybe TLS.
pub type Connected = MaybeHttpsStream<TokioIo<WriteTimeout<TcpStream>>>;

/// Kept boxed by its connection (`Box<Io>`): even a plain socket (~70
/// bytes) inline made each move of a connection (into the pool, out of
/// it, with its response) a `memcpy` call, ~700 instructions a request in
/// all (callgrind). A TLS stream (over a kilobyte) is boxed again inside,
/// so that a plain connection's box stays small.
pub enum Io {
    Plain(WriteTimeout<TcpStream>),
    Tls(Box<TokioIo<Connected>>),
}

impl Io {
    pub fn new(connected: Connected) -> Box<Io> {
        Box::new(match connected {
            MaybeHttpsStream::Http(tcp) => Io::Plain(tcp.into_inner()),
            tls @ MaybeHttpsStream::Https(_) => Io::Tls(Box::new(TokioIo::new(tls))),
        })
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
