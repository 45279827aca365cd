//! Per-connection deadlines: a request head must arrive within the header
//! timeout (10 s) of its first byte, and a connection with no request in
//! flight is closed after the idle timeout (60 s).
//!
//! Why two: one timer from the moment an HTTP/1.1 connection goes idle
//! (hyper's `header_read_timeout`) is the keep-alive timeout too (10 s
//! would close idle clients early, 60 s would let a slowloris hold a head
//! open for a minute); and hyper's HTTP/2 server has no idle timeout.
//!
//! How: [`IdleIo`] wraps the socket and checks a deadline whenever the server
//! polls it for reading; [`track`] counts the requests in flight (from the
//! handler's call until the response body is done or dropped) in the
//! connection's [`Activity`], so an open stream is never "idle". No lock:
//! an atomic counter per connection, and one timer per connection that a
//! request does not touch. A phase change only moves the connection's due
//! time; the timer (tokio's wheel sits behind a lock) is set at most
//! `tick` (the shorter timeout) ahead, and when it fires before the due
//! time it is set again. Every due time is at least a tick after it is
//! set, so the timer never fires late, and a busy connection re-arms it
//! once per tick instead of twice per request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Response, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::PassedFields;
use crate::proxy::h1::passed::Passed;

/// What the connection's requests tell its socket wrapper.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Requests ever started: a request begun and finished between two
    /// reads still moves the connection out of its head phase.
    started: AtomicUsize,
    /// Set by the first HTTP/2 request: from then on bytes with no stream
    /// (pings, settings) do not start a head deadline.
    h2: AtomicBool,
}

/// Held while a request is in flight.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl InFlight {
    /// Counts one more request in flight on the connection until dropped:
    /// an upgraded connection (`listener::hold`) is busy, never idle.
    pub fn hold(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `handler`'s future for one request with the request counted in
/// flight until its response body is finished or dropped.
/// `version` is the request's: call it before the handler takes the request.
pub fn track<F, B>(activity: &Arc<Activity>, version: Version, fut: F) -> Track<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    activity.in_flight.fetch_add(1, Ordering::AcqRel);
    activity.started.fetch_add(1, Ordering::AcqRel);
    if version == Version::HTTP_2 {
        activity.h2.store(true, Ordering::Relaxed);
    }
    Track {
        fut,
        guard: Some(InFlight(activity.clone())),
    }
}

pin_project_lite::pin_project! {
    /// [`track`]'s future: the handler's, polled in place. An async block
    /// awaiting it kept the handler's future twice (the captured one and
    /// the one awaited).
    pub struct Track<F> {
        #[pin]
        fut: F,
        guard: Option<InFlight>,
    }
}

impl<F, B> Future for Track<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<Tracked<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(resp) = ready!(this.fut.poll(cx));
        // Taken once: a finished future is not polled again.
        let guard = this.guard.take().expect("Track polled after it finished");
        Poll::Ready(Ok(resp.map(|body| Tracked {
            body,
            _guard: guard,
        })))
    }
}

/// A response body that keeps its request counted in flight.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    _guard: InFlight,
}

impl<B: PassedFields> PassedFields for Tracked<B> {
    fn passed(&self) -> Option<&Passed> {
        self.body.passed()
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head (deadline: header timeout).
    Head,
    /// A request in flight: no deadline here (the route's timeouts apply).
    Busy,
    /// Between requests (deadline: idle timeout).
    Idle,
}

/// The socket of one connection, with its head and idle deadlines.
#[derive(Debug)]
pub struct IdleIo<I> {
    io: I,
    activity: Arc<Activity>,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: Phase,
    /// `Activity::started` when last looked at.
    seen_started: usize,
    /// When the phase's timeout runs out.
    due: Instant,
    /// The shorter of the two timeouts: the farthest ahead the timer is set.
    tick: Duration,
    /// Fires at or before `due`.
    timer: Pin<Box<Sleep>>,
}

impl<I> IdleIo<I> {
    /// Starts in [`Phase::Head`]: the first request's head is due within
    /// the header timeout of the accept.
    pub fn new(io: I, activity: Arc<Activity>, header: Duration, idle: Duration) -> IdleIo<I> {
        let tick = header.min(idle);
        IdleIo {
            io,
            activity,
            header_timeout: header,
            idle_timeout: idle,
            phase: Phase::Head,
            seen_started: 0,
            due: Instant::now() + header,
            tick,
            timer: Box::pin(tokio::time::sleep(tick)),
        }
    }

    /// Moves between phases after a read (`got` = bytes arrived).
    fn update(&mut self, got: bool) {
        let busy = self.activity.in_flight.load(Ordering::Acquire) > 0;
        let started = self.activity.started.load(Ordering::Acquire);
        let served = std::mem::replace(&mut self.seen_started, started) != started;
        let next = match (self.phase, busy) {
            (_, true) => Phase::Busy,
            (Phase::Busy, false) => Phase::Idle,
            (_, false) if served => Phase::Idle,
            (Phase::Idle, false) if got && !self.activity.h2.load(Ordering::Relaxed) => Phase::Head,
            (phase, false) => phase,
        };
        // A request served since the last look restarts the idle clock even
        // when the phase reads the same.
        if next != self.phase || served {
            let timeout = match next {
                Phase::Head => Some(self.header_timeout),
                Phase::Idle => Some(self.idle_timeout),
                Phase::Busy => None,
            };
            if let Some(t) = timeout {
                self.due = Instant::now() + t;
            }
            self.phase = next;
        }
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.phase == Phase::Busy {
            return Poll::Pending;
        }
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let now = Instant::now();
            if now >= self.due {
                break;
            }
            // Early: the due time moved on since the timer was set.
            self.timer.as_mut().reset(self.due.min(now + self.tick));
        }
        let what = match self.phase {
            Phase::Head => "request head not received within the header timeout",
            _ => "connection idle past the idle timeout",
        };
        tracing::debug!(what, "closing connection");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.io).poll_read(cx, buf);
        let got = matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        this.update(got);
        if res.is_ready() {
            return res;
        }
        this.poll_deadline(cx)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleIo<I> {
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
#[path = "idle_tests.rs"]
mod tests;
