//! The request on its way out: the head's first write (which tells a
//! closed pooled connection from a live one), then the body in its framing
//! as the body yields it, interleaved with the wait for the answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use hyper::body::Body;
use tokio::io::AsyncWrite;

use super::{H1Conn, Io, io_error};
use crate::Error;
use crate::proxy::client::UpstreamBody;
use crate::proxy::h1::encode::{self, Framing};

/// The request on its way out: what is left of the body, and its framing.
pub(super) struct Sending {
    body: UpstreamBody,
    framing: Framing,
    /// Bytes of `out` already written.
    written: usize,
    /// A large data frame, written from where it is after `out` (copied
    /// into `out`, an 8 MB body would have grown it to 8 MB).
    data: Bytes,
    /// A chunk's CRLF is due after `data`.
    crlf: bool,
    /// The body has given its last frame (the last chunk is in `out`).
    ended: bool,
}

impl Sending {
    pub(super) fn new(body: UpstreamBody, framing: Framing, written: usize) -> Sending {
        Sending {
            body,
            framing,
            written,
            data: Bytes::new(),
            crlf: false,
            ended: framing == Framing::Empty,
        }
    }
}

/// Data frames up to this size are copied behind their chunk's size line
/// (one write); larger ones are written from their own buffer.
const COPY_MAX: usize = 4 * 1024;

impl H1Conn {
    /// Writes what goes at once of the head (a no-op waker: the exchange's
    /// own polls take over). `None` when the connection turned out closed
    /// before a byte went out; else the bytes written, and whether that was
    /// the whole request.
    pub(super) fn first_write(&mut self, framing: Framing) -> Option<(usize, bool)> {
        let mut cx = Context::from_waker(Waker::noop());
        let written = match Pin::new(&mut *self.io).poll_write(&mut cx, &self.out) {
            Poll::Ready(Ok(n)) if n > 0 => n,
            Poll::Pending => 0,
            Poll::Ready(Ok(_)) | Poll::Ready(Err(_)) => return None,
        };
        let all_out = framing == Framing::Empty
            && written == self.out.len()
            && Pin::new(&mut *self.io).poll_flush(&mut cx).is_ready();
        Some((written, all_out))
    }

    /// Writes what it can of the request (all of it is out once `sending`
    /// is gone); an error only when that failed.
    pub(super) fn send_some(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(s) = &mut self.sending else {
            return Ok(());
        };
        loop {
            if s.written < self.out.len() {
                let n = write(&mut self.io, cx, &self.out[s.written..])?;
                if n == 0 {
                    return Ok(());
                }
                s.written += n;
                continue;
            }
            if !s.data.is_empty() {
                let n = write(&mut self.io, cx, &s.data)?;
                if n == 0 {
                    return Ok(());
                }
                s.data.advance(n);
                continue;
            }
            self.out.clear();
            s.written = 0;
            if std::mem::take(&mut s.crlf) {
                self.out.extend_from_slice(encode::CHUNK_END);
                continue;
            }
            if s.ended {
                // TLS may hold the last record until flushed.
                return match Pin::new(&mut *self.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        // All out: the body (the client's, with its
                        // stats) goes now, not with the response.
                        self.sending = None;
                        Ok(())
                    }
                    Poll::Ready(Err(e)) => Err(io_error(e)),
                    Poll::Pending => Ok(()),
                };
            }
            match Pin::new(&mut s.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => {
                        let chunked = s.framing == Framing::Chunked;
                        if chunked {
                            encode::chunk_size(&mut self.out, data.len());
                        }
                        if data.len() <= COPY_MAX {
                            self.out.extend_from_slice(&data);
                            if chunked {
                                self.out.extend_from_slice(encode::CHUNK_END);
                            }
                        } else {
                            s.data = data;
                            s.crlf = chunked;
                        }
                    }
                    // Trailers are not forwarded: fields after the body
                    // (a Host, an Authorization) must not slip past the
                    // checks the head went through.
                    Err(_trailers) => {}
                },
                Poll::Ready(None) => {
                    if s.framing == Framing::Chunked {
                        self.out.extend_from_slice(encode::LAST_CHUNK);
                    }
                    s.ended = true;
                }
                Poll::Ready(Some(Err(e))) => return Err(body_error(e)),
                Poll::Pending => return Ok(()),
            }
        }
    }
}

/// One write: the bytes taken, 0 when the socket has no room now (its
/// readiness wakes `cx`).
fn write(io: &mut Io, cx: &mut Context<'_>, bytes: &[u8]) -> Result<usize, Error> {
    match Pin::new(io).poll_write(cx, bytes) {
        Poll::Ready(Ok(0)) => Err(io_error(io::ErrorKind::WriteZero.into())),
        Poll::Ready(Ok(n)) => Ok(n),
        Poll::Ready(Err(e)) => Err(io_error(e)),
        Poll::Pending => Ok(0),
    }
}

/// The client's body failing on its way up: its own errors (`ClientBody`:
/// too large, stalled, broken) as they are.
fn body_error(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    match e.downcast::<Error>() {
        Ok(e) => *e,
        Err(e) => Error::BadUpstreamRequest(e.to_string()),
    }
}
