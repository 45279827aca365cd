//! The request path, top to bottom: load the config once → match a route →
//! policies → rewrite the request (`rewrite`) → pick a target and send it
//! through the upstream's pool (`send`: attempts, `retry`, the `breaker`,
//! in-flight and health accounting; pools in `client` and `pool`,
//! connections in `connector`, HTTP/1 ones driven by the request using
//! them: `lease`) → hand the response back, streaming both bodies (but a
//! small request body a retry may resend, read whole first by `replay`).
//! Before routing, the request is checked (`hygiene`) and its path
//! normalised once (`normalize`); every answer carries the request's
//! `X-Request-Id` (`request_id`). WebSocket upgrades are spliced by
//! `upgrade`. Bodies a policy rewrites are read whole by `buffered`.

pub mod body;
pub mod breaker;
pub mod buffered;
pub mod client;
pub mod connector;
pub mod h1;
pub mod headers;
pub mod hygiene;
pub mod lease;
pub mod normalize;
pub mod pool;
pub mod replay;
pub mod request_id;
pub mod retry;
pub mod rewrite;
pub mod send;
pub mod upgrade;

use std::borrow::Cow;
use std::convert::Infallible;
use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Full};
use tracing::Instrument;

use crate::compile::Compiled;
use crate::listener::{Conn, PassedFields, RequestBody};
use crate::observe::exchange::Exchange;
use crate::observe::spans;
use crate::policy::{self, RequestCtx, ResponseCtx};
use crate::proxy::body::Outbound;
use crate::router::RouteMatch;
use crate::{Error, Shared};

/// Bodies the proxy answers with: the upstream's, streamed, or its own.
pub type ProxyBody = Either<send::TrackedBody, Full<Bytes>>;

impl PassedFields for ProxyBody {
    fn passed(&self) -> Option<&h1::passed::Passed> {
        match self {
            Either::Left(b) => b.passed(),
            Either::Right(_) => None,
        }
    }
}

/// Entry point for every proxied request. Not an `async fn`: what needs
/// no waiting is done before the future is made, which then holds the
/// request once (an async fn keeps its arguments beside the copies its
/// body moves them into).
pub fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<RequestBody>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static {
    // One load of the config: the request sees exactly one version, even if
    // a new one is swapped in while it runs.
    let config = shared.config.load_full();
    let request_id = request_id::of(req.headers());
    let mut ex = Exchange::start(&req, conn.peer.ip(), shared.access_log.is_some());
    // Disabled (free) unless a filter or the OTLP export wants it.
    let span = spans::request(req.method(), &mut ex.trace);
    // Split here: the head stays in this future (`forward` borrows it),
    // and `forward`'s boxed future holds no copy of it.
    let (mut parts, body) = req.into_parts();
    async move {
        // Boxed: every wrapper (this future, the span, the connection's
        // in-flight tracking, the connection's) would otherwise copy all
        // of `forward`'s future when it moves: ~2,000 instructions a
        // request in memcpy (callgrind), against one allocation. Kept
        // under 1 KB (as `send`'s and the pool's, boxed in turn), which
        // glibc serves from its thread cache.
        let forwarded = Box::pin(forward(
            &shared,
            &config,
            &conn,
            (&mut parts, body),
            &request_id,
            &mut ex,
            &span,
        ))
        .instrument(span.clone())
        .await;
        let (mut resp, local) = match forwarded {
            Ok(resp) => (resp, false),
            Err(e) => (span.in_scope(|| error_response(&e, &request_id)), true),
        };
        spans::record_status(&span, resp.status());
        let status = resp.status().as_u16();
        if let Some(finish) = ex.finish(status, local, &config, &shared, &request_id)
            && let Either::Left(body) = resp.body_mut()
        {
            body.set_finish(finish);
        }
        // With the answer's fields passed as bytes, the id goes with them,
        // and the answer's map stays empty (unallocated).
        let mut request_id = Some(request_id);
        if let Either::Left(body) = resp.body_mut()
            && let Some(passed) = body.passed_mut()
        {
            passed.request_id = request_id.take();
        }
        if let Some(id) = request_id {
            resp.headers_mut()
                .insert(request_id::X_REQUEST_ID.clone(), id);
        }
        Ok(resp)
    }
}

