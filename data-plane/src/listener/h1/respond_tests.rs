use std::future::poll_fn;

use bytes::Bytes;
use http::Response;
use http_body_util::{Full, StreamBody};

use super::*;

const ASKED: Asked = Asked {
    head: false,
    http10: false,
    close: false,
    trailers: false,
};

fn parts(status: u16, headers: &[(&str, &str)]) -> Parts {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn head_of(p: &Parts, hint: Option<u64>, asked: Asked) -> (String, Framing, bool) {
    let mut out = Vec::new();
    let (framing, close) = head(&mut out, (p, None), hint, asked);
    (String::from_utf8(out).unwrap(), framing, close)
}

#[test]
fn a_known_length_is_sent_as_content_length_with_a_date() {
    let (h, framing, close) = head_of(&parts(200, &[("x-a", "1")]), Some(5), ASKED);
    assert!(h.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\ndate: "));
    assert!(h.ends_with(" GMT\r\n\r\n"));
    assert_eq!((framing, close), (Framing::Length(5), false));
    // The handler's own length and date stand.
    let p = parts(200, &[("content-length", "7"), ("date", "x")]);
    let (h, framing, _) = head_of(&p, None, ASKED);
    assert_eq!(h, "HTTP/1.1 200 OK\r\ncontent-length: 7\r\ndate: x\r\n\r\n");
    assert_eq!(framing, Framing::Length(7));
}

#[test]
fn passed_fields_go_first_as_they_came_and_their_length_and_date_stand() {
    let decoded = crate::proxy::h1::decode::response_head(
        &mut bytes::BytesMut::from(
            "HTTP/1.1 200 OK\r\nDate: d\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n",
        ),
        false,
        &mut crate::proxy::h1::names::Names::default(),
        true,
    )
    .unwrap()
    .unwrap();
    let passed = decoded.passed.as_deref();
    let mut out = Vec::new();
    let p = parts(200, &[("x-request-id", "r")]);
    let (framing, close) = head(&mut out, (&p, passed), None, ASKED);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nDate: d\r\nContent-Length: 5\r\nx-request-id: r\r\n\r\n"
    );
    assert_eq!((framing, close), (Framing::Length(5), false));
}

#[test]
fn unknown_lengths_are_chunked_or_close_delimited_for_http10() {
    let p = parts(200, &[("date", "x"), ("transfer-encoding", "chunked")]);
    let (h, framing, _) = head_of(&p, None, ASKED);
    assert_eq!(
        h,
        "HTTP/1.1 200 OK\r\ndate: x\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    assert_eq!(framing, Framing::Chunked);
    let http10 = Asked {
        http10: true,
        ..ASKED
    };
    let (h, framing, close) = head_of(&parts(200, &[("date", "x")]), None, http10);
    assert_eq!(h, "HTTP/1.1 200 OK\r\ndate: x\r\nconnection: close\r\n\r\n");
    assert_eq!((framing, close), (Framing::Close, true));
    let (h, _, close) = head_of(&parts(200, &[("date", "x")]), Some(0), http10);
    assert!(h.contains("connection: keep-alive\r\n"));
    assert!(!close);
}

#[test]
fn bodiless_answers_and_closing() {
    let head_req = Asked {
        head: true,
        ..ASKED
    };
    let p = parts(200, &[("date", "x"), ("content-length", "10")]);
    assert_eq!(head_of(&p, None, head_req).1, Framing::None);
    let p = parts(204, &[("date", "x"), ("content-length", "0")]);
    let (h, framing, _) = head_of(&p, Some(0), ASKED);
    assert_eq!(
        (h.as_str(), framing),
        ("HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n", Framing::None)
    );
    let p = parts(400, &[("date", "x"), ("connection", "close")]);
    let (h, _, close) = head_of(&p, Some(0), ASKED);
    assert!(close);
    assert_eq!(h.matches("connection").count(), 1);
    let closing = Asked {
        close: true,
        ..ASKED
    };
    let (h, _, close) = head_of(&parts(200, &[("date", "x")]), Some(0), closing);
    assert!(close && h.contains("connection: close\r\n"));
}

async fn write<B: Body<Data = Bytes> + Unpin>(
    body: B,
    framing: Framing,
) -> Result<Vec<u8>, WriteError> {
    write_asked(body, framing, ASKED).await
}

async fn write_asked<B: Body<Data = Bytes> + Unpin>(
    body: B,
    framing: Framing,
    asked: Asked,
) -> Result<Vec<u8>, WriteError> {
    let (mut client, mut server) = tokio::io::duplex(1 << 20);
    let mut w = Writer::new(body, framing, asked);
    let (mut out, mut written) = (b"HEAD\r\n".to_vec(), 0);
    poll_fn(|cx| w.poll(cx, &mut server, &mut out, &mut written)).await?;
    drop(server);
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got)
        .await
        .unwrap();
    Ok(got)
}

fn stream(chunks: Vec<Bytes>) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
    StreamBody::new(futures_stream(chunks))
}

