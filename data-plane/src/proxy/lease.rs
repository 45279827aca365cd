//! An HTTP/1 upstream connection has no task of its own: the request using
//! it polls its I/O (hyper's connection future) in the request's task,
//! while waiting for the response head ([`H1Conn::exchange`]) and while the
//! response body is read ([`LeasedBody`]). nginx works the same way: the
//! client's and the upstream's sockets are served by whoever waits on them,
//! with no queue between two tasks. A spawned connection task cost two
//! cross-task wake-ups and two task polls per request (and its own memory
//! per connection).
//!
//! Waking: hyper's connection talks to its `SendRequest` and to the
//! response body through channels that wake whoever polled last. Here the
//! one task polls both ends one after the other, so the request's end of
//! those channels is polled with a no-op waker, and the connection with a
//! [`Relay`] that passes wake-ups on to the driving task: its sockets' and
//! the client's request body's. What the task's own reads cause (taking a
//! chunk from a full body channel wakes its sender, the connection) is
//! dropped: the task is running and drives the connection next anyway. A
//! spurious wake-up costs a whole poll of the client connection's task
//! (hyper's server dispatcher and everything under it); this one came with
//! every response. An idle connection's relay wakes no one, so reusing it
//! does not wake the previous request's task either.
//!
//! An idle connection in the pool is polled by no one: at checkout it is
//! polled once ([`H1Conn::usable`]), which notices a close from the
//! upstream (an EOF read) and readies it for the next request.
//!
//! The wait for a response head is bounded (the upstream's read timeout)
//! by one timer per connection that requests do not set and cancel each
//! (tokio's timer wheel sits behind a lock): it is set for a due time and
//! left running; when it fires before the current due time (the due time
//! moved on since), it is set again.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http1};
use tokio::time::{Instant, Sleep};

use crate::proxy::client::UpstreamBody;
use crate::proxy::pool::Pool;

/// hyper's connection future (an upgradeable one: a 101 hands its socket
/// over to the WebSocket tunnel), boxed once per connection: its type is
/// unnameable, and the pool moves connections in and out.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

thread_local! {
    /// Set while this thread reads what a connection it drives already put
    /// in a channel: the wake-ups that causes are its own, and dropped.
    /// Another thread's wake-ups (the sockets' readiness, found by the
    /// runtime's I/O driver anywhere) still pass.
    static READING_OWN: Cell<bool> = const { Cell::new(false) };
}

/// The waker a connection is polled with: wakes the task that drove it
/// last (one wake-up per drive, which registers again).
struct Relay(AtomicWaker);

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !READING_OWN.with(Cell::get) {
            self.0.wake();
        }
    }
}

/// One HTTP/1 connection to a target: the handle requests are sent on and
/// the I/O future that does the sending.
pub struct H1Conn {
    sender: http1::SendRequest<UpstreamBody>,
    driver: Driver,
    relay: Arc<Relay>,
    /// `relay` as a waker, made once.
    relay_waker: Waker,
    /// Fires at or before the current exchange's due time (made by the
    /// first exchange with one).
    timer: Option<Pin<Box<Sleep>>>,
    /// The I/O future has finished: the connection is closed (or handed
    /// over to an upgrade) and must not be polled again.
    ended: bool,
}

impl H1Conn {
    pub fn new(
        sender: http1::SendRequest<UpstreamBody>,
        driver: impl Future<Output = hyper::Result<()>> + Send + 'static,
    ) -> H1Conn {
        let relay = Arc::new(Relay(AtomicWaker::new()));
        H1Conn {
            sender,
            driver: Box::pin(driver),
            relay_waker: Waker::from(relay.clone()),
            relay,
            timer: None,
            ended: false,
        }
    }

