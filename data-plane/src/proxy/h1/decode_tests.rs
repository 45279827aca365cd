//! Response heads: framing, keep-alive, limits, zero-copy values.

use super::*;

fn buf(s: &[u8]) -> BytesMut {
    BytesMut::from(s)
}

/// A head parsed with a connection's first names, its fields as a map.
pub(super) fn parse(b: &mut BytesMut, head_request: bool) -> Result<Option<Head>, Invalid> {
    response_head(b, head_request, &mut Names::default(), false)
}

fn head(s: &str) -> Head {
    parse(&mut buf(s.as_bytes()), false).unwrap().unwrap()
}

fn head_err(s: &str) -> &'static str {
    parse(&mut buf(s.as_bytes()), false).unwrap_err().0
}

fn framing_of(s: &str) -> (Framing, bool) {
    let h = head(s);
    (h.framing, h.keep_alive)
}

const SIMPLE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n";

#[test]
fn complete_head_with_content_length() {
    let mut b = buf(format!("{SIMPLE}hello").as_bytes());
    let h = parse(&mut b, false).unwrap().unwrap();
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.framing, Framing::Length(5));
    assert!(h.keep_alive);
    assert_eq!(h.headers.len(), 2);
    assert_eq!(h.headers["x-a"], "b");
    assert_eq!(&b[..], b"hello");
}

#[test]
fn head_fed_one_byte_at_a_time() {
    let wire = format!("{SIMPLE}hel");
    let mut b = BytesMut::new();
    for (i, &byte) in wire.as_bytes().iter().enumerate() {
        b.extend_from_slice(&[byte]);
        let got = parse(&mut b, false).unwrap();
        if i + 1 < SIMPLE.len() {
            assert!(got.is_none(), "complete early at {i}");
            assert_eq!(b.len(), i + 1, "bytes consumed while incomplete");
        } else {
            let h = got.unwrap();
            assert_eq!(h.framing, Framing::Length(5));
            assert_eq!(h.headers["x-a"], "b");
            assert!(b.is_empty());
            // The remaining body bytes must not be taken for a head.
            b.extend_from_slice(&wire.as_bytes()[i + 1..]);
            assert_eq!(&b[..], b"hel");
            return;
        }
    }
    unreachable!();
}

#[test]
fn head_split_at_every_offset() {
    let wire = format!("{SIMPLE}hello");
    for cut in 0..=wire.len() {
        let mut b = buf(&wire.as_bytes()[..cut]);
        let first = parse(&mut b, false).unwrap();
        assert_eq!(first.is_some(), cut >= SIMPLE.len(), "cut {cut}");
        b.extend_from_slice(&wire.as_bytes()[cut..]);
        let h = match first {
            Some(h) => h,
            None => parse(&mut b, false).unwrap().unwrap(),
        };
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(&b[..], b"hello", "cut {cut}");
    }
}

#[test]
fn pipelined_heads_leave_the_rest_in_buf() {
    let second = "HTTP/1.1 204 No Content\r\nX-N: 2\r\n\r\n";
    let mut b = buf(format!("{SIMPLE}hello{second}").as_bytes());
    let h = parse(&mut b, false).unwrap().unwrap();
    assert_eq!(h.framing, Framing::Length(5));
    let _ = b.split_to(5);
    assert_eq!(&b[..], second.as_bytes());
    let h2 = parse(&mut b, false).unwrap().unwrap();
    assert_eq!(h2.status, StatusCode::NO_CONTENT);
    assert_eq!(h2.headers["x-n"], "2");
    assert!(b.is_empty());
}

#[test]
fn header_values_are_zero_copy() {
    let mut b = buf(format!("{SIMPLE}hello").as_bytes());
    let start = b.as_ptr() as usize;
    let end = start + b.len();
    let h = parse(&mut b, false).unwrap().unwrap();
    for v in h.headers.values() {
        let p = v.as_bytes().as_ptr() as usize;
        assert!(
            p >= start && p + v.len() <= end,
            "value copied out of the buffer"
        );
    }
    let p = h.headers["x-a"].as_bytes().as_ptr() as usize;
    assert_eq!(p - start, SIMPLE.find("b\r\n").unwrap());
}

#[test]
fn repeated_fields_and_name_case_are_kept() {
    let h =
        head("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\nContent-Length: 0\r\n\r\n");
    let all: Vec<_> = h.headers.get_all("set-cookie").iter().collect();
    assert_eq!(all, ["a=1", "b=2"]);
    assert_eq!(h.framing, Framing::Length(0));
}

