//! Where a response head ends: the scan that finds it, against httparse.

use super::tests::parse;
use super::*;

fn buf(s: &[u8]) -> BytesMut {
    BytesMut::from(s)
}

/// httparse's own answer for `bytes`: where the head ends, `None` while it
/// is incomplete, `Err` for a head it refuses.
fn httparse_end(bytes: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut fields);
    Ok(match res.parse(bytes)? {
        httparse::Status::Complete(n) => Some(n),
        httparse::Status::Partial => None,
    })
}

#[test]
fn the_end_of_head_scan_agrees_with_httparse_at_every_cut() {
    // The head is found by a scan and parsed once: wherever httparse
    // would call a head complete, the scan must end it at the same byte,
    // and never end one httparse would still wait for.
    for wire in [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        "HTTP/1.1 200 OK\r\nX-A: b\n\r\nok",
        "HTTP/1.1 204 No Content\n\r\n",
        "\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n\r\n",
    ] {
        let wire = wire.as_bytes();
        for cut in 0..=wire.len() {
            let part = &wire[..cut];
            let want = httparse_end(part).expect("a valid head");
            assert_eq!(head_end(part), want, "{:?}", String::from_utf8_lossy(part));
        }
        let mut b = buf(wire);
        let h = parse(&mut b, false).unwrap().unwrap();
        assert!(h.status.is_success(), "{wire:?}");
    }
}

#[test]
fn a_bare_carriage_return_is_refused_not_waited_on() {
    for bad in [
        "HTTP/1.1 200 OK\r\nX-A: b\r\r\n\r\n",
        "HTTP/1.1 200 OK\rX-A: b\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\rX\r\n\r\n",
    ] {
        assert!(httparse_end(bad.as_bytes()).is_err(), "{bad:?}");
        assert!(parse(&mut buf(bad.as_bytes()), false).is_err(), "{bad:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

    /// Heads made of the pieces line endings are made of: where httparse
    /// completes one the scan ends it at the same byte, and where httparse
    /// waits for more the scan finds no end (an end it would take for a
    /// head httparse refuses is refused by the parse that follows).
    #[test]
    fn the_scan_never_disagrees_with_a_parse_that_succeeds(
        pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                "HTTP/1.1 200 OK", "\r\n", "\n", "\r", "X-A: b", ":", " ", "a",
            ]),
            0..24,
        )
    ) {
        let wire = pieces.concat();
        match httparse_end(wire.as_bytes()) {
            Ok(want) => proptest::prop_assert_eq!(head_end(wire.as_bytes()), want),
            Err(_) => {
                let r = parse(&mut buf(wire.as_bytes()), false);
                proptest::prop_assert!(!matches!(r, Ok(Some(_))));
            }
        }
    }
}

#[test]
fn an_incomplete_head_that_is_not_http_is_refused_before_it_ends() {
    // No empty line will ever come from an SSH server: refused at once, not
    // waited on until the read timeout.
    let mut b = buf(b"SSH-2.0-OpenSSH_9.2\r\n");
    assert_eq!(
        parse(&mut b, false).unwrap_err(),
        Invalid("bad HTTP version")
    );
    // A valid beginning is waited on.
    let mut b = buf(b"HTTP/1.1 200 OK\r\nX-A: b\r\n");
    assert!(parse(&mut b, false).unwrap().is_none());
}
