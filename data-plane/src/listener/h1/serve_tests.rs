//! The connection server over real sockets, with raw bytes from the client
//! side: pipelining, `100 Continue`, HTTP/1.0, bodies fed on demand, a
//! client that leaves, refused heads, shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::listener::{Conn, RequestBody};

/// Answers `<method> <path> <body length>`, after reading the body whole.
async fn echo(
    _: Arc<Conn>,
    req: Request<RequestBody>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let text = match body.collect().await {
        Ok(b) => format!(
            "{} {} {}",
            parts.method,
            parts.uri.path(),
            b.to_bytes().len()
        ),
        Err(e) => format!("body error: {e}"),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

async fn start<H, F>(handler: H) -> (SocketAddr, watch::Sender<bool>)
where
    H: Fn(Arc<Conn>, Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(crate::listener::serve(listener, handler, shutdown));
    (addr, stop)
}

/// Reads until `done` says the text is complete (or the peer closes).
async fn read_until(s: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !done(&String::from_utf8_lossy(&got)) {
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answer in time");
    String::from_utf8(got).unwrap()
}

/// Whether the peer closed (reads EOF) within a short wait.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (addr, _stop) = start(echo).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_until(&mut s, |t| t.contains("GET /three 0")).await;
    let one = got.find("GET /one 0").unwrap();
    let two = got.find("POST /two 3").unwrap();
    assert!(one < two, "{got}");
    assert_eq!(got.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{got}");
    assert!(
        got.contains("content-length: 10\r\n") && got.contains("\r\ndate: "),
        "{got}"
    );
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let (addr, _stop) = start(echo).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_until(&mut s, |t| t.ends_with("\r\n\r\n")).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let got = read_until(&mut s, |t| t.contains("PUT /up 5")).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
}

#[tokio::test]
async fn bodies_that_come_later_are_fed_whole_and_the_connection_kept() {
    let (addr, _stop) = start(echo).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A chunked body written piece by piece after its head, bigger than the
    // read buffer in all.
    s.write_all(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("1000\r\n{}\r\n", "x".repeat(0x1000));
    for _ in 0..5 {
        s.write_all(chunk.as_bytes()).await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    read_until(&mut s, |t| t.contains("POST /c 20480")).await;
    // The same with a length, then a request behind it.
    let body = "y".repeat(20_000);
    s.write_all(
        format!("POST /l HTTP/1.1\r\nHost: h\r\nContent-Length: 20000\r\n\r\n{body}").as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut s, |t| t.contains("GET /after 0")).await;
    assert!(got.contains("POST /l 20000"), "{got}");
}

/// Answers at once, its body dropped unread (an early refusal).
async fn refuse(
    _: Arc<Conn>,
    req: Request<RequestBody>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let text = format!("refused {}", req.uri().path());
    drop(req);
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::test]
async fn a_small_unread_body_is_read_past_and_the_connection_kept() {
    let (addr, _stop) = start(refuse).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The rest of each body comes only after its answer.
    s.write_all(b"POST /l HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345")
        .await
        .unwrap();
    let got = read_until(&mut s, |t| t.ends_with("refused /l")).await;
    assert!(got.ends_with("refused /l"), "{got}");
    s.write_all(
        b"67890POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    let got = read_until(&mut s, |t| t.ends_with("refused /c")).await;
    assert!(got.ends_with("refused /c"), "{got}");
    s.write_all(b"3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut s, |t| t.ends_with("refused /after")).await;
    assert!(got.ends_with("refused /after"), "{got}");
}

#[tokio::test]
async fn a_large_or_bad_unread_body_or_one_awaiting_100_continue_closes_the_connection() {
    let (addr, _stop) = start(refuse).await;
    for (head, rest) in [
        // Past the 64 KiB read past at most.
        ("Content-Length: 70000\r\n", ""),
        // A bad chunk size in what follows.
        ("Transfer-Encoding: chunked\r\n", "zz\r\n"),
        // The client waits for a `100 Continue` it will not get.
        ("Expect: 100-continue\r\nContent-Length: 5\r\n", ""),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("POST /x HTTP/1.1\r\nHost: h\r\n{head}\r\n").as_bytes())
            .await
            .unwrap();
        let got = read_until(&mut s, |t| t.ends_with("refused /x")).await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        let _ = s.write_all(rest.as_bytes()).await;
        assert!(closed(&mut s).await, "{head:?} kept the connection");
    }
}

#[tokio::test]
async fn http10_closes_unless_asked_to_keep_alive() {
    let (addr, _stop) = start(echo).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut s, |t| t.contains("GET /a 0")).await;
    assert!(got.contains("connection: keep-alive\r\n"), "{got}");
    s.write_all(b"GET /b HTTP/1.0\r\n\r\n").await.unwrap();
    let got = read_until(&mut s, |t| t.contains("GET /b 0")).await;
    assert!(got.contains("connection: close\r\n"), "{got}");
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn a_client_that_leaves_drops_its_request() {
    let (dropped_tx, dropped) = oneshot::channel::<()>();
    let slot = std::sync::Mutex::new(Some(dropped_tx));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler = move |_: Arc<Conn>, _: Request<RequestBody>| {
        let guard = slot.lock().unwrap().take();
        let _ = started_tx.send(());
        async move {
            // Never answers; `guard` goes when the future is dropped.
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(Response::new(Full::new(Bytes::new())))
        }
    };
    let (addr, _stop) = start(handler).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    started
        .recv()
        .await
        .expect("the request reached the handler");
    drop(s);
    let gone = tokio::time::timeout(Duration::from_secs(5), dropped).await;
    assert!(
        matches!(gone, Ok(Err(_))),
        "the request was dropped with its client"
    );
}

#[tokio::test]
async fn refused_heads_get_a_json_answer_with_a_request_id_then_close() {
    let (addr, _stop) = start(echo).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n")
        .await
        .unwrap();
    let got = read_until(&mut s, |t| t.ends_with('}')).await;
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    assert!(
        got.contains("x-request-id: ") && got.contains("connection: close\r\n"),
        "{got}"
    );
    assert!(got.contains("\"request_id\":"), "{got}");
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_busy_ones() {
    let (release, released) = watch::channel(false);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler = move |_: Arc<Conn>, _: Request<RequestBody>| {
        let mut released = released.clone();
        let _ = started_tx.send(());
        async move {
            let _ = released.wait_for(|r| *r).await;
            Ok(Response::new(Full::new(Bytes::from_static(b"done"))))
        }
    };
    let (addr, stop) = start(handler).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    // Accepted in order: the idle connection is being served too by now.
    started
        .recv()
        .await
        .expect("the request reached the handler");
    stop.send(true).unwrap();
    assert!(closed(&mut idle).await, "an idle connection closes at once");
    release.send(true).unwrap();
    let got = read_until(&mut busy, |t| t.ends_with("done")).await;
    assert!(got.contains("connection: close\r\n"), "{got}");
    assert!(closed(&mut busy).await);
}

#[tokio::test]
async fn shutdown_closes_a_keep_alive_connection_waiting_for_its_next_request() {
    // After its first answer the connection waits again with its shutdown
    // watch already registered (`stop`): the drain must still wake it.
    let (addr, stop) = start(echo).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /k HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let got = read_until(&mut s, |t| t.ends_with("GET /k 0")).await;
        assert!(!got.contains("connection: close"), "{got}");
    }
    stop.send(true).unwrap();
    assert!(closed(&mut s).await, "the idle connection closes at once");
}
