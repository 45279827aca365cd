//! The client side of HTTP/1.x, on httparse rather than hyper's server,
//! one connection per task: read a head (`head`), hand the request to the
//! handler, feed its body if it did not come whole with the head (`feed`;
//! a small one the handler dropped unread is read past after the answer,
//! so the connection stays), write the answer (`respond`, a refused head's
//! too), and again while the connection is kept alive. A read buffer
//! lent while the connection reads and given back while it waits
//! (`proxy::h1::buffers`; hyper allocated 8 KB again for every request),
//! and no dispatcher between the socket and the handler's future, which
//! this task polls itself.
//!
//! Also here: a connection whose first bytes are the HTTP/2 preface goes
//! to hyper's HTTP/2 server (h2c with prior knowledge, or h2 over TLS),
//! and a 101 hands the socket to the request's `upgrade::OnUpgrade`.
//! While a request runs with nothing left to read of it, the socket is
//! still read: a client that closes drops its request, and a pipelined
//! next request waits in the buffer.

mod feed;
pub mod head;
pub mod respond;
mod stop;
mod trailers;
pub mod upgrade;

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use super::Conn;
use super::body::RequestBody;
use super::idle;
use crate::proxy::h1::buffers;
use crate::proxy::h1::chunked::Chunked;
use crate::proxy::h1::names::Names;
use feed::{Decode, Fed, Feed};
use head::{Framing, Head};
use respond::{Asked, PassedFields, Writer};
use stop::Stop;
use upgrade::{OnUpgrade, Rewind};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a listener serves its connections with.
pub struct Service<H> {
    pub handler: H,
    pub max_headers: usize,
    pub max_head_bytes: usize,
    /// For connections that start with the HTTP/2 preface.
    pub h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// Room for a read (`proxy::h1::buffers`: a buffer lent when the
/// connection has none).
pub(crate) fn reserve(buf: &mut BytesMut) {
    buffers::ready(buf, buffers::READ_SIZE);
}

/// The state one connection keeps across its requests.
struct Connection {
    buf: BytesMut,
    /// What is being written; `out[written..]` is still to go.
    out: Vec<u8>,
    written: usize,
    names: Names,
}

enum Next {
    Head(Head),
    H2,
    Close,
    Refuse(crate::Error),
}

enum Outcome {
    /// The answer is written; `close`: the connection ends now.
    Done { close: bool, switching: bool },
    /// The client left, or writing failed.
    Gone,
}

/// Serves one connection until it closes, fails, upgrades, or shutdown.
pub async fn serve<I, H, F, B>(
    mut io: I,
    conn: Arc<Conn>,
    service: Arc<Service<H>>,
    mut shutdown: watch::Receiver<bool>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + PassedFields + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut c = Connection {
        buf: BytesMut::new(),
        out: Vec::with_capacity(1024),
        written: 0,
        names: Names::default(),
    };
    // Has the listener begun to shut down? (An atomic load to ask.)
    let probe = shutdown.clone();
    let wait = pin!(crate::stopped(&mut shutdown));
    let mut stop = Stop::new(wait, &probe);
    let mut first = true;
    loop {
        let next = poll_fn(|cx| c.poll_head(cx, &mut io, first, &service, &mut stop)).await;
        first = false;
        let head = match next {
            Next::Head(head) => head,
            Next::Close => return close(&mut io).await,
            Next::Refuse(e) => {
                respond::refuse(&mut io, (&mut c.out, &mut c.written), &e).await;
                return close(&mut io).await;
            }
            Next::H2 => {
                let early = c.buf.split().freeze();
                return h2(Rewind::new(io, early), conn, service, watcher).await;
            }
        };
        let exchange = exchange(&mut io, &mut c, &conn, &service, head, &probe);
        match exchange.await {
            (
                Outcome::Done {
                    switching: true, ..
                },
                Some(upgrade),
            ) => {
                let early = c.buf.split().freeze();
                let _ = upgrade.send(Rewind::new(Box::new(io), early));
                return;
            }
            (
                Outcome::Done {
                    switching: true, ..
                },
                None,
            ) => return close(&mut io).await,
            (Outcome::Done { close: false, .. }, _) if !probe.has_changed().unwrap_or(true) => {}
            (Outcome::Done { .. }, _) => return close(&mut io).await,
            (Outcome::Gone, _) => return,
        }
    }
}

impl Connection {
    /// The next request head, or why there is none.
    fn poll_head<I: AsyncRead + Unpin, H, F: Future<Output = ()>>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut I,
        first: bool,
        service: &Service<H>,
        stop: &mut Stop<'_, F>,
    ) -> Poll<Next> {
        loop {
            let maybe_h2 = first && PREFACE.starts_with(&self.buf[..self.buf.len().min(24)]);
            if maybe_h2 && self.buf.len() >= PREFACE.len() {
                return Poll::Ready(Next::H2);
            }
            if !maybe_h2 {
                let (max_headers, max_bytes) = (service.max_headers, service.max_head_bytes);
                match head::parse(&mut self.buf, &mut self.names, max_headers, max_bytes) {
                    Ok(Some(head)) => return Poll::Ready(Next::Head(head)),
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Next::Refuse(e)),
                }
            }
            reserve(&mut self.buf);
            match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut self.buf) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Next::Close),
                Poll::Ready(Ok(_)) => {}
                // Waiting: the buffer, if empty, goes back for others to
                // use meanwhile; a shutdown closes the connection now.
                Poll::Pending => {
                    buffers::give_back(&mut self.buf);
                    return match stop.poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Next::Close),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

