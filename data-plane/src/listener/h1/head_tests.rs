use bytes::BytesMut;
use http::{Method, StatusCode, Version};

use super::*;

fn parse_str(s: &str) -> Result<Option<Head>, Error> {
    let mut buf = BytesMut::from(s);
    parse(&mut buf, &mut Names::default(), 100, 64 * 1024)
}

fn head(s: &str) -> Head {
    parse_str(s).unwrap().expect("a complete head")
}

fn status(s: &str) -> StatusCode {
    parse_str(s).expect_err("refused").status()
}

#[test]
fn a_head_becomes_the_requests_parts_and_leaves_what_follows() {
    let mut buf =
        BytesMut::from("GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next");
    let h = parse(&mut buf, &mut Names::default(), 100, 64 * 1024)
        .unwrap()
        .unwrap();
    assert_eq!(h.parts.method, Method::GET);
    assert_eq!(h.parts.uri, "/a?b=c");
    assert_eq!(h.parts.version, Version::HTTP_11);
    assert_eq!(h.parts.headers["host"], "h");
    let xa: Vec<_> = h.parts.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(h.framing, Framing::None);
    assert!(h.keep_alive && !h.expect_continue && !h.upgrade);
    assert_eq!(&buf[..], b"GET /next");
}

#[test]
fn incomplete_heads_wait_and_bad_ones_are_refused_before_they_end() {
    assert!(
        parse_str("GET / HTTP/1.1\r\nHost: h\r\n")
            .unwrap()
            .is_none()
    );
    assert!(parse_str("").unwrap().is_none());
    assert_eq!(status("GET / HTTP/1.1\r\nHo\0st: h\r\n"), 400);
}

#[test]
fn framing_follows_the_length_or_chunked() {
    let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(5));
    let h = head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(h.framing, Framing::None);
    let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(5));
    let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, CHUNKED \r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(h.keep_alive);
    // Both: chunked, and the connection does not carry another request.
    let h = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(!h.keep_alive);
}

#[test]
fn ambiguous_or_malformed_framing_is_refused() {
    for cl in [
        "5, 5",
        "+5",
        "-1",
        "0x10",
        "",
        "1 0",
        "five",
        "18446744073709551616",
    ] {
        let req = format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(status(&req), 400, "{cl:?}");
    }
    assert_eq!(
        status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        400
    );
    for te in ["xchunked", "chunked, identity", "\"chunked\""] {
        let req = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert_eq!(status(&req), 400, "{te:?}");
    }
    assert_eq!(
        status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
}

#[test]
fn bad_syntax_and_unknown_versions_are_400() {
    assert_eq!(status("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nX-A : a\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"), 400);
    assert_eq!(status("GET  / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.2\r\n\r\n"), 400);
    assert_eq!(status("GE T / HTTP/1.1\r\n\r\n"), 400);
}

#[test]
fn limits_give_431() {
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    let mut buf = BytesMut::from(format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(200)).as_str());
    let e = parse(&mut buf, &mut Names::default(), 100, 128).unwrap_err();
    assert_eq!(e.status(), 431);
}

#[test]
fn connection_fields_say_whether_to_keep_alive() {
    assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    let h = head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue);
    let h = head("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(h.upgrade);
    assert!(head("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n").upgrade);
}

#[test]
fn bare_line_feeds_end_lines() {
    let h = head("GET /x HTTP/1.1\nHost: h\n\n");
    assert_eq!(h.parts.headers["host"], "h");
}

#[test]
fn long_unfinished_heads_are_checked_once_complete() {
    // Past the early check, bad bytes wait for the head's end...
    let long = format!(
        "GET / HTTP/1.1\r\nX-A: {}\r\nX-\0: b\r\n",
        "a".repeat(EARLY_CHECK_MAX)
    );
    assert!(parse_str(&long).unwrap().is_none());
    // ...and are refused then.
    assert_eq!(status(&format!("{long}\r\n")), 400);
}
