//! Request hygiene: what the head parsers let through but a proxy must not
//! forward. The HTTP/1 parser (`listener::h1::head`) already answers 400
//! for malformed request lines, header names and values (NUL, bare CR,
//! spaces before the colon, obs-fold), invalid or conflicting
//! `Content-Length`, a `Transfer-Encoding` whose last coding is not
//! `chunked`, and `Transfer-Encoding` on HTTP/1.0; 431 for too many or too
//! large headers. With both `Content-Length` and `Transfer-Encoding` it
//! ignores the length, reads chunked and closes the connection after the
//! answer. What is left is checked here, for HTTP/1 and HTTP/2 requests,
//! before the request is routed (docs/proxy.md lists both halves).

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Uri, Version};

use crate::Error;
use crate::listener::limits::MAX_REQUEST_TARGET;

/// Checks the request head and returns the host to route on: the `Host`
/// header, or the URI's authority (HTTP/2, or HTTP/1.0 without `Host`).
pub fn check(req: &Parts) -> Result<Option<HeaderValue>, Error> {
    if target_len(&req.uri) > MAX_REQUEST_TARGET {
        return Err(Error::UriTooLong(MAX_REQUEST_TARGET));
    }
    // `Content_Length` next to `Content-Length`, `X_Forwarded_For` next to
    // the one we set: CGI-style servers map `_` and `-` to the same name.
    // The same pass notes a `Transfer-Encoding`, so most requests (none)
    // skip looking it up.
    let mut coded = false;
    for name in req.headers.keys() {
        if name.as_str().contains('_') {
            return Err(Error::InvalidHeader("a header name contains '_'"));
        }
        coded |= name == header::TRANSFER_ENCODING;
    }
    if coded {
        transfer_encoding(req)?;
    }
    host(req)
}

/// The request target as sent: path and query, plus scheme and authority
/// in absolute form.
fn target_len(uri: &Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + authority + scheme
}

/// The parser accepts any coding list that ends in `chunked`, and more
/// than one header line; we forward the body de-chunked and re-framed, so a coding
/// before `chunked` (`gzip, chunked`) would silently be lost: 501.
fn transfer_encoding(req: &Parts) -> Result<(), Error> {
    let mut values = req.headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(Error::InvalidFraming(
            "more than one Transfer-Encoding header",
        ));
    }
    let coding = first.to_str().map(str::trim).unwrap_or("");
    if !coding.eq_ignore_ascii_case("chunked") {
        return Err(Error::UnsupportedTransferEncoding);
    }
    Ok(())
}

fn host(req: &Parts) -> Result<Option<HeaderValue>, Error> {
    let mut headers = req.headers.get_all(header::HOST).iter();
    let host_header = headers.next();
    if headers.next().is_some() {
        return Err(Error::AmbiguousHost);
    }
    if let Some(h) = host_header
        && !h.is_empty()
        && !is_host(h.as_bytes())
    {
        return Err(Error::InvalidHost("the Host header is not host[:port]"));
    }
    let authority = req.uri.authority();
    if let Some(a) = authority {
        if !is_host(a.as_str().as_bytes()) {
            return Err(Error::InvalidHost(
                "the request URI's authority is not host[:port]",
            ));
        }
        if !matches!(req.uri.scheme_str(), None | Some("http" | "https")) {
            return Err(Error::InvalidHost(
                "the request URI's scheme is not http(s)",
            ));
        }
        // Never route on one and let the upstream or a policy read the other.
        if let Some(h) = host_header
            && !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())
        {
            return Err(Error::HostMismatch);
        }
    }
    if host_header.is_none() && req.version == Version::HTTP_11 {
        // RFC 9112 §3.2: even an absolute-form request must carry Host.
        return Err(Error::MissingHost);
    }
    Ok(host_header
        .cloned()
        .or_else(|| authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok())))
}

/// An upstream response hyper parsed but that is framed ambiguously: hyper
/// reads chunked when both `Content-Length` and `Transfer-Encoding` are
/// there, and accepts `5, 5` or two equal lengths; passing such a length on
/// to the client could desynchronise it. Refused (502).
pub fn check_response(headers: &HeaderMap) -> Result<(), Error> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(length) = lengths.next() else {
        return Ok(());
    };
    if lengths.next().is_some() {
        return Err(Error::UpstreamFraming("more than one Content-Length"));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Error::UpstreamFraming(
            "Content-Length with Transfer-Encoding",
        ));
    }
    if length.is_empty() || !length.as_bytes().iter().all(u8::is_ascii_digit) {
        return Err(Error::UpstreamFraming(
            "a Content-Length that is not a number",
        ));
    }
    Ok(())
}