#[test]
fn no_content_204_ignores_body_fields() {
    let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n");
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    let h = head("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Empty);
}

/// The fields of an answer with no body go to the client as they are, so
/// they are held to the same rules as any other's.
#[test]
fn bodiless_answers_with_ambiguous_framing_fields_are_refused() {
    for status in ["204 No Content", "304 Not Modified", "200 OK"] {
        for fields in [
            "Content-Length: 7\r\nTransfer-Encoding: chunked",
            "Content-Length: 7\r\nContent-Length: 7",
            "Content-Length: 7, 7",
            "Content-Length: seven",
        ] {
            let text = format!("HTTP/1.1 {status}\r\n{fields}\r\n\r\n");
            // A 200 has no body only as the answer to a HEAD.
            let head_request = status == "200 OK";
            let got = parse(&mut buf(text.as_bytes()), head_request);
            assert!(got.is_err(), "{status} with {fields:?} was accepted");
        }
    }
}

#[test]
fn not_modified_304_is_empty() {
    assert_eq!(
        framing_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
        (Framing::Empty, true)
    );
}

#[test]
fn head_request_is_empty_whatever_the_fields_say() {
    let mut b = buf(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nNEXT");
    let h = parse(&mut b, true).unwrap().unwrap();
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    assert_eq!(h.headers["content-length"], "10");
    assert_eq!(&b[..], b"NEXT");
    let mut chunked = buf(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    let h = parse(&mut chunked, true).unwrap().unwrap();
    assert_eq!(h.framing, Framing::Empty);
}

#[test]
fn head_request_still_rejects_malformed_fields() {
    let mut b = buf(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n");
    assert!(parse(&mut b, true).is_err());
}

#[test]
fn informational_100_is_returned_with_the_final_head_left() {
    let mut b = buf(format!("HTTP/1.1 100 Continue\r\n\r\n{SIMPLE}").as_bytes());
    let h = parse(&mut b, false).unwrap().unwrap();
    assert_eq!(h.status, StatusCode::CONTINUE);
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    assert_eq!(&b[..], SIMPLE.as_bytes());
    assert_eq!(
        parse(&mut b, false).unwrap().unwrap().status,
        StatusCode::OK
    );
}

#[test]
fn switching_protocols_101_is_not_reusable() {
    let (f, ka) = framing_of(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    );
    assert_eq!((f, ka), (Framing::Empty, false));
}

#[test]
fn http10_closes_by_default() {
    let h = head("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(h.version, Version::HTTP_10);
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(3), false));
}

#[test]
fn http10_keep_alive_token_allows_reuse() {
    let got = framing_of("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(got, (Framing::Length(3), true));
}

#[test]
fn http10_keep_alive_without_length_still_closes() {
    assert_eq!(
        framing_of("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"),
        (Framing::Close, false)
    );
}

#[test]
fn connection_close_anywhere_in_the_list_wins() {
    let msg = "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(framing_of(msg), (Framing::Length(1), false));
    let msg = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: CLOSE\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(framing_of(msg), (Framing::Length(1), false));
}

#[test]
fn connection_and_what_it_names_stay_out_of_the_map_unless_it_upgrades() {
    let names = |msg: &str| {
        let head = parse(&mut buf(msg.as_bytes()), false).unwrap().unwrap();
        head.headers
            .keys()
            .map(|n| n.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let plain = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(names(plain), ["content-length"]);
    let named = "HTTP/1.1 200 OK\r\nConnection: close, x-a\r\nx-a: 1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(names(named), ["content-length"]);
    let upgrade =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(names(upgrade), ["connection", "upgrade"]);
}

#[test]
fn connection_tokens_match_whole_words_only() {
    let msg = "HTTP/1.1 200 OK\r\nConnection: closed, x-close\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(framing_of(msg), (Framing::Length(1), true));
}

#[test]
fn content_length_with_transfer_encoding_is_rejected() {
    let msg = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(head_err(msg), "Content-Length with Transfer-Encoding");
}

#[test]
fn duplicate_content_length_is_rejected_even_when_equal() {
    let same = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    let diff = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n";
    assert_eq!(head_err(same), "more than one Content-Length");
    assert_eq!(head_err(diff), "more than one Content-Length");
}

#[test]
fn content_length_list_is_rejected() {
    assert_eq!(
        head_err("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n"),
        "more than one Content-Length"
    );
    assert_eq!(
        head_err("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n"),
        "more than one Content-Length"
    );
}

#[test]
fn content_length_must_be_plain_digits() {
    for bad in ["+5", "-1", "5 5", "0x5", "5a", "", "٥"] {
        let msg = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(head_err(&msg), "Content-Length is not a number", "{bad:?}");
    }
}

#[test]
fn content_length_surrounding_whitespace_is_stripped() {
    let got = framing_of("HTTP/1.1 200 OK\r\nContent-Length:  5 \t\r\n\r\n");
    assert_eq!(got, (Framing::Length(5), true));
}

#[test]
fn content_length_bounds() {
    let max = "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n";
    assert_eq!(
        head(max).framing,
        Framing::Length(9_999_999_999_999_999_999)
    );
    let twenty = "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n";
    assert!(parse(&mut buf(twenty.as_bytes()), false).is_err());
    let zero = "HTTP/1.1 200 OK\r\nContent-Length: 000\r\n\r\n";
    assert_eq!(head(zero).framing, Framing::Length(0));
}

#[test]
fn transfer_encoding_chunked_last_is_chunked() {
    let msg = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
    assert_eq!(framing_of(msg), (Framing::Chunked, true));
    let split = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(framing_of(split), (Framing::Chunked, true));
}

#[test]
fn transfer_encoding_chunked_not_last_is_rejected() {
    let msg = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert!(parse(&mut buf(msg.as_bytes()), false).is_err());
    let split = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert!(parse(&mut buf(split.as_bytes()), false).is_err());
    let twice = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n";
    assert!(parse(&mut buf(twice.as_bytes()), false).is_err());
}

#[test]
fn bodiless_statuses_ignore_a_bad_transfer_encoding() {
    let msg = "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(framing_of(msg), (Framing::Empty, true));
    let msg = "HTTP/1.1 100 Continue\r\nTransfer-Encoding:\r\n\r\n";
    assert_eq!(framing_of(msg), (Framing::Empty, true));
}

#[test]
fn length_with_any_transfer_encoding_is_the_conflict_error() {
    let msg = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(head_err(msg), "Content-Length with Transfer-Encoding");
}

#[test]
fn transfer_encoding_without_chunked_reads_to_close() {
    assert_eq!(
        framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        (Framing::Close, false)
    );
}

#[test]
fn empty_transfer_encoding_is_rejected() {
    assert_eq!(
        head_err("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"),
        "empty Transfer-Encoding"
    );
    assert_eq!(
        head_err("HTTP/1.1 200 OK\r\nTransfer-Encoding: , \r\n\r\n"),
        "empty Transfer-Encoding"
    );
}

#[test]
fn transfer_encoding_in_http10_is_rejected() {
    assert!(
        parse(
            &mut buf(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            false
        )
        .is_err()
    );
}

#[test]
fn no_framing_fields_reads_to_close() {
    assert_eq!(
        framing_of("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n"),
        (Framing::Close, false)
    );
}

#[test]
fn obs_fold_is_rejected() {
    let msg = "HTTP/1.1 200 OK\r\nX-A: b\r\n  folded\r\nContent-Length: 0\r\n\r\n";
    assert!(parse(&mut buf(msg.as_bytes()), false).is_err());
}

#[test]
fn header_count_limit() {
    let fields = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    let ok = format!("HTTP/1.1 200 OK\r\n{}\r\n", fields(MAX_HEADERS));
    assert_eq!(head(&ok).headers.len(), MAX_HEADERS);
    let over = format!("HTTP/1.1 200 OK\r\n{}\r\n", fields(MAX_HEADERS + 1));
    assert_eq!(head_err(&over), "too many response headers");
}

#[test]
fn head_size_limit() {
    let fill = |total: usize| {
        let pre = "HTTP/1.1 200 OK\r\nX-Pad: ";
        let post = "\r\nContent-Length: 0\r\n\r\n";
        format!("{pre}{}{post}", "a".repeat(total - pre.len() - post.len()))
    };
    assert_eq!(head(&fill(MAX_HEAD)).framing, Framing::Length(0));
    assert_eq!(head_err(&fill(MAX_HEAD + 1)), "response head too large");
    // An incomplete head that has already outgrown the limit is not waited on.
    let partial = fill(MAX_HEAD + 100);
    let mut b = buf(&partial.as_bytes()[..MAX_HEAD + 10]);
    assert_eq!(
        parse(&mut b, false).unwrap_err(),
        Invalid("response head too large")
    );
}

#[test]
fn bad_status_lines_are_rejected() {
    for bad in [
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    ] {
        assert!(parse(&mut buf(bad.as_bytes()), false).is_err(), "{bad:?}");
    }
}

#[test]
fn invalid_displays_its_reason() {
    let e: Box<dyn std::error::Error> = Box::new(Invalid("bad chunk size"));
    assert_eq!(e.to_string(), "bad chunk size");
}
