//! The request head an upstream HTTP/1 connection sends, written into the
//! connection's own buffer (kept across exchanges, so no allocation once
//! warm), and the framing of the body that follows it.
//!
//! The proxy decides the framing, never the client's headers: any
//! `Content-Length` or `Transfer-Encoding` left in the map is dropped and
//! the framing is written from what the body says it is (`size_hint`). A
//! request that would go out ambiguously cannot be built here.

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::observe::trace::TRACEPARENT;
use crate::proxy::headers::{Added, HostFrom};

/// How the request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked: the length is not known up front.
    Chunked,
}

impl Framing {
    /// The framing of a body: `end` when it has nothing (more) to send,
    /// else its exact length if it knows one.
    pub fn of(end: bool, exact: Option<u64>) -> Framing {
        match (end, exact) {
            (true, _) | (false, Some(0)) => Framing::Empty,
            (false, Some(n)) => Framing::Length(n),
            (false, None) => Framing::Chunked,
        }
    }
}

/// Writes `parts`' head with `path` (origin form) as its target, `host`
/// (the target's) first, in place of the map's `Host` or where it has
/// none, as `added` says, and the `added` fields after the map's. An
/// empty body still says
/// `content-length: 0` where a body is expected (the client sent a length,
/// or the method usually has one), as clients do.
pub fn request_head(
    out: &mut Vec<u8>,
    (parts, added): (&Parts, &Added),
    path: &str,
    host: Option<&HeaderValue>,
    framing: Framing,
) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let replaced = added.host_from == HostFrom::Target;
    let host = match host {
        Some(h) if replaced || !parts.headers.contains_key(header::HOST) => Some(h),
        _ => None,
    };
    if let Some(host) = host {
        field(out, &header::HOST, host);
    }
    fields(out, &parts.headers, host.is_some());
    for (name, value) in added.fields() {
        field(out, name, value);
    }
    if let Some(t) = &added.traceparent {
        line(out, &TRACEPARENT, &t.header_text());
    }
    match framing {
        Framing::Empty if parts.headers.contains_key(header::CONTENT_LENGTH) => length(out, 0),
        Framing::Empty if expects_body(&parts.method) => length(out, 0),
        Framing::Empty => {}
        Framing::Length(n) => length(out, n),
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

fn length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Every field but the framing ones (and `Host` when it was written
/// already), in the map's order (repeated names as repeated lines).
fn fields(out: &mut Vec<u8>, headers: &HeaderMap, host_written: bool) {
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || (host_written && name == header::HOST)
        {
            continue;
        }
        field(out, name, value);
    }
}

fn field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    line(out, name, value.as_bytes());
}

/// A field line of a value that is valid by construction.
fn line(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A chunk's size line (`data` follows it, then [`CHUNK_END`]).
pub fn chunk_size(out: &mut Vec<u8>, len: usize) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

pub const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk, with no trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn head(req: Request<()>, framing: Framing) -> String {
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        let path = parts.uri.path_and_query().unwrap().as_str().to_owned();
        request_head(&mut out, (&parts, &Added::default()), &path, None, framing);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_get_has_no_framing_fields() {
        let req = Request::get("/a?b=1")
            .header("host", "up:8080")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, Framing::Empty),
            "GET /a?b=1 HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
    }

    #[test]
    fn added_fields_follow_the_maps_and_the_target_host_comes_first() {
        let (parts, ()) = Request::get("/")
            .header("x-a", "1")
            .body(())
            .unwrap()
            .into_parts();
        let mut added = Added::default();
        added.push(
            &crate::proxy::headers::X_FORWARDED_PROTO,
            HeaderValue::from_static("http"),
        );
        let host = HeaderValue::from_static("up:81");
        let mut out = Vec::new();
        request_head(&mut out, (&parts, &added), "/", Some(&host), Framing::Empty);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nhost: up:81\r\nx-a: 1\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn the_proxys_traceparent_is_written_from_its_ids_and_matches_its_header_value() {
        let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
        let trace = crate::observe::trace::TraceContext {
            trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            parent_id: 0,
            span_id: 0xb7ad_6b71_6920_3331,
            flags: 1,
        };
        let mut added = Added::default();
        added.traceparent = Some(trace);
        let mut out = Vec::new();
        request_head(&mut out, (&parts, &added), "/", None, Framing::Empty);
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("GET / HTTP/1.1\r\ntraceparent: {text}\r\n\r\n")
        );
        // The HTTP/2 path's map gets the same value.
        let mut map = HeaderMap::new();
        added.insert_into(&mut map);
        assert_eq!(map[&TRACEPARENT], text);
    }

    #[test]
    fn the_target_host_replaces_the_requests_only_when_asked() {
        let req = || Request::get("/").header("host", "client.example").body(());
        let (parts, ()) = req().unwrap().into_parts();
        let target = HeaderValue::from_static("up:81");
        let mut added = Added::default();
        let write = |added: &Added| {
            let mut out = Vec::new();
            request_head(
                &mut out,
                (&parts, added),
                "/",
                Some(&target),
                Framing::Empty,
            );
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            write(&added),
            "GET / HTTP/1.1\r\nhost: client.example\r\n\r\n"
        );
        added.host_from = HostFrom::Target;
        assert_eq!(write(&added), "GET / HTTP/1.1\r\nhost: up:81\r\n\r\n");
    }

    #[test]
    fn the_clients_framing_fields_are_replaced_by_the_bodys() {
        let req = Request::post("/")
            .header("content-length", "999")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, Framing::Length(5)),
            "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\n"
        );
        let req = Request::put("/")
            .header("content-length", "5")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, Framing::Chunked),
            "PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn an_empty_body_says_zero_only_where_a_body_is_expected() {
        let post = Request::post("/").body(()).unwrap();
        assert_eq!(
            head(post, Framing::Empty),
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
        let delete = Request::delete("/")
            .header("content-length", HeaderValue::from_static("0"))
            .body(())
            .unwrap();
        assert_eq!(
            head(delete, Framing::Empty),
            "DELETE / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
        let get = Request::get("/").body(()).unwrap();
        assert_eq!(head(get, Framing::Empty), "GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn framing_follows_the_body() {
        assert_eq!(Framing::of(true, Some(7)), Framing::Empty);
        assert_eq!(Framing::of(false, Some(0)), Framing::Empty);
        assert_eq!(Framing::of(false, Some(7)), Framing::Length(7));
        assert_eq!(Framing::of(false, None), Framing::Chunked);
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut out = Vec::new();
        chunk_size(&mut out, 300);
        out.extend_from_slice(CHUNK_END);
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(out, b"12c\r\n\r\n0\r\n\r\n");
    }
}
