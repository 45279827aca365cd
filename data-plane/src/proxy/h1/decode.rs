//! Parses upstream HTTP/1.x response heads with httparse (chunked bodies:
//! `chunked`). Sans-IO: the caller owns the socket and the read buffer, feeds
//! bytes into a `BytesMut` and calls back in when more arrive; nothing here
//! blocks, reads or writes.
//!
//! Every malformed input is an [`Invalid`], which the proxy turns into a 502:
//! an upstream that frames ambiguously could otherwise smuggle a second
//! response into a pooled connection.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{
    CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use http::{StatusCode, Version};

use super::names::Names;
use super::passed::Passed;
use crate::proxy::headers::is_hop_by_hop;

/// A head longer than this is rejected rather than buffered without bound.
pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 100;

/// Why an upstream response was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Invalid {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD request, 1xx, 204, 304).
    Empty,
    /// Content-Length bytes (0 is kept as `Length(0)`).
    Length(u64),
    /// Transfer-Encoding whose last coding is chunked.
    Chunked,
    /// Neither: the body runs until the server closes the connection.
    Close,
}

#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    /// `HTTP_10` or `HTTP_11`.
    pub version: Version,
    /// Empty when the fields are `passed`.
    pub headers: HeaderMap,
    /// The fields as the bytes they came in, when asked for and possible.
    pub passed: Option<Box<Passed>>,
    pub framing: Framing,
    /// Whether the connection may carry another exchange after this body.
    pub keep_alive: bool,
}

/// The fields of a parsed head or trailer section as a map, named by
/// `names` (theirs, in order: [`Names::of`]); the values are slices of
/// `block` (the section's bytes, frozen), not copies. With `hop_by_hop`
/// (a response head other than a 101), the hop-by-hop fields stay out of
/// the map: `Connection` (a `named` one also the fields it names), the
/// others `headers::is_hop_by_hop` lists, `TE` (a request's field) among
/// them. They are this connection's business, which the proxy would take
/// out again (`headers::strip_hop_by_hop`: a pass over the names, and a
/// lookup and a shift per field found, a response).
pub(super) fn field_map(
    block: &Bytes,
    fields: &[httparse::Header<'_>],
    names: &[HeaderName],
    hop_by_hop: Option<Named>,
) -> Result<HeaderMap, Invalid> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for (h, name) in fields.iter().zip(names) {
        if let Some(named) = hop_by_hop
            && (is_hop_by_hop(name) || (named.0 && named_by_connection(fields, names, h.name)))
        {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(block.slice_ref(h.value))
            .map_err(|_| Invalid("bad header value"))?;
        map.append(name.clone(), value);
    }
    Ok(map)
}

/// Whether a head's `Connection` names fields other than the ones that go
/// anyway (rare: those are then looked for among every field).
#[derive(Debug, Clone, Copy)]
pub(super) struct Named(bool);

/// Whether a token of a `Connection` field of the head names `raw`.
fn named_by_connection(fields: &[httparse::Header<'_>], names: &[HeaderName], raw: &str) -> bool {
    fields
        .iter()
        .zip(names)
        .filter(|(_, n)| *n == CONNECTION)
        .flat_map(|(h, _)| list(h.value))
        .any(|token| token.eq_ignore_ascii_case(raw.as_bytes()))
}

/// Room for the fields of one head, left uninitialised: httparse writes
/// only what it parses, and zeroing 100 fields per response cost more
/// than parsing it.
fn storage<'b>() -> [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

fn parse<'h, 'b>(
    res: &mut httparse::Response<'h, 'b>,
    bytes: &'b [u8],
    storage: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<httparse::Status<usize>, Invalid> {
    httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(res, bytes, storage)
        .map_err(parse_error)
}

fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

fn parse_error(e: httparse::Error) -> Invalid {
    Invalid(match e {
        httparse::Error::TooManyHeaders => "too many response headers",
        httparse::Error::HeaderName => "bad header name",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::NewLine => "bad line ending in response head",
        httparse::Error::Status => "bad status line",
        httparse::Error::Token => "bad token in response head",
        httparse::Error::Version => "bad HTTP version",
    })
}

/// What the framing-relevant fields said, gathered in one pass. A bad
/// Transfer-Encoding is kept, not raised: it only matters if a body follows.
#[derive(Default)]
struct Fields<'a> {
    length: Option<&'a [u8]>,
    lengths: usize,
    te: Option<Result<Framing, Invalid>>,
    close: bool,
    keep_alive: bool,
    /// A `Connection` token other than `close` and `keep-alive`: it names
    /// a field the proxy must remove with it.
    names_fields: bool,
}

/// `names`: the fields' (a compare of standard names each, where a
/// case-insensitive compare of every raw name with three cost more).
fn scan<'a>(fields: &[httparse::Header<'a>], names: &[HeaderName]) -> Fields<'a> {
    let mut f = Fields::default();
    for (h, name) in fields.iter().zip(names) {
        if name == CONTENT_LENGTH {
            f.lengths += 1;
            f.length = Some(h.value);
        } else if name == TRANSFER_ENCODING {
            let mut te = f.te.unwrap_or(Ok(Framing::Close));
            let mut any = false;
            for coding in list(h.value).filter(|c| !c.is_empty()) {
                any = true;
                te = match te {
                    Ok(Framing::Chunked) => Err(Invalid("chunked is not the last transfer coding")),
                    Ok(_) if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
                    Ok(_) => Ok(Framing::Close),
                    err => err,
                };
            }
            // Empty list elements are legal filler; a line with no coding is not.
            if !any {
                te = te.and(Err(Invalid("empty Transfer-Encoding")));
            }
            f.te = Some(te);
        } else if name == CONNECTION {
            for token in list(h.value) {
                let close = token.eq_ignore_ascii_case(b"close");
                let keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                f.close |= close;
                f.keep_alive |= keep_alive;
                f.names_fields |= !(close || keep_alive || token.is_empty());
            }
        }
    }
    f
}