/// `host[:port]`: letters, digits, `-._`, an IPv6 literal in brackets. No
/// userinfo (`@`), no percent-encoding, no spaces.
fn is_host(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut b = http::Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn h11(uri: &str, headers: &[(&str, &[u8])]) -> Result<Option<HeaderValue>, Error> {
        check(&req(Version::HTTP_11, uri, headers))
    }

    #[test]
    fn an_ordinary_request_routes_on_its_host() {
        let host = h11("/a?b=c", &[("host", b"api.example.com:8000")]).unwrap();
        assert_eq!(host.unwrap(), "api.example.com:8000");
        // HTTP/1.0 may omit Host; HTTP/2 carries the authority.
        assert_eq!(check(&req(Version::HTTP_10, "/", &[])).unwrap(), None);
        let h2 = check(&req(Version::HTTP_2, "http://api.example.com/x", &[])).unwrap();
        assert_eq!(h2.unwrap(), "api.example.com");
    }

    #[test]
    fn host_problems_are_refused() {
        assert!(matches!(h11("/", &[]), Err(Error::MissingHost)));
        assert!(matches!(
            h11("/", &[("host", b"a"), ("host", b"b")]),
            Err(Error::AmbiguousHost)
        ));
        for bad in [&b"user@a.example"[..], b"a b", b"a%2eb", b"a/b"] {
            assert!(
                matches!(h11("/", &[("host", bad)]), Err(Error::InvalidHost(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            h11("http://evil.example/", &[("host", b"good.example")]),
            Err(Error::HostMismatch)
        ));
        assert!(matches!(
            h11("http://user@good.example/", &[("host", b"good.example")]),
            Err(Error::InvalidHost(_))
        ));
        assert!(matches!(
            h11("ftp://good.example/", &[("host", b"good.example")]),
            Err(Error::InvalidHost(_))
        ));
        // Absolute form agreeing with Host (any case) is fine.
        assert!(h11("http://Good.example/", &[("host", b"good.example")]).is_ok());
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_refused() {
        let host: (&str, &[u8]) = ("host", b"a");
        assert!(h11("/", &[host, ("transfer-encoding", b"chunked")]).is_ok());
        assert!(h11("/", &[host, ("transfer-encoding", b"Chunked")]).is_ok());
        assert!(matches!(
            h11("/", &[host, ("transfer-encoding", b"gzip, chunked")]),
            Err(Error::UnsupportedTransferEncoding)
        ));
        assert!(matches!(
            h11(
                "/",
                &[
                    host,
                    ("transfer-encoding", b"chunked"),
                    ("transfer-encoding", b"chunked")
                ]
            ),
            Err(Error::InvalidFraming(_))
        ));
    }

    #[test]
    fn underscores_in_names_and_long_targets_are_refused() {
        let host: (&str, &[u8]) = ("host", b"a");
        assert!(matches!(
            h11("/", &[host, ("x_forwarded_for", b"1.2.3.4")]),
            Err(Error::InvalidHeader(_))
        ));
        let long = format!("/{}", "a".repeat(MAX_REQUEST_TARGET));
        assert!(matches!(h11(&long, &[host]), Err(Error::UriTooLong(_))));
        let fits = format!("/{}", "a".repeat(MAX_REQUEST_TARGET - 1));
        assert!(h11(&fits, &[host]).is_ok());
    }

    #[test]
    fn ambiguous_upstream_framing_is_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(check_response(&headers(&[("content-length", "5")])).is_ok());
        assert!(check_response(&headers(&[("transfer-encoding", "chunked")])).is_ok());
        for bad in [
            &[("content-length", "5"), ("transfer-encoding", "chunked")][..],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "5, 5")],
            &[("content-length", "")],
        ] {
            assert!(
                matches!(
                    check_response(&headers(bad)),
                    Err(Error::UpstreamFraming(_))
                ),
                "{bad:?}"
            );
        }
    }
}
