//! Whole bodies for the policies that rewrite them (policy/mod.rs,
//! "Bodies"). Called only on routes with such a policy; a body is read
//! whole only when one of their rewrites wants it, bounded by
//! `policy::body::BUFFER_MAX` (or the route's smaller body limit), then
//! rewritten in chain order and framed anew: `Content-Length` of the result,
//! no `Transfer-Encoding`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::Error;
use crate::listener::RequestBody;
use crate::observe::stats::RouteStats;
use crate::policy::body::{BUFFER_MAX, BodyError, is_encoded};
use crate::policy::{BodyRewrite, CompiledConsumer, CompiledPolicies};
use crate::proxy::body::{BodyLimits, ClientBody, Outbound};
use crate::proxy::lease::LeasedBody;

/// Rewrites the request body if a policy of the route wants it; `headers`
/// are the request's after the request phases.
pub async fn request(
    policies: &CompiledPolicies,
    route: usize,
    consumer: Option<&CompiledConsumer>,
    headers: &mut HeaderMap,
    body: RequestBody,
    limits: BodyLimits,
    stats: &Arc<RouteStats>,
) -> Result<Outbound, Error> {
    let rewrites = || policies.request_bodies(route, consumer);
    if body.is_end_stream() || !rewrites().any(|r| r.wants(headers)) {
        return Ok(Outbound::Stream(body));
    }
    if is_encoded(headers) {
        let coding = headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok());
        return Err(Error::EncodedBody(coding.unwrap_or("?").to_owned()));
    }
    let max = limits.max_bytes.map_or(BUFFER_MAX, |m| m.min(BUFFER_MAX));
    let limits = BodyLimits {
        max_bytes: Some(max),
        ..limits
    };
    limits.check_declared(&body)?;
    // `ClientBody` counts the bytes, enforces the limit and the stall timeout.
    let body = match read_whole(ClientBody::new(body, limits, stats.clone()), max).await {
        Ok(b) => b,
        Err(Read::Body(e)) => return Err(e),
        Err(Read::TooLarge) => return Err(Error::BodyTooLarge(max)),
    };
    let body =
        apply(rewrites(), headers, body).map_err(|e| Error::Rejected(Box::new(e.rejection())))?;
    frame(headers, body.len());
    // The body is read: an upstream must not wait for a go-ahead.
    headers.remove(EXPECT);
    Ok(Outbound::Whole(body))
}

/// What the response body becomes: `None` to stream it as it is, or the
/// rewritten body. `head` is whether the request was a `HEAD`; reading is
/// bounded by `timeout` (the upstream's read timeout).
pub async fn response(
    policies: &CompiledPolicies,
    route: usize,
    consumer: Option<&CompiledConsumer>,
    head: bool,
    parts: &mut http::response::Parts,
    body: &mut LeasedBody,
    timeout: Duration,
) -> Result<Option<Bytes>, Error> {
    let (status, headers) = (parts.status, &mut parts.headers);
    let bodiless = head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let rewrites = || policies.response_bodies(route, consumer);
    if bodiless
        || body.is_end_stream()
        || is_encoded(headers)
        || !rewrites().any(|r| r.wants(headers))
    {
        return Ok(None);
    }
    if body.size_hint().lower() > BUFFER_MAX {
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, read_whole(body, BUFFER_MAX))
        .await
        .map_err(|_| Error::UpstreamTimeout)?;
    let whole = match read {
        Ok(b) => b,
        Err(Read::TooLarge) => return Err(too_large()),
        Err(Read::Body(e)) => return Err(Error::ResponseBody(format!("broke off: {e}"))),
    };
    let whole = apply(rewrites(), headers, whole)
        .map_err(|e| Error::ResponseBody(format!("could not be rewritten: {e}")))?;
    frame(headers, whole.len());
    Ok(Some(whole))
}

fn too_large() -> Error {
    Error::ResponseBody(format!(
        "is larger than {BUFFER_MAX} bytes, the most a policy rewriting it reads"
    ))
}

/// Runs each rewrite that wants the body as the earlier ones left it.
fn apply<'a>(
    rewrites: impl Iterator<Item = &'a dyn BodyRewrite>,
    headers: &mut HeaderMap,
    mut body: Bytes,
) -> Result<Bytes, BodyError> {
    if body.is_empty() {
        return Ok(body);
    }
    for r in rewrites {
        if r.wants(headers)
            && let Some(new) = r.rewrite(headers, &body)?
        {
            body = Bytes::from(new);
        }
    }
    Ok(body)
}

/// The framing of a whole body: its length, no transfer coding (also for
/// the bodies `proxy::replay` keeps).
pub(crate) fn frame(headers: &mut HeaderMap, len: usize) {
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

enum Read<E> {
    TooLarge,
    Body(E),
}

/// Reads a body to its end (trailers dropped), refusing more than `max`
/// bytes.
async fn read_whole<B>(mut body: B, max: u64) -> Result<Bytes, Read<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let hint = body.size_hint().lower().min(max).min(BUFFER_MAX);
    let mut buf = Vec::with_capacity(hint as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Read::Body)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > max {
                return Err(Read::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}
