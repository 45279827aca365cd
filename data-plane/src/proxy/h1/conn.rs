//! One HTTP/1.1 connection to a target, driven by the request using it:
//! [`H1Conn::exchange`] writes the request (head, then the body in its
//! framing) while it reads the response head, and [`H1Conn::poll_body`]
//! reads the response body, both in the request's own task with its own
//! waker. No task, no channel and no wake-up between the two ends of the
//! exchange; one write buffer per connection, reused by every exchange on
//! it, and a read buffer lent while it reads (`h1::buffers`).
//!
//! A connection is reusable only when its last exchange ended cleanly: the
//! request written whole, the response read to its end, keep-alive on both
//! sides and nothing unread left over. Anything else (an early answer, a
//! broken body, a timeout, an upgrade) retires it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::{HeaderValue, Method, StatusCode};
use hyper::body::Body;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::buffers;
use super::chunked::Chunked;
use super::decode;
use super::encode::{self, Framing};
use super::names::Names;
use super::passed::Passed;
use crate::Error;
use crate::proxy::client::UpstreamBody;
use crate::proxy::headers::Added;

mod body;
pub mod drain;
mod send;

use send::Sending;

pub use super::io::Io;

/// How much room a read asks for at first: a typical response in one read.
const READ_SIZE: usize = buffers::READ_SIZE;
/// The most a read asks for: a large body streams in fewer, larger reads
/// (the room doubles each time a read fills it).
const READ_MAX: usize = 128 * 1024;

/// The response body still to read.
enum Reading {
    Done,
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes the connection.
    Close,
    /// A 101: what follows is another protocol's, the tunnel's to read
    /// (`into_upgraded`); never the end of an HTTP body.
    Upgraded,
}

pub struct H1Conn {
    /// The socket, boxed (see `h1::io`).
    io: Box<Io>,
    /// Read and not yet taken: the rest of a head, body bytes.
    buf: BytesMut,
    /// The room the next read asks for (`READ_SIZE` to `READ_MAX`).
    read_size: usize,
    /// The request's head and body chunks on their way out.
    out: Vec<u8>,
    /// Fires at or before the current exchange's due time (made by the
    /// first exchange with one; see `arm`).
    timer: Option<Pin<Box<Sleep>>>,
    body: Reading,
    /// The request, while not all of it is out: an answer may come before
    /// (an early 413, or an upstream streaming back what it reads), and the
    /// rest is still sent while that answer is read.
    /// Boxed: most requests (no body) are all out after their first
    /// write and never make one.
    sending: Option<Box<Sending>>,
    /// Whether the next exchange may use this connection, once `body` is
    /// done and the request all out.
    keep: bool,
    /// While a response head is awaited: whether the request was a `HEAD`
    /// (an abandoned exchange is finished with it: `drain`).
    awaiting: Option<bool>,
    /// The last response head's field names (`h1::names`).
    names: Names,
}

/// What an exchange came to.
pub enum Exchanged {
    /// The response head (its fields in the map, or passed as bytes when
    /// the request asked: `h1::passed`); its body is read with
    /// [`H1Conn::poll_body`].
    Head(http::response::Parts, Option<Box<Passed>>),
    /// Nothing was written: the connection had closed. The request (its
    /// body given back) can go on another connection, whatever its method.
    Unsent(UpstreamBody),
}

/// A request's head on its way out: borrowed, so an attempt that fails
/// leaves it whole for the next.
pub struct Outgoing<'a> {
    pub parts: &'a http::request::Parts,
    /// Written after the fields of `parts`.
    pub added: &'a Added,
    /// The target in origin form (`/a?b`).
    pub path: &'a str,
    /// The target's `Host`: in place of the request's, or where it has
    /// none, as `added.host_from` says.
    pub host: Option<&'a HeaderValue>,
}