async fn forward(
    shared: &Shared,
    config: &Compiled,
    conn: &Conn,
    (parts, body): (&mut Parts, RequestBody),
    request_id: &HeaderValue,
    ex: &mut Exchange,
    span: &tracing::Span,
) -> Result<Response<ProxyBody>, Error> {
    // The head is borrowed and worked on in place: a request rebuilt
    // around it, or moved into `send`, was another 260 bytes of future
    // that every move and box copies.
    // 1–2. Hygiene, then route (`check_and_route`).
    let (m, host) = check_and_route(config, parts)?;
    let route = &config.routes[m.route];
    let upstream = &config.upstreams[route.upstream];
    ex.route = Some(m.route);
    spans::record_route(span, &route.name);

    // 3. Policies: the access, limit and rewrite phases, on the request as
    //    the client sent it (normalised).
    // Only the proxy says who the consumer is. A pass over the few names
    // is cheaper than two removals, which hash both names every request.
    if parts
        .headers
        .keys()
        .any(|n| *n == policy::X_CONSUMER_ID || *n == policy::X_CONSUMER_USERNAME)
    {
        parts.headers.remove(policy::X_CONSUMER_ID);
        parts.headers.remove(policy::X_CONSUMER_USERNAME);
    }
    let policies = &config.policies;
    // The chain's future is boxed, and only made for a route with
    // policies: inline, its ~800 bytes were part of every request's
    // future (copied into its box), policies or not.
    let (consumer, policy_headers, body_limit) = if policies.has_request(m.route) {
        let mut pctx = RequestCtx {
            parts: &mut *parts,
            client_ip: conn.peer.ip(),
            route: &route.id_text,
            consumers: &config.consumers,
            consumer: None,
            response_headers: HeaderMap::new(),
            body_limit: None,
        };
        if let Err(mut r) = Box::pin(policies.run_request(m.route, &mut pctx)).await {
            r.headers.extend(std::mem::take(&mut pctx.response_headers));
            return Err(Error::Rejected(Box::new(r)));
        }
        // Boxed when there are any (rate-limit state): most routes add none.
        let answer_headers = pctx.response_headers;
        let answer_headers = (!answer_headers.is_empty()).then(|| Box::new(answer_headers));
        (pctx.consumer, answer_headers, pctx.body_limit)
    } else {
        (None, None, None)
    };
    if let Some(c) = &consumer {
        parts
            .headers
            .insert(policy::X_CONSUMER_ID, c.id_header.clone());
        parts
            .headers
            .insert(policy::X_CONSUMER_USERNAME, c.username_header.clone());
    }
    let request_headers = policies
        .has_response(m.route)
        .then(|| Box::new(parts.headers.clone()));
    let head = parts.method == Method::HEAD;
    let mut limits = shared.body_limits;
    if let Some(max) = body_limit {
        limits.max_bytes = Some(limits.max_bytes.map_or(max, |g| g.min(max)));
    }
    // Bodies stream, unless a policy of the route rewrites this one: then
    // it is read whole (bounded) and rewritten (`buffered`; boxed as the
    // chain is).
    let body = if policies.rewrites_request_body(m.route) {
        let (c, h) = (consumer.as_deref(), &mut parts.headers);
        let read = buffered::request(policies, m.route, c, h, body, limits, &route.stats);
        Box::pin(read).await?
    } else {
        Outbound::Stream(body)
    };
    if policies.rewrites_response_body(m.route) {
        // Compressed answers are passed on unchanged: ask for plain ones.
        parts.headers.remove(header::ACCEPT_ENCODING);
    }

    // 4. Rewrite (`rewrite`).
    let (mut to, client_upgrade) = rewrite::rewrite(parts, route, m, conn, host, request_id)?;
    // The answer's fields may go back to an HTTP/1 client as the bytes
    // they came in when nothing below reads or changes them but the
    // `X-Request-Id` set in `handle` (`h1::passed`).
    to.added.pass_fields = parts.version < http::Version::HTTP_2
        && client_upgrade.is_none()
        && policy_headers.is_none()
        && request_headers.is_none()
        && !policies.rewrites_response_body(m.route);

    // 5. Balance and send (with retries where allowed), each attempt
    //    bounded by the upstream's read timeout (connect included). The
    //    upstream's `traceparent` names the proxy's span as parent (the
    //    `upstream` span when exported over OTLP).
    body.check_declared(&limits)?;
    let upstream_span = spans::upstream(&upstream.name, &mut ex.trace);
    to.added.traceparent = Some(ex.trace);
    // Consistent hashing on the consumer hashes its id, so renaming a
    // consumer keeps its target.
    let consumer_key = consumer.as_ref().and_then(|c| c.id_header.to_str().ok());
    // Boxed, as `forward` is in `handle`: the attempts' future holds the
    // pool's, and wrapping it in the span copied it whole (600 instructions
    // a request in memcpy, against one allocation; callgrind).
    let send::Sent {
        response: resp,
        in_flight,
        admitted,
        target,
        upstream_time,
    } = {
        // In a block, so the result's storage is not kept in this future.
        let ip = conn.peer.ip();
        let sent = Box::pin(send::send(
            upstream,
            limits,
            &route.stats,
            ip,
            consumer_key,
            (&mut *parts, &to),
            body,
        ))
        .instrument(upstream_span.clone())
        .await;
        let outcome = match &sent {
            Ok(s) => Ok((&s.target, s.response.status())),
            Err(e) => Err(e),
        };
        spans::record_upstream(&upstream_span, outcome);
        sent?
    };
    drop(upstream_span);
    ex.target = Some(target);
    ex.upstream_time = Some(upstream_time);

    // 6. Respond, streaming the upstream's body.
    //    A response hyper parsed (HTTP/2) but framed ambiguously is
    //    refused, and its connection retired (its body dropped unread:
    //    never returned to the pool); HTTP/1 ones were checked as they were
    //    decoded. A 101 (only ever to a WebSocket request) starts the tunnel.
    let (mut parts, mut body) = resp.into_parts();
    let switched = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    let checked = match (switched, &client_upgrade) {
        (true, None) => Err(Error::UpstreamUpgrade("a 101 to a request with no upgrade")),
        _ if body.framing_checked() => Ok(()),
        _ => hygiene::check_response(&parts.headers),
    };
    checked?;
    if let (true, Some(client)) = (switched, client_upgrade) {
        let upstream = body
            .upgraded()
            .ok_or(Error::UpstreamUpgrade("a 101 over HTTP/2"))?;
        let resp = Response::from_parts(parts, body);
        // The tunnel is not an exchange in flight: least connections would
        // count it for hours.
        drop((in_flight, admitted));
        let resp = upgrade::switch(resp, client, upstream, Some(conn.hold.clone()))?;
        return Ok(resp.map(|b| Either::Left(send::TrackedBody::new(b, None, None))));
    }
    if !body.hop_by_hop_removed() {
        headers::strip_hop_by_hop(&mut parts.headers);
    }
    if let Some(request_headers) = &request_headers {
        let mut rctx = ResponseCtx {
            status: parts.status,
            headers: &mut parts.headers,
            request_headers,
        };
        config
            .policies
            .run_response(m.route, consumer.as_deref(), &mut rctx);
    }
    let whole = if policies.rewrites_response_body(m.route) {
        let (c, timeout) = (consumer.as_deref(), upstream.read_timeout);
        let read = buffered::response(policies, m.route, c, head, &mut parts, &mut body, timeout);
        Box::pin(read).await?
    } else {
        None
    };
    if let Some(h) = policy_headers {
        parts.headers.extend(*h);
    }
    let body = match whole {
        Some(whole) => send::TrackedBody::whole(whole, Some(in_flight), admitted),
        None => send::TrackedBody::new(body, Some(in_flight), admitted),
    };
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// Stages 1 and 2: checks the head (`hygiene`: what the parsers let through but
/// must not be forwarded, such as a missing, doubled or contradicted Host,
/// a coding other than chunked, a long target), normalises its path once
/// for routing, policies and the upstream, and routes it. Gives the host
/// it was routed on: the Host header (HTTP/1) or the authority (HTTP/2).
fn check_and_route(
    config: &Compiled,
    parts: &mut Parts,
) -> Result<(RouteMatch, Option<HeaderValue>), Error> {
    let host = hygiene::check(parts)?;
    if let Cow::Owned(path) = normalize::normalize(parts.uri.path())? {
        set_path(&mut parts.uri, &path)?;
    }
    let host_str = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
    let m = config
        .router
        .lookup(host_str, parts.uri.path(), &parts.method, &parts.headers)
        .ok_or(Error::NoRoute)?;
    Ok((m, host))
}

/// Replaces the request's path, keeping its query (and authority).
fn set_path(uri: &mut Uri, path: &str) -> Result<(), Error> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(pq).map_err(|_| Error::InvalidPath("not a valid URI path"))?);
    *uri = Uri::from_parts(parts).map_err(|_| Error::InvalidPath("not a valid URI"))?;
    Ok(())
}

/// The proxy's own answers: small JSON bodies naming the request id;
/// `Connection: close` when the request's framing cannot be trusted.
pub fn error_response(e: &Error, request_id: &HeaderValue) -> Response<ProxyBody> {
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!(error = %e, source = ?e.source(), request_id = ?request_id, "proxy error");
    } else {
        tracing::debug!(error = %e, request_id = ?request_id, "request refused");
    }
    let mut resp = if status == StatusCode::NO_CONTENT {
        // A policy's answer that has no content (a CORS preflight's 204).
        let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
        *resp.status_mut() = status;
        resp
    } else {
        json_response(
            status,
            &serde_json::json!({
                "message": e.to_string(),
                "request_id": request_id.to_str().unwrap_or_default(),
            }),
        )
    };
    if e.closes_connection() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Error::Rejected(r) = e {
        resp.headers_mut().extend(r.headers.clone());
    }
    resp
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
