//! Header rewriting between client and upstream: hop-by-hop headers removed
//! in both directions, `X-Forwarded-*` (and the request id) added on the
//! way in, beside the request's map ([`Added`]).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::observe::trace::{TRACEPARENT, TraceContext};
use crate::proxy::request_id::X_REQUEST_ID;

/// Hop-by-hop headers (RFC 9110 §7.6.1), plus the non-standard ones proxies
/// still meet. `te` is handled apart: `te: trailers` must reach gRPC servers.
const HOP_BY_HOP_COUNT: usize = 7;
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::UPGRADE,
];

/// The index of `name` in [`HOP_BY_HOP`]. Compared with constants, each
/// comparison compiles to a tag check (standard names) or one byte
/// comparison: a loop over the array compares whole `HeaderName`s (or, over
/// a `const` array, builds and drops one for every header of a message).
fn hop_index(name: &HeaderName) -> Option<usize> {
    let i = if *name == header::CONNECTION {
        0
    } else if *name == KEEP_ALIVE {
        1
    } else if *name == PROXY_CONNECTION {
        2
    } else if *name == header::PROXY_AUTHENTICATE {
        3
    } else if *name == header::PROXY_AUTHORIZATION {
        4
    } else if *name == header::TRAILER {
        5
    } else if *name == header::UPGRADE {
        6
    } else {
        return None;
    };
    Some(i)
}

/// Whether `name` is a hop-by-hop field that goes whatever `Connection`
/// says: one of [`HOP_BY_HOP`], `TE` or `Transfer-Encoding`. (For a request
/// [`strip_hop_by_hop`] keeps `te: trailers`; a response has no use for it.)
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_index(name).is_some() || *name == header::TE || *name == header::TRANSFER_ENCODING
}