impl H1Conn {
    pub fn new(io: Box<Io>) -> H1Conn {
        H1Conn {
            io,
            buf: BytesMut::new(),
            read_size: READ_SIZE,
            out: Vec::new(),
            timer: None,
            body: Reading::Done,
            sending: None,
            keep: true,
            awaiting: None,
            names: Names::default(),
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on it
    /// while it was idle (a close, or bytes nobody asked for).
    pub fn usable(&mut self) -> bool {
        if !self.reusable() {
            return false;
        }
        // Into a byte on the stack, not a lent buffer: anything that
        // arrives makes the connection unusable anyway.
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        match Pin::new(&mut *self.io).poll_read(&mut cx, &mut probe) {
            Poll::Pending => true,
            _ => {
                self.keep = false;
                false
            }
        }
    }

    /// Whether the connection may go back to the pool.
    pub fn reusable(&self) -> bool {
        self.keep
            && matches!(self.body, Reading::Done)
            && self.sending.is_none()
            && self.buf.is_empty()
    }

    /// Sends the request (`head`, then `body`) and reads until the response
    /// head; [`Error::UpstreamTimeout`] once `due` has passed without one.
    /// Informational answers (100, 103) are skipped; a 101 is returned and
    /// ends the connection's HTTP life ([`H1Conn::into_upgraded`]).
    pub async fn exchange(
        &mut self,
        head: Outgoing<'_>,
        body: UpstreamBody,
        due: Option<Instant>,
    ) -> Result<Exchanged, Error> {
        let framing = Framing::of(body.is_end_stream(), body.size_hint().exact());
        self.out.clear();
        let (parts, added) = (head.parts, head.added);
        encode::request_head(&mut self.out, (parts, added), head.path, head.host, framing);
        // Not yet reusable: only a clean end of this exchange makes it so.
        self.keep = false;
        // The first write tells whether the connection still stands. One
        // that fails before a byte went out leaves the request unsent.
        let Some((written, all_out)) = self.first_write(framing) else {
            return Ok(Exchanged::Unsent(body));
        };
        self.sending = (!all_out).then(|| Box::new(Sending::new(body, framing, written)));
        if let Some(due) = due {
            self.arm(due);
        }
        let head_request = head.parts.method == Method::HEAD;
        self.awaiting = Some(head_request);
        let pass = head.added.pass_fields;
        std::future::poll_fn(|cx| self.poll_exchange(cx, (head_request, pass), due)).await
    }

    fn poll_exchange(
        &mut self,
        cx: &mut Context<'_>,
        (head_request, pass): (bool, bool),
        due: Option<Instant>,
    ) -> Poll<Result<Exchanged, Error>> {
        // A failed write: the client's body at fault is answered at once;
        // an upstream that stopped reading may have answered already (an
        // early 413 before it closed), which is the better answer.
        let mut failed = None;
        if let Err(e) = self.send_some(cx) {
            self.sending = None;
            self.keep = false;
            match e {
                Error::UpstreamIo(_) => failed = Some(e),
                e => return Poll::Ready(Err(e)),
            }
        }
        loop {
            match decode::response_head(&mut self.buf, head_request, &mut self.names, pass) {
                Err(e) => return Poll::Ready(Err(Error::UpstreamInvalid(e))),
                Ok(Some(head))
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS => {}
                Ok(Some(head)) => {
                    self.awaiting = None;
                    self.keep = head.keep_alive;
                    self.body = match head.framing {
                        _ if head.status == StatusCode::SWITCHING_PROTOCOLS => Reading::Upgraded,
                        decode::Framing::Empty | decode::Framing::Length(0) => Reading::Done,
                        decode::Framing::Length(n) => Reading::Length(n),
                        decode::Framing::Chunked => Reading::Chunked(Chunked::new()),
                        decode::Framing::Close => Reading::Close,
                    };
                    let mut parts = http::Response::new(()).into_parts().0;
                    // Answered as HTTP/1.1 whatever the upstream spoke
                    // (hyper writes the status line with this version).
                    parts.status = head.status;
                    parts.headers = head.headers;
                    return Poll::Ready(Ok(Exchanged::Head(parts, head.passed)));
                }
                Ok(None) => match self.poll_read(cx) {
                    Poll::Ready(Ok(0)) => {
                        let e = failed.unwrap_or(Error::UpstreamClosed);
                        return Poll::Ready(Err(e));
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(failed.unwrap_or(io_error(e)))),
                    Poll::Pending if failed.is_some() => {
                        return Poll::Ready(Err(failed.unwrap_or(Error::UpstreamTimeout)));
                    }
                    Poll::Pending => break,
                },
            }
        }
        match due {
            Some(due) if self.expired(cx, due) => Poll::Ready(Err(Error::UpstreamTimeout)),
            _ => Poll::Pending,
        }
    }

    /// The socket after a 101, and what the upstream sent after the 101's
    /// head (the tunnel's first bytes).
    pub fn into_upgraded(self) -> (Box<Io>, BytesMut) {
        (self.io, self.buf)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // A buffer lent when the connection has none (`h1::buffers`).
        buffers::ready(&mut self.buf, self.read_size);
        let room = self.buf.capacity() - self.buf.len();
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.buf);
        match read {
            Poll::Ready(Ok(n)) if n == room => {
                self.read_size = (self.read_size * 2).min(READ_MAX);
            }
            // Waiting (or idle in the pool): an empty buffer goes back.
            Poll::Pending => buffers::give_back(&mut self.buf),
            _ => {}
        }
        read
    }

    /// Into the pool: a buffer a large body grew is given back (an idle
    /// connection keeps at most a typical response's room).
    pub fn park(&mut self) {
        if self.buf.capacity() > 2 * READ_SIZE {
            self.buf = BytesMut::new();
        }
        self.read_size = READ_SIZE;
        if self.out.capacity() > 2 * READ_SIZE {
            self.out = Vec::new();
        }
    }

    /// Makes the timer fire at or before `due`: a new one, or moved earlier
    /// (a shorter read timeout than the last exchange's); a later due time
    /// leaves it as it is, `expired` catches up when it fires. Requests do
    /// not set and cancel a timer each: tokio's timer wheel is behind a
    /// lock.
    fn arm(&mut self, due: Instant) {
        match &mut self.timer {
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(due))),
            Some(t) if t.deadline() > due => t.as_mut().reset(due),
            Some(_) => {}
        }
    }

    /// Whether `due` has passed; the timer is left set to wake `cx` by it.
    fn expired(&mut self, cx: &mut Context<'_>, due: Instant) -> bool {
        let Some(timer) = &mut self.timer else {
            return false;
        };
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= due {
                return true;
            }
            // Early: set for an earlier exchange's due time.
            timer.as_mut().reset(due);
        }
        false
    }
}

/// A failed read or write: the write timeout (504), else the connection
/// failing (502).
fn io_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut => Error::UpstreamTimeout,
        _ => Error::UpstreamIo(e),
    }
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("buffered", &self.buf.len())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}
