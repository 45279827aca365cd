//! What a retry resends (`proxy::send`, rule in `proxy::retry`): the
//! request's head, and its body kept in memory. A streamed body is gone
//! once sent, so an idempotent request with a body is only resendable when
//! it is read whole before the first attempt, as Envoy buffers up to a
//! per-request limit and nginx keeps the body for `proxy_next_upstream`:
//!
//! - Only for requests `send` may retry (`retries > 0`, idempotent method):
//!   other requests stream as before and pay nothing here.
//! - At most [`REPLAY_MAX`] bytes. A declared length over it is streamed
//!   without being read first. A body of unknown length (chunked, HTTP/2
//!   without `content-length`) is read up to the bound: whole, it is kept
//!   (and goes out with its `Content-Length`); past the bound, or when it
//!   carries trailers, the first attempt sends what was read, then streams
//!   the rest ([`Resumed`]), and is not retried.
//! - Never with an `Expect` header (`100-continue`, the only one defined):
//!   the client waits for the upstream's `100` before sending its body, so
//!   reading it here first would answer for the upstream. Streamed, not
//!   retried.
//! - Read through `body::ClientBody`, so the body limit (413) and the
//!   stall timeout (408) hold as they do for a streamed body, before any
//!   target is tried or the circuit breaker counts the request.
//! - A body a policy already read whole and rewrote (`Outbound::Whole`) is
//!   kept as it is (shared, not copied), under the same bound.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::EXPECT;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::Error;
use crate::observe::stats::RouteStats;
use crate::proxy::body::{BodyLimits, ClientBody, Outbound};
use crate::proxy::buffered;
use crate::proxy::client::{self, UpstreamBody};

/// The largest request body kept in memory for a retry: enough for the
/// JSON of a typical `PUT`, small enough that every request in flight
/// holding one costs little. Between nginx's `client_body_buffer_size`
/// (8–16 KiB) and Envoy's default buffer limit (1 MiB; 32 KiB in its edge
/// guide). Fixed: making it a setting would mean a field of the upstream.
pub const REPLAY_MAX: u64 = 64 * 1024;

/// The body a retry resends (the head stays with `send`'s attempts, which
/// only borrow it). Only made for requests that may be retried, so others
/// pay nothing.
pub struct Replay {
    /// `None`: the request has no body.
    body: Option<Bytes>,
}

impl Replay {
    pub fn new(body: Option<Bytes>) -> Replay {
        Replay { body }
    }

    /// The body again (shared, not copied).
    pub fn body(&self) -> UpstreamBody {
        match &self.body {
            Some(b) => client::whole(b.clone()),
            None => client::empty(),
        }
    }
}

/// Whether the body of a request that may be retried is worth reading to
/// keep: it may fit [`REPLAY_MAX`], and no `Expect` waits on the upstream.
/// Decided before anything is awaited.
pub fn may_keep(headers: &HeaderMap, body: &Outbound) -> bool {
    let len = match body {
        Outbound::Whole(b) => b.len() as u64,
        // The declared length, or 0 when unknown.
        Outbound::Stream(b) => b.size_hint().lower(),
    };
    len <= REPLAY_MAX && !headers.contains_key(EXPECT)
}

/// Reads a body [`may_keep`] allowed: the first attempt's body, and the
/// body a retry resends, or `None` when it turned out too large to keep
/// (the first attempt then sends it all, streamed after what was read).
/// A body of unknown length kept whole is given its `Content-Length`.
pub async fn keep(
    headers: &mut HeaderMap,
    body: Outbound,
    limits: BodyLimits,
    stats: &Arc<RouteStats>,
) -> Result<(UpstreamBody, Option<Bytes>), Error> {
    let body = match body {
        Outbound::Whole(b) => return Ok((client::whole(b.clone()), Some(b))),
        Outbound::Stream(b) => b,
    };
    let declared = body.size_hint().exact().is_some();
    match read(ClientBody::new(body, limits, stats.clone())).await? {
        Read::Whole(b) => {
            if !declared {
                buffered::frame(headers, b.len());
            }
            Ok((client::whole(b.clone()), Some(b)))
        }
        Read::Partial(resumed) => Ok((client::resumed(resumed), None)),
    }
}

enum Read<B> {
    Whole(Bytes),
    Partial(Resumed<B>),
}

/// Reads `body` to its end if it fits [`REPLAY_MAX`] and has no trailers;
/// otherwise stops at the frame that showed it does not, keeping every
/// frame read, in order, for [`Resumed`].
async fn read<B>(mut body: B) -> Result<Read<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut read = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(data) => {
                len += data.len() as u64;
                read.push(data);
                if len > REPLAY_MAX {
                    return Ok(Read::Partial(Resumed::new(read, None, body)));
                }
            }
            // Trailers end the body, but a whole body cannot resend them.
            Err(frame) => {
                let trailers = frame.into_trailers().ok();
                return Ok(Read::Partial(Resumed::new(read, trailers, body)));
            }
        }
    }
    Ok(Read::Whole(concat(read, len)))
}

/// The pieces as one: the only piece as it is (no copy), else copied once.
fn concat(mut pieces: Vec<Bytes>, len: u64) -> Bytes {
    if pieces.len() <= 1 {
        return pieces.pop().unwrap_or_default();
    }
    let mut whole = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
    for p in &pieces {
        whole.extend_from_slice(p);
    }
    whole.freeze()
}

/// A body read in part while deciding whether to keep it: what was read
/// (data, then trailers if they came), then the rest as the client sends
/// it. Boxed in `UpstreamBody`, so the bodies that never come here (all
/// but the few too large to keep) do not grow by its size.
pub struct Resumed<B = ClientBody> {
    read: std::vec::IntoIter<Bytes>,
    trailers: Option<HeaderMap>,
    rest: B,
}

impl<B> Resumed<B> {
    fn new(read: Vec<Bytes>, trailers: Option<HeaderMap>, rest: B) -> Resumed<B> {
        Resumed {
            read: read.into_iter(),
            trailers,
            rest,
        }
    }

    fn read_len(&self) -> u64 {
        self.read.as_slice().iter().map(|b| b.len() as u64).sum()
    }
}

impl<B> Body for Resumed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if let Some(data) = this.read.next() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = this.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.len() == 0 && self.trailers.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let (read, rest) = (self.read_len(), self.rest.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(read));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(read));
        }
        hint
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
