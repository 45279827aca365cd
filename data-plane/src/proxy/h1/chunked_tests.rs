//! Chunked bodies: sizes, extensions, trailers, every split point.

use super::*;

fn buf(s: &[u8]) -> BytesMut {
    BytesMut::from(s)
}

/// Runs the decoder until End or until it needs more, collecting what it gave.
#[derive(Default)]
struct Body {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    ended: bool,
}

fn pump(dec: &mut Chunked, b: &mut BytesMut, out: &mut Body) -> Result<(), Invalid> {
    while !out.ended {
        match dec.decode(b)? {
            None => return Ok(()),
            Some(Chunk::Data(d)) => {
                assert!(!d.is_empty(), "Data must never be empty");
                out.data.extend_from_slice(&d);
            }
            Some(Chunk::Trailers(t)) => {
                assert!(out.trailers.is_none());
                out.trailers = Some(t);
            }
            Some(Chunk::End) => out.ended = true,
        }
    }
    Ok(())
}

fn body(s: &[u8]) -> Result<(Body, BytesMut), Invalid> {
    let mut b = buf(s);
    let mut out = Body::default();
    pump(&mut Chunked::new(), &mut b, &mut out)?;
    Ok((out, b))
}

fn body_err(s: &[u8]) -> &'static str {
    match body(s) {
        Err(e) => e.0,
        Ok((b, _)) => panic!("accepted: ended={} data={:?}", b.ended, b.data),
    }
}

const ENCODED: &[u8] =
    b"5\r\nhello\r\n1;ext=\"q\"\r\n \r\nB\r\nworld, and \r\n0\r\nX-Sum: abc\r\nX-More: 1\r\n\r\n";

#[test]
fn one_chunk() {
    let (b, rest) = body(b"5\r\nhello\r\n0\r\n\r\n").unwrap();
    assert_eq!(
        (b.data.as_slice(), b.trailers.is_none(), b.ended),
        (&b"hello"[..], true, true)
    );
    assert!(rest.is_empty());
}

#[test]
fn many_chunks_with_trailers() {
    let (b, rest) = body(ENCODED).unwrap();
    assert_eq!(b.data, b"hello world, and ");
    let t = b.trailers.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t["x-sum"], "abc");
    assert_eq!(t["x-more"], "1");
    assert!(b.ended && rest.is_empty());
}

#[test]
fn chunked_split_at_every_byte_boundary() {
    for cut in 0..=ENCODED.len() {
        let mut dec = Chunked::new();
        let mut out = Body::default();
        let mut b = buf(&ENCODED[..cut]);
        pump(&mut dec, &mut b, &mut out).unwrap();
        assert!(!out.ended || cut == ENCODED.len());
        b.extend_from_slice(&ENCODED[cut..]);
        pump(&mut dec, &mut b, &mut out).unwrap();
        assert_eq!(out.data, b"hello world, and ", "cut {cut}");
        assert_eq!(out.trailers.unwrap()["x-sum"], "abc");
        assert!(out.ended && b.is_empty());
    }
}

#[test]
fn chunked_fed_one_byte_at_a_time() {
    let mut dec = Chunked::new();
    let mut out = Body::default();
    let mut b = BytesMut::new();
    for &byte in ENCODED {
        assert!(!out.ended);
        b.extend_from_slice(&[byte]);
        pump(&mut dec, &mut b, &mut out).unwrap();
    }
    assert_eq!(out.data, b"hello world, and ");
    assert!(out.trailers.is_some() && out.ended && b.is_empty());
}

#[test]
fn data_is_returned_before_the_chunk_is_complete() {
    let mut dec = Chunked::new();
    let mut b = buf(b"a\r\nhel");
    assert!(matches!(dec.decode(&mut b).unwrap(), Some(Chunk::Data(d)) if d == "hel"));
    assert!(dec.decode(&mut b).unwrap().is_none());
    b.extend_from_slice(b"lo12345\r\n0\r\n\r\n");
    assert!(matches!(dec.decode(&mut b).unwrap(), Some(Chunk::Data(d)) if d == "lo12345"));
    assert!(matches!(dec.decode(&mut b).unwrap(), Some(Chunk::End)));
}

#[test]
fn chunk_data_is_zero_copy() {
    let mut b = buf(b"5\r\nhello\r\n0\r\n\r\n");
    let start = b.as_ptr() as usize;
    let Some(Chunk::Data(d)) = Chunked::new().decode(&mut b).unwrap() else {
        panic!("no data")
    };
    assert_eq!(d.as_ptr() as usize, start + 3);
}

#[test]
fn chunk_extensions_are_ignored() {
    let (b, _) = body(b"5;a=b\r\nhello\r\n0;last\r\n\r\n").unwrap();
    assert_eq!((b.data.as_slice(), b.ended), (&b"hello"[..], true));
}