fn futures_stream(
    chunks: Vec<Bytes>,
) -> tokio_stream::Iter<
    std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>,
> {
    let frames: Vec<_> = chunks
        .into_iter()
        .map(|c| Ok(hyper::body::Frame::data(c)))
        .collect();
    tokio_stream::iter(frames)
}

#[tokio::test]
async fn bodies_are_framed_as_the_head_said() {
    let got = write(Full::new(Bytes::from_static(b"hello")), Framing::Length(5))
        .await
        .unwrap();
    assert_eq!(got, b"HEAD\r\nhello");
    let chunks = vec![Bytes::from_static(b"ab"), Bytes::from(vec![b'x'; 20_000])];
    let got = write(stream(chunks), Framing::Chunked).await.unwrap();
    let mut want = b"HEAD\r\n2\r\nab\r\n4e20\r\n".to_vec();
    want.extend(std::iter::repeat_n(b'x', 20_000));
    want.extend(b"\r\n0\r\n\r\n");
    assert_eq!(got, want);
    let got = write(Full::new(Bytes::from_static(b"x")), Framing::None)
        .await
        .unwrap();
    assert_eq!(got, b"HEAD\r\n");
}

/// A body whose frames are all ready at once, as an upstream's are when
/// its whole answer arrived before the proxy read it.
struct AllReady(std::collections::VecDeque<Bytes>);

impl Body for AllReady {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

#[tokio::test]
async fn frames_past_a_full_buffer_are_taken_after_it_is_written() {
    // More than COPY_MAX in frames small enough to copy: the buffer fills,
    // is written whole, and the writer must go back to the body, which
    // has registered no waker (it never said Pending).
    let chunks: Vec<Bytes> = (0..40).map(|_| Bytes::from(vec![b'x'; 1_000])).collect();
    let body = AllReady(chunks.into());
    let written = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        write(body, Framing::Length(40_000)),
    )
    .await
    .expect("the writer stalled after a full buffer")
    .unwrap();
    assert_eq!(written.len(), b"HEAD\r\n".len() + 40_000);
}

#[tokio::test]
async fn a_body_that_breaks_its_length_fails() {
    let short = write(Full::new(Bytes::from_static(b"abc")), Framing::Length(5)).await;
    assert!(matches!(short, Err(WriteError::Body)));
    let long = write(Full::new(Bytes::from_static(b"abcdef")), Framing::Length(5)).await;
    assert!(matches!(long, Err(WriteError::Body)));
}

/// A body of `data` then `trailers`.
fn with_trailers(
    data: &'static [u8],
    trailers: &[(&'static str, &'static str)],
) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
    let mut map = HeaderMap::new();
    for (n, v) in trailers {
        map.append(*n, http::HeaderValue::from_static(v));
    }
    let frames: Vec<Result<_, std::convert::Infallible>> = vec![
        Ok(hyper::body::Frame::data(Bytes::from_static(data))),
        Ok(hyper::body::Frame::trailers(map)),
    ];
    StreamBody::new(tokio_stream::iter(frames))
}

#[tokio::test]
async fn trailers_end_a_chunked_body_for_a_client_that_asked_for_them() {
    let fields = [
        ("grpc-status", "0"),
        ("content-length", "99"),
        ("connection", "close"),
        ("x-checksum", "abc"),
    ];
    let asked = Asked {
        trailers: true,
        ..ASKED
    };
    let got = write_asked(with_trailers(b"ok", &fields), Framing::Chunked, asked)
        .await
        .unwrap();
    // Only the fields a trailer may carry.
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "HEAD\r\n2\r\nok\r\n0\r\ngrpc-status: 0\r\nx-checksum: abc\r\n\r\n"
    );
    // Not asked for, or not chunked: dropped.
    let got = write(with_trailers(b"ok", &fields), Framing::Chunked)
        .await
        .unwrap();
    assert_eq!(got, b"HEAD\r\n2\r\nok\r\n0\r\n\r\n");
    let got = write_asked(with_trailers(b"ok", &fields), Framing::Length(2), asked)
        .await
        .unwrap();
    assert_eq!(got, b"HEAD\r\nok");
}
