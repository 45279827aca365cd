//! An upstream response's body. Over HTTP/1 it holds the connection it
//! came on (a [`Lease`]) and reads from it in the request's own task
//! (`h1::conn`); at the body's end the connection goes back to the pool
//! if the exchange left it reusable. Broken, the body takes its connection
//! with it: closed, never returned; dropped before its end (the client went
//! away), the rest is read in a task when it is small (`h1::conn::drain`).
//! nginx works the same way: the client's and the upstream's sockets are
//! served by whoever waits on them, with no queue between two tasks.
//!
//! Over HTTP/2 it is hyper's body as is (the connection is multiplexed and
//! has its own task).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::Error;
use crate::proxy::h1::conn::drain::{DRAIN_MAX, DRAIN_TIME};
use crate::proxy::h1::conn::{H1Conn, Io};
use crate::proxy::h1::passed::Passed;
use crate::proxy::pool::{Pool, SlotKey};

/// An HTTP/1 connection lent to one exchange: three pointers, as the
/// response body that holds it is moved a few times on its way out.
pub struct Lease {
    pub(crate) pool: Arc<Pool>,
    /// The slot it goes back to (made again if it was swept meanwhile).
    pub(crate) key: Arc<SlotKey>,
    pub(crate) conn: Box<H1Conn>,
}

impl Lease {
    pub(crate) fn release(self) {
        self.pool.checkin(self.key, self.conn);
    }

    /// The exchange was abandoned (its client went away): finished in a
    /// task and the connection returned to the pool, if that is cheap
    /// (`h1::conn::drain`); else the connection is closed.
    pub(crate) fn drain(self) {
        if !self.conn.drainable() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut lease = self;
            let mut budget = DRAIN_MAX;
            let drained = std::future::poll_fn(|cx| lease.conn.poll_drain(cx, &mut budget));
            if let Ok(true) = tokio::time::timeout(DRAIN_TIME, drained).await {
                lease.release();
            }
        });
    }
}

/// A lease while its exchange awaits the response head: dropped there (the
/// request's future abandoned), its connection is drained, not closed.
pub(crate) struct Lent(pub(crate) Option<Lease>);

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            l.drain();
        }
    }
}

pub struct LeasedBody {
    inner: Inner,
    /// The head's fields as bytes, when they were passed (`h1::passed`).
    passed: Option<Box<Passed>>,
}

enum Inner {
    /// `None` once the body has ended (its connection returned) or broke.
    H1(Option<Lease>),
    H2(Incoming),
}

impl LeasedBody {
    /// A body read from its HTTP/1 connection; one with nothing to read
    /// (HEAD, 204, 304, a length of 0) returns the connection at once.
    /// `passed`: its head's fields, if the decoder kept them as bytes.
    pub fn h1(lease: Lease, passed: Option<Box<Passed>>) -> LeasedBody {
        let mut body = LeasedBody {
            inner: Inner::H1(Some(lease)),
            passed,
        };
        body.release_if_done();
        body
    }

    pub fn h2(body: Incoming) -> LeasedBody {
        LeasedBody {
            inner: Inner::H2(body),
            passed: None,
        }
    }

    fn release_if_done(&mut self) {
        if let Inner::H1(lease) = &mut self.inner
            && lease.as_ref().is_some_and(|l| l.conn.body_done())
            && let Some(l) = lease.take()
        {
            l.release();
        }
    }

    /// The head's fields as the bytes they came in, if they were passed:
    /// the response's map then holds none of them.
    pub fn passed(&self) -> Option<&Passed> {
        self.passed.as_deref()
    }

    pub fn passed_mut(&mut self) -> Option<&mut Passed> {
        self.passed.as_deref_mut()
    }

    /// Whether the head came from the HTTP/1 decoder, which refused
    /// ambiguous framing fields (`h1::decode`) before the proxy saw them.
    pub fn framing_checked(&self) -> bool {
        matches!(self.inner, Inner::H1(_))
    }

    /// Whether the head came from the HTTP/1 decoder, which left its
    /// hop-by-hop fields out of the map (all but a 101's: `h1::decode`).
    pub fn hop_by_hop_removed(&self) -> bool {
        matches!(self.inner, Inner::H1(_))
    }

    /// After a 101: the upstream's socket and the bytes it already sent
    /// past the 101's head, for the tunnel. The connection stops being the
    /// pool's.
    pub fn upgraded(&mut self) -> Option<(Box<Io>, BytesMut)> {
        match &mut self.inner {
            Inner::H1(lease) => lease.take().map(|l| l.conn.into_upgraded()),
            Inner::H2(_) => None,
        }
    }
}

/// A body dropped before its end: its connection is drained if cheap.
impl Drop for LeasedBody {
    fn drop(&mut self) {
        if let Inner::H1(lease) = &mut self.inner
            && let Some(l) = lease.take()
        {
            l.drain();
        }
    }
}

impl Body for LeasedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::H2(body) => {
                return Pin::new(body)
                    .poll_frame(cx)
                    .map_err(Error::UpstreamProtocol);
            }
            Inner::H1(None) => return Poll::Ready(None),
            Inner::H1(Some(lease)) => lease.conn.poll_body(cx),
        };
        match &polled {
            // A broken body: its connection is dropped (closed).
            Poll::Ready(Some(Err(_))) => this.inner = Inner::H1(None),
            Poll::Ready(_) => this.release_if_done(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::H1(lease) => lease.as_ref().is_none_or(|l| l.conn.body_done()),
            Inner::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::H1(None) => SizeHint::with_exact(0),
            Inner::H1(Some(l)) => match l.conn.body_left() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            Inner::H2(body) => body.size_hint(),
        }
    }
}
