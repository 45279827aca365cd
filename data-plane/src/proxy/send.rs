//! The upstream call: keep what a retry would resend when the request may
//! be retried (`replay`: its head, and a body of at most
//! `replay::REPLAY_MAX` read whole first), pick a target, send, and on a
//! failure before any response try another target when `retry` allows it.
//! Each attempt is counted in flight on its target until the response body
//! ends, timed for the latency balancer, and reported to passive health
//! checks.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http::uri::PathAndQuery;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, SizeHint};
use turnpike_model::upstream::balancing::MAX_RETRIES;

use crate::Error;
use crate::balancer::PickContext;
use crate::balancer::state::InFlight;
use crate::compile::CompiledUpstream;
use crate::health::passive::Outcome;
use crate::observe::exchange::Finish;
use crate::observe::stats::RouteStats;
use crate::proxy::body::{BodyLimits, ClientBody, Outbound};
use crate::proxy::breaker::Admitted;
use crate::proxy::client;
use crate::proxy::h1::passed::Passed;
use crate::proxy::headers::Added;
use crate::proxy::lease::LeasedBody;
use crate::proxy::replay::{self, Replay};
use crate::proxy::retry;

/// A response from a target; an HTTP/1 one's body holds its connection
/// until it ends (dropping it unread retires the connection: an unusable
/// response).
pub struct Sent {
    pub response: Response<LeasedBody>,
    pub in_flight: InFlight,
    /// The circuit breaker's count of this request, if the upstream has one.
    pub admitted: Option<Admitted>,
    /// The target that answered, and how long until its response head.
    pub target: http::uri::Authority,
    pub upstream_time: std::time::Duration,
}

/// What the rewrite stage made of a request beyond its head: the target
/// in origin form, and the fields the proxy adds beside the head's map.
#[derive(Debug)]
pub struct Rewritten {
    pub path_and_query: PathAndQuery,
    pub added: Added,
}

/// Sends the request (`parts` and `body`; URI still origin-form,
/// `to.path_and_query` is what goes upstream, with `to.added`) to one of
/// the upstream's targets. The head is borrowed: owned here, it was a copy
/// in this future beside the caller's.
pub async fn send(
    upstream: &CompiledUpstream,
    limits: BodyLimits,
    stats: &Arc<RouteStats>,
    client_ip: IpAddr,
    consumer: Option<&str>,
    (parts, to): (&mut Parts, &Rewritten),
    body: Outbound,
) -> Result<Sent, Error> {
    let Rewritten {
        path_and_query,
        added,
    } = to;
    let resendable = upstream.retries > 0 && retry::idempotent(&parts.method);
    // What a retry resends, kept only for requests that may be retried. A
    // request without a body goes out as one (the client's empty body is
    // dropped) and is resent as it is, with nothing read or awaited. A body
    // small enough is read whole first (`replay`), before the circuit
    // breaker counts the request: a slow client holds no breaker slot
    // while nothing has reached the upstream yet. Other bodies stream.
    let (body, replay) = if body.is_end_stream() {
        (client::empty(), resendable.then(|| Replay::new(None)))
    } else if resendable && replay::may_keep(&parts.headers, &body) {
        // Boxed: inline, its ~460 bytes were part of every request's
        // `send` future (copied into its box), bodies or not.
        let keep = replay::keep(&mut parts.headers, body, limits, stats);
        let (body, kept) = Box::pin(keep).await?;
        (body, kept.map(|b| Replay::new(Some(b))))
    } else {
        let body = match body {
            Outbound::Stream(b) => client::streamed(ClientBody::new(b, limits, stats.clone())),
            Outbound::Whole(b) => client::whole(b),
        };
        (body, None)
    };
    // Circuit breaker: over either cap, 503 at once. Pending covers the
    // whole wait for a response head, retries included.
    let (admitted, pending) = match upstream.breaker {
        None => (None, None),
        Some(cb) => {
            let admitted = upstream
                .load
                .admit(cb.max_requests)
                .ok_or_else(|| Error::CircuitOpen(upstream.name.clone(), "requests"))?;
            let pending = upstream
                .load
                .wait(cb.max_pending)
                .ok_or_else(|| Error::CircuitOpen(upstream.name.clone(), "pending requests"))?;
            (Some(admitted), Some(pending))
        }
    };
    // The head is only borrowed by each attempt: a retry sends it again
    // as it is, with the kept body.
    let mut first = Some(body);
    upstream.budget.deposit();

    let mut tried = [0usize; MAX_RETRIES as usize + 1];
    let mut attempts = 0;
    // The failure of the previous attempt: what the client gets when no
    // untried target is left for a retry.
    let mut last: Option<Error> = None;
    loop {
        // In a block: a borrowed local would be kept across the await below.
        let picked = {
            let ctx = PickContext {
                headers: &parts.headers,
                added: Some(added),
                client_ip,
                consumer,
            };
            upstream.balancer.pick(&ctx, &tried[..attempts])
        };
        let Some(i) = picked else {
            return Err(match last {
                Some(e) => e,
                None => Error::NoTarget(upstream.name.clone()),
            });
        };
        tried[attempts] = i;
        attempts += 1;
        // The upstream span is at DEBUG: with a coarser filter (the
        // default) it is disabled, and asking the subscriber for the
        // current span cost ~60 instructions a request for nothing.
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            tracing::Span::current().record("attempts", attempts);
        }
        let target = &upstream.balancer.targets()[i];

        let body = match (first.take(), &replay) {
            (Some(body), _) => body,
            (None, Some(r)) => r.body(),
            // Retries are only decided when `replay` is set.
            (None, None) => {
                return Err(Error::BadUpstreamRequest(
                    "a retry without a resendable request".into(),
                ));
            }
        };
        let in_flight = target.state.start();
        // Two clock reads an attempt: its start (which also sets its due
        // time) and its end (which also dates the latency sample).
        let started = Instant::now();
        let to = (&upstream.scheme, &target.authority);
        let due = Some(tokio::time::Instant::from_std(
            started + upstream.read_timeout,
        ));
        // Boxed: glibc serves blocks up to 1 KB from its thread cache and
        // larger ones on a slow path (~400 instructions a malloc and free,
        // callgrind); inline, this future took this one and `forward`'s
        // (both boxed) past it.
        let exchange = upstream
            .client
            .send_parts(to, (parts, added), path_and_query, body, due);
        let result = Box::pin(exchange).await;
        match result {
            Ok(response) => {
                let ended = Instant::now();
                let upstream_time = ended.saturating_duration_since(started);
                target.state.observe_latency(upstream_time, ended);
                if let Some(p) = &upstream.passive {
                    let outcome = if response.status().is_server_error() {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    p.report(&target.state, outcome);
                }
                drop(pending);
                return Ok(Sent {
                    response,
                    in_flight,
                    admitted,
                    target: target.authority.clone(),
                    upstream_time,
                });
            }
            // A timeout (504) is never retried: the request may have
            // reached the target (`retry::before_response`).
            Err(e) => {
                fail(upstream, target);
                let again = attempts <= upstream.retries as usize
                    && replay.is_some()
                    && retry::before_response(&e)
                    && upstream.budget.withdraw();
                if !again {
                    return Err(e);
                }
                tracing::debug!(
                    upstream = %upstream.name,
                    target = %target.authority,
                    error = %e,
                    "retrying on another target"
                );
                last = Some(e);
            }
        }
    }
}