/// One request: the handler's future, the body fed to it, the answer
/// written; and the request's upgrade, for a 101.
async fn exchange<I, H, F, B>(
    io: &mut I,
    c: &mut Connection,
    conn: &Arc<Conn>,
    service: &Service<H>,
    head: Head,
    shutdown: &watch::Receiver<bool>,
) -> (Outcome, Option<oneshot::Sender<upgrade::Upgraded>>)
where
    I: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F,
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: Body<Data = Bytes> + PassedFields + Unpin,
{
    let Head {
        mut parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        trailers,
    } = head;
    let mut asked = Asked {
        head: parts.method == Method::HEAD,
        http10: parts.version == Version::HTTP_10,
        // After a CONNECT's answer the bytes are the tunnel's, or nobody's.
        close: !keep_alive || parts.method == Method::CONNECT,
        trailers,
    };
    let upgrade = upgrade.then(|| {
        let (tx, rx) = oneshot::channel();
        parts.extensions.insert(OnUpgrade::new(rx));
        tx
    });
    let (body, mut feed) = match framing {
        Framing::None => (RequestBody::empty(), None),
        Framing::Length(n) if c.buf.len() as u64 >= n => {
            let whole = c.buf.split_to(n as usize).freeze();
            (RequestBody::whole(whole), None)
        }
        Framing::Length(n) => {
            let (body, feeder) = RequestBody::fed(Some(n));
            let feed = Feed::new(feeder, Decode::Length(n), expect_continue);
            (body, Some(feed))
        }
        Framing::Chunked => {
            let (body, feeder) = RequestBody::fed(None);
            let feed = Feed::new(feeder, Decode::Chunked(Chunked::new()), expect_continue);
            (body, Some(feed))
        }
    };
    let mut complete = feed.is_none();
    let activity = conn.hold.activity();
    let version = parts.version;
    let request = Request::from_parts(parts, body);
    let mut fut = pin!(idle::track(
        activity,
        version,
        (service.handler)(conn.clone(), request)
    ));
    let mut writer: Option<(Writer<idle::Tracked<B>>, bool, bool)> = None;
    let mut watching = true;
    let mut dropped = None;
    let outcome = poll_fn(|cx| {
        if let Some(f) = &mut feed {
            // After the answer's head, a `100 Continue` would be out of turn.
            f.expect_continue &= writer.is_none();
        }
        if let Some(f) = &mut feed
            && let Poll::Ready(fed) = f.poll(cx, io, &mut c.buf, &mut c.out)
        {
            complete = fed == Fed::Complete;
            // A dropped body's rest may be read past after the answer.
            let f = feed.take();
            dropped = f.filter(|_| fed == Fed::Dropped);
        }
        loop {
            if let Some((w, close, switching)) = &mut writer {
                return match w.poll(cx, io, &mut c.out, &mut c.written) {
                    Poll::Ready(Ok(())) => Poll::Ready(Outcome::Done {
                        close: *close,
                        switching: *switching,
                    }),
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = ?e, "response not completed");
                        Poll::Ready(Outcome::Gone)
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            // A `100 Continue` is written before any answer's head.
            if !c.out.is_empty()
                && let Poll::Ready(Err(_)) = respond::flush(cx, io, &mut c.out, &mut c.written)
            {
                return Poll::Ready(Outcome::Gone);
            }
            let Poll::Ready(Ok(resp)) = fut.as_mut().poll(cx) else {
                if feed.is_none() && watching {
                    match watch_client(cx, io, &mut c.buf) {
                        Poll::Ready(true) => return Poll::Ready(Outcome::Gone),
                        Poll::Ready(false) => watching = false,
                        Poll::Pending => {}
                    }
                }
                return Poll::Pending;
            };
            let (parts, body) = resp.into_parts();
            let hint = body.size_hint().exact();
            // Shutting down: this answer is the connection's last.
            asked.close |= shutdown.has_changed().unwrap_or(true);
            let fields = (&parts, body.passed());
            let (framing, close) = respond::head(&mut c.out, fields, hint, asked);
            let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
            writer = Some((Writer::new(body, framing, asked), close, switching));
        }
    })
    .await;
    let feeding = feed.is_some();
    let rest = dropped.or(feed.filter(Feed::dropped));
    let outcome = match (outcome, rest) {
        // A body the handler let go of unread (an early refusal): read
        // past when small rather than closing on a client that did nothing
        // wrong (`Feed::read_past`).
        (
            Outcome::Done {
                close: false,
                switching: false,
            },
            Some(mut f),
        ) => Outcome::Done {
            close: !f.read_past(io, &mut c.buf).await,
            switching: false,
        },
        // A body not read to its end leaves the connection out of step.
        (Outcome::Done { switching, .. }, _) if !complete || feeding => Outcome::Done {
            close: true,
            switching,
        },
        (o, _) => o,
    };
    (outcome, upgrade)
}

/// Reads what the client sends while its request runs (with nothing of
/// its body left to read). `Ready(true)`: it closed, or the socket failed;
/// `Ready(false)`: the buffer is full (a pipelined request waits there),
/// stop watching.
fn watch_client<I: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    io: &mut I,
    buf: &mut BytesMut,
) -> Poll<bool> {
    loop {
        // Into the room there is: allocating here would make the buffer
        // anew while the request still holds the old one.
        if buf.capacity() == buf.len() {
            return Poll::Ready(false);
        }
        match std::task::ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)) {
            Ok(0) | Err(_) => return Poll::Ready(true),
            Ok(_) => {}
        }
    }
}

/// Ends the connection: a FIN (and TLS close_notify) after what was written.
async fn close<I: AsyncWrite + Unpin>(io: &mut I) {
    let _ = io.shutdown().await;
}

/// Serves the connection as HTTP/2 (hyper), watched for graceful shutdown.
async fn h2<I, H, F, B>(io: I, conn: Arc<Conn>, service: Arc<Service<H>>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + PassedFields + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let peer = conn.peer;
    let builder = service.h2.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let version = req.version();
        let req = req.map(RequestBody::h2);
        idle::track(
            conn.hold.activity(),
            version,
            (service.handler)(conn.clone(), req),
        )
    });
    let connection = builder.serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "HTTP/2 connection ended with an error");
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