    /// Lets the connection make progress: write what is queued, read what
    /// arrived. The waker of `cx` is the one its wake-ups go to.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if self.ended {
            return;
        }
        self.relay.0.register(cx.waker());
        let mut relayed = Context::from_waker(&self.relay_waker);
        if let Poll::Ready(result) = self.driver.as_mut().poll(&mut relayed) {
            self.ended = true;
            if let Err(e) = result {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        }
    }

    /// Whether an idle connection can take a request now: polled once
    /// (no-op waker: nobody waits on it yet), it has read any close from
    /// the upstream and told its sender it wants the next request.
    pub fn usable(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop()));
        !self.ended && self.sender.is_ready()
    }

    /// Whether the connection may go back to the pool.
    pub fn reusable(&self) -> bool {
        !self.ended && !self.sender.is_closed()
    }

    /// Into the pool: what happens to it there (a close) wakes no task.
    pub fn park(&self) {
        drop(self.relay.0.take());
    }

    /// Sends `req` and drives the connection until the response head (or
    /// the request back, unsent, when the connection closed first); `None`
    /// once `due` has passed without one.
    pub async fn exchange(
        &mut self,
        req: Request<UpstreamBody>,
        due: Option<Instant>,
    ) -> Option<Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>> {
        let mut sent = std::pin::pin!(self.sender.try_send_request(req));
        if let Some(due) = due {
            self.arm(due);
        }
        std::future::poll_fn(|cx| {
            self.drive(cx);
            // The answer only ever arrives while `drive` runs, just above.
            if let Poll::Ready(r) = sent.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return Poll::Ready(Some(r));
            }
            match due {
                Some(due) if self.expired(due) => Poll::Ready(None),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// Makes the timer fire at or before `due`: a new one, or moved earlier
    /// (a shorter read timeout than the last exchange's); a later due time
    /// leaves it as it is, `expired` catches up when it fires.
    fn arm(&mut self, due: Instant) {
        match &mut self.timer {
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(due))),
            Some(t) if t.deadline() > due => t.as_mut().reset(due),
            Some(_) => {}
        }
    }

    /// Whether `due` has passed. The timer wakes through the relay, so one
    /// that fires while the connection is idle in the pool wakes no one.
    fn expired(&mut self, due: Instant) -> bool {
        let Some(timer) = &mut self.timer else {
            return false;
        };
        let mut relayed = Context::from_waker(&self.relay_waker);
        while timer.as_mut().poll(&mut relayed).is_ready() {
            if Instant::now() >= due {
                return true;
            }
            // Early: set for an earlier exchange's due time.
            timer.as_mut().reset(due);
        }
        false
    }
}

/// An HTTP/1 connection lent to one exchange, going back to the pool once
/// the response body has been read to its end.
pub struct Lease {
    pub(crate) pool: Arc<Pool>,
    pub(crate) authority: Authority,
    /// The target's `Host`, to make its slot again if it was swept meanwhile.
    pub(crate) host: HeaderValue,
    pub(crate) conn: H1Conn,
}

impl Lease {
    fn release(self) {
        self.pool.checkin(self.authority, self.host, self.conn);
    }
}

/// The body of an upstream response. Over HTTP/1 it drives its
/// connection's I/O (reading it is what moves the bytes) and returns the
/// connection to the pool at its end; dropped before its end, or broken,
/// the connection is closed instead. Over HTTP/2 it is hyper's body as is.
pub struct LeasedBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl LeasedBody {
    pub fn new(body: Incoming, lease: Option<Lease>) -> LeasedBody {
        let mut leased = LeasedBody { body, lease };
        // No body at all (HEAD, 204, 304): nothing will read it.
        if leased.body.is_end_stream() {
            leased.release();
        }
        leased
    }

    fn release(&mut self) {
        if let Some(l) = self.lease.take() {
            l.release();
        }
    }

    /// The connection stops being this exchange's: an upgrade (a 101)
    /// completes only when hyper's connection future runs to its end, which
    /// hands the socket to the tunnel; that happens in a task of its own.
    pub fn detach(&mut self) {
        if let Some(l) = self.lease.take()
            && !l.conn.ended
        {
            let driver = l.conn.driver;
            tokio::spawn(async move {
                if let Err(e) = driver.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
        }
    }
}

/// One poll of a body the caller's own task fills (no-op waker, and the
/// wake-up of its sender dropped: see the module's header).
fn poll_filled(body: &mut Incoming) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
    /// Clears the flag however the poll ends.
    struct Own;
    impl Drop for Own {
        fn drop(&mut self) {
            READING_OWN.with(|r| r.set(false));
        }
    }
    READING_OWN.with(|r| r.set(true));
    let _own = Own;
    Pin::new(body).poll_frame(&mut Context::from_waker(Waker::noop()))
}

impl Body for LeasedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.lease {
            None => Pin::new(&mut this.body).poll_frame(cx),
            Some(lease) => {
                // What the connection already read, else read more.
                match poll_filled(&mut this.body) {
                    Poll::Pending => {
                        lease.conn.drive(cx);
                        poll_filled(&mut this.body)
                    }
                    ready => ready,
                }
            }
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // The end (a chunked body says so only here).
            Poll::Ready(None) => this.release(),
            // A broken body: its connection is not reused.
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
