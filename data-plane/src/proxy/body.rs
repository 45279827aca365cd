//! The client's request body on its way upstream, with the data plane's
//! body limits: at most `max_body_bytes` (413; a `Content-Length` over it
//! is refused before anything is sent, a streamed body when it passes the
//! limit) and no stall longer than `body_read_timeout` between two pieces
//! of it (408: a slow POST cannot hold an upstream connection forever).
//! [`Outbound`] is the body as it goes upstream: the client's, streamed, or
//! one a policy rewrote, whole (`proxy::buffered`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::Error;
use crate::listener::RequestBody;
use crate::observe::stats::RouteStats;

/// Body limits of the proxy listeners (`--max-body-bytes`,
/// `--body-read-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `None`: no limit.
    pub max_bytes: Option<u64>,
    pub read_timeout: Duration,
}

/// nginx's `client_body_timeout`.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: None,
            read_timeout: BODY_READ_TIMEOUT,
        }
    }
}

impl BodyLimits {
    /// Refuses a declared length over the limit before the body is read.
    pub fn check_declared(&self, body: &RequestBody) -> Result<(), Error> {
        match (self.max_bytes, body.size_hint().exact()) {
            (Some(max), Some(len)) if len > max => Err(Error::BodyTooLarge(max)),
            _ => Ok(()),
        }
    }
}

/// The request body on its way upstream.
pub enum Outbound {
    /// The client's, streamed under the limits (`ClientBody`).
    Stream(RequestBody),
    /// Read whole and rewritten by a policy; already within the limits.
    Whole(Bytes),
}

impl Outbound {
    pub fn is_end_stream(&self) -> bool {
        match self {
            Outbound::Stream(b) => b.is_end_stream(),
            Outbound::Whole(b) => b.is_empty(),
        }
    }

    /// Refuses a declared length over the limit (a whole body was read
    /// within it already).
    pub fn check_declared(&self, limits: &BodyLimits) -> Result<(), Error> {
        match self {
            Outbound::Stream(b) => limits.check_declared(b),
            Outbound::Whole(_) => Ok(()),
        }
    }
}

pub struct ClientBody {
    inner: RequestBody,
    limits: BodyLimits,
    seen: u64,
    stalled: Option<Pin<Box<Sleep>>>,
    /// The route's stats, credited with the bytes read when the body goes.
    stats: Arc<RouteStats>,
}

impl ClientBody {
    pub fn new(inner: RequestBody, limits: BodyLimits, stats: Arc<RouteStats>) -> ClientBody {
        ClientBody {
            inner,
            limits,
            seen: 0,
            stalled: None,
            stats,
        }
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        self.stats.bytes_in.fetch_add(self.seen, Ordering::Relaxed);
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stalled = None;
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Some(max) = this.limits.max_bytes
                        && this.seen > max
                    {
                        return Poll::Ready(Some(Err(Error::BodyTooLarge(max))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::BodyRead(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // The timer exists only while the client keeps us waiting.
                let timeout = this.limits.read_timeout;
                let sleep = this
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Error::BodyTimeout(timeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
