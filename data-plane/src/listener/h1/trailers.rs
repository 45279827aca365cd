//! A chunked answer's trailer section, for an HTTP/1 client that asked
//! for trailers (`TE: trailers`; `respond` decides): the fields a
//! recipient may act on, as RFC 9110 §6.5.1 has it.

use http::HeaderMap;
use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, DATE, EXPIRES, HOST, HeaderName, LOCATION, RETRY_AFTER, SET_COOKIE, VARY,
};

use crate::proxy::headers::is_hop_by_hop;

/// Writes the trailer fields a recipient may act on: not the hop-by-hop
/// ones, nor those RFC 9110 §6.5.1 keeps out of trailers (framing,
/// routing, authentication, response control, content processing), which
/// a client merging trailers into the head must not be handed.
pub fn write(out: &mut Vec<u8>, trailers: &HeaderMap) {
    const NOT_IN_TRAILERS: [HeaderName; 14] = [
        AGE,
        AUTHORIZATION,
        CACHE_CONTROL,
        CONTENT_ENCODING,
        CONTENT_LENGTH,
        CONTENT_RANGE,
        CONTENT_TYPE,
        DATE,
        EXPIRES,
        HOST,
        LOCATION,
        RETRY_AFTER,
        SET_COOKIE,
        VARY,
    ];
    for (name, value) in trailers {
        if is_hop_by_hop(name) || NOT_IN_TRAILERS.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}
