//! Passed fields: the same fields, in the same order, as the map the
//! decoder would have made; a map wherever bytes cannot stand for it.

use bytes::BytesMut;
use http::HeaderMap;
use proptest::prelude::*;

use super::super::decode::{Head, response_head};
use super::super::names::Names;

fn decode(text: &str, pass: bool) -> Head {
    response_head(
        &mut BytesMut::from(text),
        false,
        &mut Names::default(),
        pass,
    )
    .unwrap()
    .unwrap()
}

/// The passed lines, as written, read back into a map.
fn written(head: &Head) -> (String, HeaderMap) {
    let mut out = Vec::new();
    head.passed.as_ref().expect("passed").write(&mut out);
    let text = String::from_utf8(out).unwrap();
    let mut map = HeaderMap::new();
    for line in text.split_terminator("\r\n") {
        let (name, value) = line.split_once(':').unwrap();
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    (text, map)
}

#[test]
fn the_lines_that_go_on_are_written_as_they_came() {
    let text = "HTTP/1.1 200 OK\r\nServer: o\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\n\
                Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nContent-Type: text/plain\r\n\
                X-Request-Id: upstream\r\nContent-Length: 5\r\n\r\n";
    let h = decode(text, true);
    assert!(h.headers.is_empty());
    let p = h.passed.as_ref().unwrap();
    assert!(p.date);
    assert_eq!(p.length, Some(5));
    let (lines, _) = written(&h);
    assert_eq!(
        lines,
        "Server: o\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\nContent-Type: text/plain\r\n\
         Content-Length: 5\r\n"
    );
}

#[test]
fn the_proxys_request_id_follows_the_passed_lines_in_place_of_the_upstreams() {
    let text = "HTTP/1.1 200 OK\r\nX-Request-Id: upstream\r\nServer: o\r\n\r\n";
    let mut h = decode(text, true);
    h.passed.as_mut().unwrap().request_id = Some(http::HeaderValue::from_static("r-1"));
    let (lines, map) = written(&h);
    assert_eq!(lines, "Server: o\r\nx-request-id: r-1\r\n");
    assert_eq!(map.get_all("x-request-id").iter().count(), 1);
}

#[test]
fn a_chunked_or_close_delimited_answer_passes_with_no_length() {
    let h = decode(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
        true,
    );
    assert_eq!(written(&h).0, "X-A: 1\r\n");
    assert_eq!(h.passed.as_ref().unwrap().length, None);
    let h = decode("HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\n", true);
    assert_eq!(written(&h).0, "X-A: 1\r\n");
}

#[test]
fn a_map_is_made_where_bytes_cannot_stand_for_it() {
    // Not asked for.
    let h = decode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
    assert!(h.passed.is_none() && h.headers.len() == 1);
    // A bare LF would reach the client as it came.
    let h = decode("HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 0\n\n", true);
    assert!(h.passed.is_none() && h.headers.len() == 2);
    let h = decode("HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n", true);
    assert!(h.passed.is_none() && h.headers.len() == 2);
    // Five runs between hop-by-hop lines.
    let h = decode(
        "HTTP/1.1 200 OK\r\nA: 1\r\nKeep-Alive: x\r\nB: 1\r\nKeep-Alive: x\r\nC: 1\r\n\
         Keep-Alive: x\r\nD: 1\r\nKeep-Alive: x\r\nE: 1\r\nContent-Length: 0\r\n\r\n",
        true,
    );
    assert!(h.passed.is_none());
    assert_eq!(h.headers.len(), 6);
    // No body, or another protocol after it: its fields are a map.
    for text in [
        "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nX-A: 1\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ] {
        assert!(decode(text, true).passed.is_none(), "{text}");
    }
    let h = response_head(
        &mut BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
        true,
        &mut Names::default(),
        true,
    );
    assert!(h.unwrap().unwrap().passed.is_none());
}

#[test]
fn a_head_of_hop_by_hop_fields_only_passes_nothing() {
    let h = decode(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        true,
    );
    assert_eq!(written(&h).0, "");
    assert!(!h.passed.as_ref().unwrap().date);
}

fn field() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        Just("Content-Type".to_owned()),
        Just("Date".to_owned()),
        Just("Connection".to_owned()),
        Just("Keep-Alive".to_owned()),
        Just("X-Request-Id".to_owned()),
        Just("Trailer".to_owned()),
        Just("X-Named".to_owned()),
        "[A-Za-z][A-Za-z0-9-]{0,8}",
    ];
    let value = prop_oneof![
        Just("close".to_owned()),
        Just("keep-alive, X-Named".to_owned()),
        "[ -~]{0,12}".prop_map(|v| v.trim().to_owned()),
    ];
    (name, value)
}

proptest! {
    /// Whatever the head, the passed lines read back as the map the
    /// decoder makes of it: the same fields, values and order.
    #[test]
    fn passed_lines_read_back_as_the_map(fields in prop::collection::vec(field(), 0..12)) {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for (n, v) in &fields {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let Some(map) = response_head(
            &mut BytesMut::from(text.as_str()), false, &mut Names::default(), false,
        ).ok().flatten().map(|h| h.headers) else {
            return Ok(());
        };
        let h = decode(&text, true);
        // (Removing from a map moves its last entry into the hole.)
        let mut expected = HeaderMap::new();
        for (n, v) in map.iter().filter(|(n, _)| **n != crate::proxy::request_id::X_REQUEST_ID) {
            expected.append(n.clone(), v.clone());
        }
        if h.passed.is_some() {
            prop_assert!(h.headers.is_empty());
            let (_, got) = written(&h);
            let order = |m: &HeaderMap| m.iter().map(|(n, v)| (n.clone(), v.clone())).collect::<Vec<_>>();
            prop_assert_eq!(order(&got), order(&expected));
        } else {
            prop_assert_eq!(h.headers, map);
        }
    }
}

/// A value the map would refuse (its bytes checked one by one) is refused
/// when passed too: httparse's check is the same.
#[test]
fn every_byte_a_value_may_hold_is_judged_as_the_map_judges_it() {
    for b in 0..=255u8 {
        let mut text = b"HTTP/1.1 200 OK\r\nX-A: a".to_vec();
        text.push(b);
        text.extend_from_slice(b"b\r\nContent-Length: 0\r\n\r\n");
        let judge = |pass| {
            response_head(
                &mut BytesMut::from(&text[..]),
                false,
                &mut Names::default(),
                pass,
            )
            .map(|h| h.is_some())
        };
        assert_eq!(judge(true).is_ok(), judge(false).is_ok(), "byte {b:#x}");
    }
}