fn fail(upstream: &CompiledUpstream, target: &crate::balancer::CompiledTarget) {
    target
        .state
        .failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(p) = &upstream.passive {
        p.report(&target.state, Outcome::Failure);
    }
}

/// The response body of a target, holding the attempt in flight on its
/// target until the body ends or is dropped (least connections counts
/// whole exchanges, not just until the head). Streamed (its connection
/// returned to the pool at its end: `lease`), or read whole and rewritten
/// by a policy (`proxy::buffered`).
pub struct TrackedBody {
    inner: Either<LeasedBody, Full<Bytes>>,
    _in_flight: Option<InFlight>,
    _admitted: Option<Admitted>,
    /// Records the exchange (duration, bytes, log line) when dropped.
    finish: Option<Finish>,
}

impl TrackedBody {
    pub fn new(
        inner: LeasedBody,
        in_flight: Option<InFlight>,
        admitted: Option<Admitted>,
    ) -> TrackedBody {
        TrackedBody {
            inner: Either::Left(inner),
            _in_flight: in_flight,
            _admitted: admitted,
            finish: None,
        }
    }

    /// A body read whole (and rewritten; its connection went back to the
    /// pool as the reading ended).
    pub fn whole(
        body: Bytes,
        in_flight: Option<InFlight>,
        admitted: Option<Admitted>,
    ) -> TrackedBody {
        TrackedBody {
            inner: Either::Right(Full::new(body)),
            _in_flight: in_flight,
            _admitted: admitted,
            finish: None,
        }
    }

    pub fn set_finish(&mut self, finish: Finish) {
        self.finish = Some(finish);
    }

    /// The upstream head's fields, if they were passed as bytes.
    pub fn passed(&self) -> Option<&Passed> {
        match &self.inner {
            Either::Left(b) => b.passed(),
            Either::Right(_) => None,
        }
    }

    pub fn passed_mut(&mut self) -> Option<&mut Passed> {
        match &mut self.inner {
            Either::Left(b) => b.passed_mut(),
            Either::Right(_) => None,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = match &mut self.inner {
            Either::Left(b) => Pin::new(b).poll_frame(cx),
            Either::Right(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let (Some(f), Some(data)) = (&mut self.finish, frame.data_ref())
        {
            f.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Either::Left(b) => b.is_end_stream(),
            Either::Right(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Either::Left(b) => b.size_hint(),
            Either::Right(b) => b.size_hint(),
        }
    }
}
