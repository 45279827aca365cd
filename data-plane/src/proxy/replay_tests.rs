//! Keeping bodies for retries: on bodies made frame by frame, and on
//! real client bodies (hyper's `Incoming`, from raw requests served in
//! this process) read through the body limits.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;

use crate::listener::RequestBody;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::*;

/// A body of the given frames, then its end.
struct Frames(VecDeque<Result<Frame<Bytes>, Error>>);

impl Frames {
    fn data(pieces: &[&[u8]]) -> Frames {
        Frames(
            pieces
                .iter()
                .map(|p| Ok(Frame::data(Bytes::copy_from_slice(p))))
                .collect(),
        )
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Poll::Ready(self.0.pop_front())
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// Everything a body yields: its data, and its trailers if any.
async fn drain<B: Body<Data = Bytes> + Unpin>(mut body: B) -> (Vec<u8>, Option<HeaderMap>)
where
    B::Error: std::fmt::Debug,
{
    let (mut data, mut trailers) = (Vec::new(), None);
    while let Some(frame) = body.frame().await {
        match frame.unwrap().into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    (data, trailers)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_body_within_the_bound_is_kept_whole() {
    let Read::Whole(b) = read(Frames::data(&[b"{\"a\":", b"1}"])).await.unwrap() else {
        panic!("not kept");
    };
    assert_eq!(b, "{\"a\":1}");
    // Exactly at the bound still fits.
    let max = pattern(REPLAY_MAX as usize);
    let halves = Frames::data(&[&max[..1000], &max[1000..]]);
    let Read::Whole(b) = read(halves).await.unwrap() else {
        panic!("a body of exactly REPLAY_MAX bytes not kept");
    };
    assert_eq!(b, max);
    let Read::Whole(b) = read(Frames::data(&[])).await.unwrap() else {
        panic!("an empty body not kept");
    };
    assert!(b.is_empty());
}

#[tokio::test]
async fn a_body_in_one_piece_is_kept_without_a_copy() {
    let piece = Bytes::from_static(b"one piece");
    let body = Frames(VecDeque::from([Ok(Frame::data(piece.clone()))]));
    let Read::Whole(b) = read(body).await.unwrap() else {
        panic!("not kept");
    };
    assert_eq!(b.as_ptr(), piece.as_ptr());
}

#[tokio::test]
async fn past_the_bound_everything_read_goes_first_then_the_rest() {
    let all = pattern(REPLAY_MAX as usize + 5000);
    let pieces: Vec<&[u8]> = all.chunks(3000).collect();
    let Read::Partial(resumed) = read(Frames::data(&pieces)).await.unwrap() else {
        panic!("kept a body over the bound");
    };
    // Read up to the piece that went over, no further.
    assert_eq!(resumed.read.len(), REPLAY_MAX as usize / 3000 + 1);
    assert_eq!(resumed.size_hint().lower(), resumed.read_len());
    assert!(!resumed.is_end_stream());
    let (data, trailers) = drain(resumed).await;
    assert_eq!(data, all, "bytes lost or out of order");
    assert!(trailers.is_none());
}

#[tokio::test]
async fn trailers_are_not_kept_but_passed_on_after_the_data() {
    let mut t = HeaderMap::new();
    t.insert("x-checksum", HeaderValue::from_static("abc"));
    let body = Frames(VecDeque::from([
        Ok(Frame::data(Bytes::from_static(b"small"))),
        Ok(Frame::trailers(t.clone())),
    ]));
    let Read::Partial(resumed) = read(body).await.unwrap() else {
        panic!("kept a body with trailers");
    };
    let (data, trailers) = drain(resumed).await;
    assert_eq!(data, b"small");
    assert_eq!(trailers, Some(t));
}

#[tokio::test]
async fn a_body_that_fails_fails_the_read() {
    let body = Frames(VecDeque::from([
        Ok(Frame::data(Bytes::from_static(b"a"))),
        Err(Error::BodyTimeout(Duration::from_secs(1))),
    ]));
    assert!(matches!(read(body).await, Err(Error::BodyTimeout(_))));
}

#[tokio::test]
async fn a_rewritten_body_is_kept_as_it_is() {
    let whole = Bytes::from(pattern(100));
    let mut headers = HeaderMap::new();
    assert!(may_keep(&headers, &Outbound::Whole(whole.clone())));
    let stats = Arc::new(RouteStats::default());
    let limits = BodyLimits::default();
    let (first, kept) = keep(&mut headers, Outbound::Whole(whole.clone()), limits, &stats)
        .await
        .unwrap();
    assert_eq!(kept.unwrap().as_ptr(), whole.as_ptr(), "copied");
    assert_eq!(drain(first).await.0, whole);
    let over = Outbound::Whole(Bytes::from(pattern(REPLAY_MAX as usize + 1)));
    assert!(!may_keep(&headers, &over));
}

/// Client bodies as hyper gives them: each raw request served in turn,
/// its head and `Incoming` handed to the test.
struct Served {
    requests: mpsc::Receiver<(Parts, Incoming, oneshot::Sender<()>)>,
}

impl Served {
    /// Serves `raw` (one request); the request stays open until its
    /// answer is released.
    fn start(raw: Vec<u8>) -> Served {
        let (client, server) = tokio::io::duplex(16 * 1024);
        let (tx, requests) = mpsc::channel(1);
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let (done, answered) = oneshot::channel();
                    let _ = tx.send((parts, body, done)).await;
                    let _ = answered.await;
                    Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), svc)
                .await;
        });
        tokio::spawn(async move {
            let mut client = client;
            let _ = client.write_all(&raw).await;
            // Keep the connection open until the test is done with it.
            std::future::pending::<()>().await;
        });
        Served { requests }
    }