#[test]
fn extensions_with_a_line_break_or_past_the_limit_are_rejected() {
    assert_eq!(
        body_err(b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
        "CR or LF in a chunk extension"
    );
    assert_eq!(body_err(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), "bad chunk size");
    let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(MAX_EXTENSIONS));
    assert_eq!(body_err(long.as_bytes()), "chunk extensions too long");
    // The limit is the body's: many small extensions add up.
    let ext = "e".repeat(1000);
    let many: String = (0..17).map(|_| format!("1;{ext}\r\nx\r\n")).collect();
    assert_eq!(
        body_err(format!("{many}0\r\n\r\n").as_bytes()),
        "chunk extensions too long"
    );
    let fewer: String = (0..15).map(|_| format!("1;{ext}\r\nx\r\n")).collect();
    assert!(body(format!("{fewer}0\r\n\r\n").as_bytes()).is_ok());
}

#[test]
fn uppercase_hex_sizes() {
    let (b, _) =
        body(b"A\r\n0123456789\r\n1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n").unwrap();
    assert_eq!(b.data.len(), 10 + 31);
}

#[test]
fn bad_chunk_sizes_are_rejected() {
    for bad in [
        &b"g\r\nx"[..],
        b"\r\n\r\n",
        b";ext\r\n\r\n",
        b"-5\r\n",
        b" 5\r\n",
        b"5\n",
    ] {
        assert_eq!(
            body_err(bad),
            "bad chunk size",
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn missing_crlf_after_data_is_rejected() {
    assert_eq!(
        body_err(b"5\r\nhelloX\r\n0\r\n\r\n"),
        "chunk not followed by CRLF"
    );
    assert_eq!(
        body_err(b"5\r\nhello\n0\r\n\r\n"),
        "chunk not followed by CRLF"
    );
    assert_eq!(
        body_err(b"5\r\nhello\rX0\r\n\r\n"),
        "chunk not followed by CRLF"
    );
    assert_eq!(
        body_err(b"3\r\nhello\r\n0\r\n\r\n"),
        "chunk not followed by CRLF"
    );
}

#[test]
fn chunk_size_overflow_is_rejected() {
    assert_eq!(body_err(b"10000000001\r\n"), "chunk size too large");
    assert_eq!(body_err(b"fffffffffffffffff\r\n"), "bad chunk size");
    let mut b = buf(b"10000000000\r\nab");
    assert!(matches!(Chunked::new().decode(&mut b).unwrap(), Some(Chunk::Data(d)) if d == "ab"));
}

#[test]
fn empty_trailer_section_ends_directly() {
    let mut dec = Chunked::new();
    let mut b = buf(b"0\r\n\r\n");
    assert!(matches!(dec.decode(&mut b).unwrap(), Some(Chunk::End)));
    assert!(b.is_empty());
}

#[test]
fn trailers_come_before_end() {
    let mut dec = Chunked::new();
    let mut b = buf(b"0\r\nX-Sum: abc\r\n\r\n");
    let Some(Chunk::Trailers(t)) = dec.decode(&mut b).unwrap() else {
        panic!("no trailers")
    };
    assert_eq!(t["x-sum"], "abc");
    assert!(b.is_empty());
    assert!(matches!(dec.decode(&mut b).unwrap(), Some(Chunk::End)));
}

#[test]
fn incomplete_trailers_consume_nothing() {
    let mut dec = Chunked::new();
    let mut b = buf(b"0\r\nX-Sum: ab");
    assert!(dec.decode(&mut b).unwrap().is_none());
    assert_eq!(&b[..], b"X-Sum: ab");
    b.extend_from_slice(b"c\r\n\r\nNEXT");
    let Some(Chunk::Trailers(t)) = dec.decode(&mut b).unwrap() else {
        panic!("no trailers")
    };
    assert_eq!(t["x-sum"], "abc");
    assert!(matches!(dec.decode(&mut b).unwrap(), Some(Chunk::End)));
    assert_eq!(&b[..], b"NEXT");
}

#[test]
fn oversized_or_malformed_trailers_are_rejected() {
    let mut big = b"0\r\nX-Pad: ".to_vec();
    big.resize(MAX_HEAD + 10, b'a');
    assert_eq!(body_err(&big), "trailer section too large");
    assert_eq!(
        body_err(b"0\r\nX-A: b\r\n folded\r\n\r\n"),
        "bad trailer section"
    );
}

#[test]
fn leftover_after_end_stays_in_buf() {
    const SIMPLE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let (b, rest) = body(format!("2\r\nhi\r\n0\r\n\r\n{SIMPLE}").as_bytes()).unwrap();
    assert!(b.ended);
    assert_eq!(&rest[..], SIMPLE.as_bytes());
}

#[test]
fn httparse_reads_a_bare_crlf_as_an_empty_field_section() {
    let mut storage = [httparse::EMPTY_HEADER; 4];
    let got = httparse::parse_headers(b"\r\nrest", &mut storage).unwrap();
    assert!(matches!(got, httparse::Status::Complete((2, f)) if f.is_empty()));
}