/// A `Connection` token naming a header `strip_hop_by_hop` removes anyway
/// (one of [`HOP_BY_HOP`], removed whenever present). Not `te`: named by
/// `Connection`, it goes even as `te: trailers`.
fn goes_anyway(token: &[u8]) -> bool {
    [
        "keep-alive",
        "upgrade",
        "proxy-connection",
        "trailer",
        "connection",
    ]
    .iter()
    .any(|n| token.eq_ignore_ascii_case(n.as_bytes()))
}

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// One pass over the names finds which are present, so a message carrying
/// none (most requests) or only `Connection: keep-alive` (most responses)
/// costs no lookup per candidate name, and `Connection`'s tokens are looked
/// up as text, without building a `HeaderName` each.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP_COUNT];
    let (mut te, mut transfer_encoding) = (false, false);
    for name in headers.keys() {
        if *name == header::TE {
            te = true;
        } else if *name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
        } else if let Some(i) = hop_index(name) {
            present[i] = true;
        }
    }
    // `Connection` (HOP_BY_HOP[0]) goes first: its tokens name others.
    // Most messages name only what goes anyway (`keep-alive`, `upgrade`):
    // the header is then removed without copying its values out and
    // looking each token up.
    if present[0] {
        let names_others = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .any(|t| !t.is_empty() && !goes_anyway(t));
        if !names_others {
            headers.remove(header::CONNECTION);
        } else if let header::Entry::Occupied(e) = headers.entry(header::CONNECTION) {
            let values: Vec<HeaderValue> = e.remove_entry_mult().1.collect();
            for v in &values {
                for token in v.to_str().unwrap_or("").split(',').map(str::trim) {
                    // Looked up as text: no `HeaderName` built per token (an
                    // invalid name finds nothing).
                    if !token.is_empty() {
                        headers.remove(token);
                    }
                }
            }
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).skip(1).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    if transfer_encoding {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if te
        && !headers
            .get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// Most fields [`forwarded`] adds: `X-Forwarded-For`, `-Proto`, `-Host`,
/// `X-Request-Id` (the proxy's `traceparent` is kept apart).
const ADDED_MAX: usize = 4;

/// The fields the proxy adds to a request it forwards. They stay out of
/// the request's map: the HTTP/1 encoder writes them after its fields, and
/// the HTTP/2 path adds them to the copy of the map it hands hyper.
/// Inserted into the map, each of these custom names was hashed (a byte at
/// a time) and the map grown past the client's fields: ~1,300
/// instructions a request (callgrind).
#[derive(Debug, Default, Clone)]
pub struct Added {
    fields: [Option<(&'static HeaderName, HeaderValue)>; ADDED_MAX],
    /// The proxy's `traceparent`, kept as its ids and written as text by
    /// the HTTP/1 encoder: made into a header value (an allocation, and a
    /// check of each of its 55 bytes, ~300 instructions a request) only
    /// for the map an HTTP/2 upstream gets.
    pub traceparent: Option<TraceContext>,
    pub host_from: HostFrom,
    /// The answer's fields may reach the client as the bytes they came in
    /// (`h1::passed`): nothing on its way back reads or changes them.
    /// Set by the proxy once it knows; never by default.
    pub pass_fields: bool,
}

/// Whose `Host` goes upstream. The client's stays in the map either way:
/// removing it cost a lookup and a shift of the map's entries a request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum HostFrom {
    /// The request's own, or the target's when it has none.
    #[default]
    Request,
    /// The target's, in place of the request's (a route without
    /// `preserve_host`).
    Target,
}

impl Added {
    /// Adds `name`, which the request's map must not carry (see
    /// [`forwarded`]). There is room for the [`ADDED_MAX`] names above.
    pub fn push(&mut self, name: &'static HeaderName, value: HeaderValue) {
        let free = self.fields.iter_mut().find(|f| f.is_none());
        debug_assert!(free.is_some(), "more than {ADDED_MAX} added fields");
        if let Some(slot) = free {
            *slot = Some((name, value));
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.fields.iter().flatten().map(|(n, v)| (*n, v))
    }

    /// `headers` with these fields in (replacing any of the same name).
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.insert(name, value.clone());
        }
        if let Some(t) = &self.traceparent {
            headers.insert(&TRACEPARENT, t.header());
        }
    }
}

/// The forwarding fields for a request from `client` (its address as
/// text: [`client_text`], made once per connection) over `proto`, asked
/// for `host`: the client appended to `X-Forwarded-For`, the scheme and
/// host stated, `request_id` set. Whatever the client sent of these, and of
/// `traceparent` (the caller adds the proxy's), is taken out of `headers`;
/// one pass over the names tells whether there is any.
pub fn forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    proto: &'static str,
    host: Option<&HeaderValue>,
    request_id: HeaderValue,
) -> Added {
    let replaced = [
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &X_REQUEST_ID,
        &TRACEPARENT,
    ];
    let mut prior = None;
    if headers.keys().any(|n| replaced.contains(&n)) {
        prior = chain(headers, client);
        for name in replaced {
            headers.remove(name);
        }
    }
    let mut added = Added::default();
    // The chain has the bytes of valid values and ", ": valid too.
    if let Some(Ok(v)) = prior.map(|v| HeaderValue::from_maybe_shared(bytes::Bytes::from(v))) {
        added.push(&X_FORWARDED_FOR, v);
    } else {
        // A reference count: no allocation for the common request.
        added.push(&X_FORWARDED_FOR, client.clone());
    }
    added.push(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(h) = host {
        added.push(&X_FORWARDED_HOST, h.clone());
    }
    added.push(&X_REQUEST_ID, request_id);
    added
}

/// Every `X-Forwarded-For` line the client sent, in order, joined as one
/// list (RFC 9110 §5.3: the same as one line of them all), then `client`;
/// `None` when it sent none or only empty ones. Each line counts: keeping
/// only the first would drop the hops nearest to the proxy, the ones an
/// upstream that trusts the right end of the list reads.
fn chain(headers: &HeaderMap, client: &HeaderValue) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for line in headers.get_all(&X_FORWARDED_FOR) {
        let line = line.as_bytes().trim_ascii();
        if line.is_empty() {
            continue;
        }
        let v = out.get_or_insert_with(|| Vec::with_capacity(line.len() + 2 + client.len()));
        if !v.is_empty() {
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(line);
    }
    out.map(|mut v| {
        v.extend_from_slice(b", ");
        v.extend_from_slice(client.as_bytes());
        v
    })
}

/// A client's address as `X-Forwarded-For` states it.
pub fn client_text(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(IpText::default().of(ip)).expect("an address is a valid header value")
}

/// An address as text without `fmt` for IPv4 (the common case on the
/// request path, where `Display` cost more than the rest of the headers).
#[derive(Default)]
pub(crate) struct IpText {
    buf: [u8; 15],
    v6: String,
}

impl IpText {
    pub(crate) fn of(&mut self, ip: IpAddr) -> &str {
        match ip {
            IpAddr::V4(v4) => {
                let mut n = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buf[n] = b'.';
                        n += 1;
                    }
                    if octet >= 100 {
                        self.buf[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        self.buf[n] = b'0' + octet / 10 % 10;
                        n += 1;
                    }
                    self.buf[n] = b'0' + octet % 10;
                    n += 1;
                }
                std::str::from_utf8(&self.buf[..n]).unwrap_or("")
            }
            IpAddr::V6(v6) => {
                self.v6 = v6.to_string();
                &self.v6
            }
        }
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