    async fn next(&mut self) -> (Parts, Incoming, oneshot::Sender<()>) {
        self.requests.recv().await.expect("a request")
    }
}

fn put(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!("PUT /x HTTP/1.1\r\nhost: t\r\n{headers}\r\n").into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for p in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn a_declared_body_within_the_bound_is_kept_and_counted() {
    let json = br#"{"name":"a","n":1}"#;
    let mut served = Served::start(put(&format!("content-length: {}\r\n", json.len()), json));
    let (mut parts, body, _done) = served.next().await;
    let body = Outbound::Stream(RequestBody::h2(body));
    assert!(may_keep(&parts.headers, &body));
    let stats = Arc::new(RouteStats::default());
    let (first, kept) = keep(&mut parts.headers, body, BodyLimits::default(), &stats)
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(&json[..]));
    assert_eq!(drain(first).await.0, json);
    assert_eq!(stats.bytes_in.load(Ordering::Relaxed), json.len() as u64);
    assert_eq!(parts.headers[CONTENT_LENGTH], json.len().to_string());
}

#[tokio::test]
async fn a_chunked_body_within_the_bound_is_kept_with_its_length() {
    let body = pattern(20_000);
    let mut served = Served::start(put("transfer-encoding: chunked\r\n", &chunked(&body, 4096)));
    let (mut parts, incoming, _done) = served.next().await;
    let incoming = Outbound::Stream(RequestBody::h2(incoming));
    assert!(may_keep(&parts.headers, &incoming));
    let stats = Arc::new(RouteStats::default());
    let (_, kept) = keep(&mut parts.headers, incoming, BodyLimits::default(), &stats)
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(&body[..]));
    assert_eq!(parts.headers[CONTENT_LENGTH], "20000");
    assert!(!parts.headers.contains_key(TRANSFER_ENCODING));
}

#[tokio::test]
async fn a_chunked_body_past_the_bound_is_sent_whole_and_not_kept() {
    let body = pattern(REPLAY_MAX as usize * 2 + 17);
    let mut served = Served::start(put("transfer-encoding: chunked\r\n", &chunked(&body, 5000)));
    let (mut parts, incoming, _done) = served.next().await;
    let stats = Arc::new(RouteStats::default());
    let limits = BodyLimits::default();
    let (first, kept) = keep(
        &mut parts.headers,
        Outbound::Stream(RequestBody::h2(incoming)),
        limits,
        &stats,
    )
    .await
    .unwrap();
    assert!(kept.is_none());
    assert!(!parts.headers.contains_key(CONTENT_LENGTH));
    let (data, _) = drain(first).await;
    assert_eq!(data, body, "bytes lost or out of order");
    assert_eq!(stats.bytes_in.load(Ordering::Relaxed), body.len() as u64);
}

#[tokio::test]
async fn the_body_limit_holds_while_a_body_is_read_to_keep() {
    let mut served = Served::start(put(
        "transfer-encoding: chunked\r\n",
        &chunked(&pattern(3000), 1000),
    ));
    let (mut parts, incoming, _done) = served.next().await;
    let limits = BodyLimits {
        max_bytes: Some(2000),
        ..BodyLimits::default()
    };
    let stats = Arc::new(RouteStats::default());
    let kept = keep(
        &mut parts.headers,
        Outbound::Stream(RequestBody::h2(incoming)),
        limits,
        &stats,
    )
    .await;
    assert!(matches!(kept, Err(Error::BodyTooLarge(2000))));
}

#[tokio::test]
async fn large_declared_bodies_and_expect_continue_are_not_read() {
    let len = REPLAY_MAX + 1;
    let mut served = Served::start(put(&format!("content-length: {len}\r\n"), b""));
    let (parts, incoming, _done) = served.next().await;
    assert!(!may_keep(
        &parts.headers,
        &Outbound::Stream(RequestBody::h2(incoming))
    ));
    let mut served = Served::start(put("content-length: 2\r\nexpect: 100-continue\r\n", b"{}"));
    let (parts, incoming, _done) = served.next().await;
    assert!(!may_keep(
        &parts.headers,
        &Outbound::Stream(RequestBody::h2(incoming))
    ));
}

#[test]
fn a_replay_resends_the_same_body() {
    let replay = Replay::new(Some(Bytes::from_static(b"{}")));
    for _ in 0..2 {
        assert_eq!(replay.body().size_hint().exact(), Some(2));
    }
    assert!(Replay::new(None).body().is_end_stream());
}