fn content_length(value: &[u8]) -> Result<u64, Invalid> {
    if value.contains(&b',') {
        return Err(Invalid("more than one Content-Length"));
    }
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(Invalid("Content-Length is not a number"));
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Invalid("Content-Length overflows"))
    })
}

/// The body's framing. Ambiguous framing fields are refused even on an
/// answer with no body, whose fields are passed on to the client as they
/// are: the proxy checks them nowhere else.
fn framing(status: StatusCode, http10: bool, head: bool, f: &Fields) -> Result<Framing, Invalid> {
    if f.te.is_some() && f.lengths > 0 {
        return Err(Invalid("Content-Length with Transfer-Encoding"));
    }
    if f.lengths > 1 {
        return Err(Invalid("more than one Content-Length"));
    }
    let length = f.length.map(content_length).transpose()?;
    // RFC 9112 §6.3: these never carry a body, whatever the fields claim.
    if head || status.is_informational() || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(te) = f.te {
        if http10 {
            return Err(Invalid("Transfer-Encoding in an HTTP/1.0 response"));
        }
        return te;
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// Parses one response head from the front of `buf`. `Ok(None)`: incomplete,
/// read more. On success the head's bytes are split off `buf` (the header
/// values are slices of them) and whatever follows stays in `buf`.
/// `request_was_head`: the request's method was HEAD, so there is no body.
/// `names`: the connection's, from its last head. `pass`: the fields may
/// stay bytes (`passed`), unless the answer has no body or switches
/// protocols.
pub fn response_head(
    buf: &mut BytesMut,
    request_was_head: bool,
    names: &mut Names,
    pass: bool,
) -> Result<Option<Head>, Invalid> {
    // Scanning at most MAX_HEAD bytes bounds the work redone on every read.
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(len) = head_end(window) else {
        if buf.len() >= MAX_HEAD {
            return Err(Invalid("response head too large"));
        }
        // Incomplete (rare: a head split over reads). What has come is
        // parsed anyway, so that an upstream talking something else is
        // refused now rather than waited on until its read timeout.
        let mut fields = storage();
        parse(&mut httparse::Response::new(&mut []), window, &mut fields)?;
        return Ok(None);
    };
    // The header values are slices of the head once split off the buffer:
    // found by a scan for its end, the head is parsed once, from its own
    // bytes (a parse of the buffer to find the end cost as much again).
    let block = buf.split_to(len).freeze();
    let mut fields = storage();
    let mut res = httparse::Response::new(&mut []);
    match parse(&mut res, &block, &mut fields)? {
        httparse::Status::Complete(n) if n == len => {}
        // Not a line ending httparse reads as the end of the head (a bare CR).
        _ => return Err(Invalid("bad line ending in response head")),
    }
    let version = match res.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(Invalid("bad HTTP version")),
    };
    let status = res.code.ok_or(Invalid("bad status line"))?;
    let status = StatusCode::from_u16(status).map_err(|_| Invalid("bad status code"))?;
    let http10 = version == Version::HTTP_10;
    let names = names
        .of(res.headers.iter().map(|h| h.name))
        .ok_or(Invalid("bad header name"))?;
    let scanned = scan(res.headers, names);
    let framing = framing(status, http10, request_was_head, &scanned)?;
    let persistent = !scanned.close && (scanned.keep_alive || !http10);
    // After 101 the bytes belong to another protocol; after Close, to nobody.
    let keep_alive = persistent && framing != Framing::Close && status != 101;
    let fields = res.headers;
    let named = |raw: &str| scanned.names_fields && named_by_connection(fields, names, raw);
    let passed = match framing {
        Framing::Empty => None,
        _ if !pass || status == 101 => None,
        Framing::Length(n) => Passed::of(&block, fields, names, named, Some(n)),
        Framing::Chunked | Framing::Close => Passed::of(&block, fields, names, named, None),
    };
    let headers = match passed {
        Some(_) => HeaderMap::new(),
        // A 101's `Connection: upgrade` is checked and passed on (`upgrade`).
        None => field_map(
            &block,
            fields,
            names,
            (status != 101).then_some(Named(scanned.names_fields)),
        )?,
    };
    Ok(Some(Head {
        status,
        version,
        headers,
        passed,
        framing,
        keep_alive,
    }))
}

/// The length of the head at the front of `bytes`: up to and including
/// its first empty line (`\r\n` or a bare `\n`, as httparse reads line
/// endings), or `None` if that has not arrived yet. Empty lines before the
/// status line are skipped, as httparse skips them. A line feed cannot occur
/// inside a status line or a field, so for any head httparse accepts this is
/// where its parse ends; for any other, the parse that follows fails.
pub(crate) fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    loop {
        match bytes.get(start..)? {
            [b'\n', ..] => start += 1,
            [b'\r', b'\n', ..] => start += 2,
            [] | [b'\r'] => return None,
            _ => break,
        }
    }
    for lf in memchr::memchr_iter(b'\n', &bytes[start..]) {
        let lf = start + lf;
        match bytes.get(lf + 1..)? {
            [b'\n', ..] => return Some(lf + 2),
            [b'\r', b'\n', ..] => return Some(lf + 3),
            [b'\r'] => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "decode_end_tests.rs"]
mod end_tests;

#[cfg(test)]
mod hop_by_hop_tests {
    //! (A 101 keeps them, for the tunnel: `tests`, on `Connection`.)

    use super::*;

    fn head(s: &str) -> Head {
        response_head(&mut BytesMut::from(s), false, &mut Names::default(), false)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_response_head_leaves_its_hop_by_hop_fields_out() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\nProxy-Authenticate: Basic\r\nTrailer: X-T\r\n\
             Upgrade: h2c\r\nTE: trailers\r\nx-secret: hidden\r\nX-Kept: yes\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
        let names: Vec<_> = h.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
        // Only what Connection names goes with it.
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!h.keep_alive);
        let names: Vec<_> = h.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-secret", "content-length"]);
    }
}
