//! Parses a client's HTTP/1.x request head with httparse into the
//! request's parts, plus what the connection must know: the body's framing,
//! whether it may be kept alive, `Expect: 100-continue`, an upgrade.
//!
//! Refused here, with the status to answer and the connection closed (the
//! rules hyper's server applied, which `tests/tests/malformed` pins down):
//! a malformed request line, field name or value (NUL, bare CR, DEL, a
//! space before the colon, obs-fold), an HTTP version other than 1.0 and
//! 1.1 → 400; more fields than the limit, or a head longer than
//! it → 431; `Content-Length` that is not digits only, or two that
//! differ → 400; `Transfer-Encoding` on HTTP/1.0, or whose last coding is
//! not `chunked` → 400. With both `Transfer-Encoding` (chunked) and
//! `Content-Length` the length is ignored, the body read chunked, and the
//! connection closed after the answer. The rest of the hygiene rules
//! (Host, `_` in names, codings before `chunked`, the target's length)
//! are the proxy's (`proxy::hygiene`), for HTTP/2 requests as well.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{
    CONNECTION, CONTENT_LENGTH, EXPECT, HeaderMap, HeaderName, HeaderValue, TE, TRANSFER_ENCODING,
    UPGRADE,
};
use http::request::Parts;
use http::{Method, Request, Uri, Version};

use crate::Error;

use crate::proxy::h1::decode::{MAX_HEADERS, head_end};
use crate::proxy::h1::names::Names;

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (neither field; a request body is never close-delimited).
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug)]
pub struct Head {
    pub parts: Parts,
    pub framing: Framing,
    /// Whether another request may follow on the connection.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// An `Upgrade` field on HTTP/1.1, or CONNECT: what follows the head
    /// may be another protocol.
    pub upgrade: bool,
    /// `TE: trailers`: the client takes trailers at a chunked body's end.
    pub trailers: bool,
}

/// A malformed head: 400 (`Error::status`), and the connection closes.
fn bad(reason: &'static str) -> Error {
    Error::MalformedRequest(reason)
}

/// Parses one head from the front of `buf`. `Ok(None)`: incomplete, read
/// more (unless `buf` already holds `max_bytes`: then it is too large). On
/// success the head's bytes are split off `buf` (the parts' target and
/// values are slices of them, not copies) and what follows stays in `buf`.
/// `names`: the connection's, from its last head.
pub fn parse(
    buf: &mut BytesMut,
    names: &mut Names,
    max_headers: usize,
    max_bytes: usize,
) -> Result<Option<Head>, Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let storage = &mut storage[..max_headers.clamp(1, MAX_HEADERS)];
    let Some(len) = head_end(buf) else {
        if buf.len() >= max_bytes {
            return Err(TOO_LARGE);
        }
        // Not complete yet; refused now if what came already cannot parse.
        // Only while it is short: parsed again at every read, a head sent a
        // byte at a time would cost its length squared; a long one is
        // parsed once complete (or refused with 431).
        if buf.len() <= EARLY_CHECK_MAX {
            let mut req = httparse::Request::new(&mut []);
            config()
                .parse_request_with_uninit_headers(&mut req, buf, storage)
                .map_err(parse_error)?;
        }
        return Ok(None);
    };
    if len > max_bytes {
        return Err(TOO_LARGE);
    }
    // Found by a scan for its end, the head is parsed once, from its own
    // bytes.
    let block = buf.split_to(len).freeze();
    let mut req = httparse::Request::new(&mut []);
    match config()
        .parse_request_with_uninit_headers(&mut req, &block, storage)
        .map_err(parse_error)?
    {
        httparse::Status::Complete(n) if n == len => {}
        // A line ending httparse does not read as the end (a bare CR).
        _ => return Err(bad("bad line ending")),
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method = req.method.unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("bad method"))?;
    let fields = req.headers;
    let names = names
        .of(fields.iter().map(|h| h.name))
        .ok_or(Error::MalformedRequest("bad header name"))?;
    let scanned = scan(fields, names, version)?;
    let target = block.slice_ref(req.path.unwrap_or_default().as_bytes());
    let uri = Uri::from_maybe_shared(target).map_err(|_| bad("bad request target"))?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (h, name) in fields.iter().zip(names) {
        let value = HeaderValue::from_maybe_shared(block.slice_ref(h.value))
            .map_err(|_| bad("bad header value"))?;
        headers.append(name.clone(), value);
    }
    let mut parts = Request::new(()).into_parts().0;
    let upgrade = scanned.upgrade || method == Method::CONNECT;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        framing: scanned.framing,
        keep_alive: scanned.keep_alive,
        expect_continue: scanned.expect_continue,
        upgrade,
        trailers: scanned.trailers,
    }))
}

/// The longest unfinished head checked for errors before it ends.
const EARLY_CHECK_MAX: usize = 4 * 1024;

const TOO_LARGE: Error = Error::HeadTooLarge("request head too large");

/// httparse's strict defaults: no spaces before a colon, no obs-fold, one
/// space between the request line's parts.
fn config() -> httparse::ParserConfig {
    httparse::ParserConfig::default()
}

/// What the framing and connection fields said, in one pass.
#[derive(Debug, Clone, Copy)]
struct Scanned {
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: bool,
    trailers: bool,
}

fn scan(
    fields: &[httparse::Header<'_>],
    names: &[HeaderName],
    version: Version,
) -> Result<Scanned, Error> {
    let http11 = version == Version::HTTP_11;
    let (mut length, mut te, mut chunked) = (None, false, false);
    let (mut close, mut keep_alive, mut expect_continue, mut upgrade) =
        (false, false, false, false);
    let mut trailers = false;
    for (h, name) in fields.iter().zip(names) {
        if *name == CONTENT_LENGTH {
            let n = digits(h.value).ok_or(Error::MalformedRequest("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("conflicting Content-Length"));
            }
            length = Some(n);
        } else if *name == TRANSFER_ENCODING {
            if !http11 {
                return Err(bad("Transfer-Encoding on HTTP/1.0"));
            }
            te = true;
            // The last coding of this line: the framing is chunked only if
            // the last line's last coding is.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if *name == CONNECTION {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if *name == EXPECT {
            expect_continue = http11 && h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if *name == UPGRADE {
            upgrade = http11;
        } else if *name == TE {
            trailers |= h.value.split(|&b| b == b',').any(|t| {
                // A coding's parameters (`trailers` has none) end at `;`.
                let t = t.split(|&b| b == b';').next().unwrap_or_default();
                t.trim_ascii().eq_ignore_ascii_case(b"trailers")
            });
        }
    }
    if te && !chunked {
        return Err(bad("the last transfer coding is not chunked"));
    }
    let framing = match (te, length) {
        (true, _) => Framing::Chunked,
        (false, Some(0) | None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    Ok(Scanned {
        framing,
        // Both framings given: what follows this request cannot be trusted.
        keep_alive: !close && (http11 || keep_alive) && !(te && length.is_some()),
        expect_continue,
        upgrade,
        trailers,
    })
}

/// A `Content-Length` value: digits only, no sign, no list, no overflow.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

fn parse_error(e: httparse::Error) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::HeadTooLarge("too many request headers"),
        httparse::Error::Version => bad("bad HTTP version"),
        httparse::Error::HeaderName => bad("bad header name"),
        httparse::Error::HeaderValue => bad("bad header value"),
        httparse::Error::NewLine => bad("bad line ending"),
        httparse::Error::Token | httparse::Error::Status => bad("bad request line"),
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
