//! The HTTP/1 exchange (`h1::conn`) against raw servers that answer with
//! exact bytes: what each kind of answer gives, and whether its connection
//! is kept (counted by the connections the server accepted).

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::tests::{exchange, get, pool, serve, server};
use super::*;
use crate::proxy::client;

/// Reads one request head (and a `content-length` body) from `io`; the
/// head, or `None` at the end of the connection.
async fn read_request(io: &mut tokio::net::TcpStream, seen: &mut Vec<u8>) -> Option<String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end + 4]).into_owned();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            while seen.len() < end + 4 + length {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            seen.drain(..end + 4 + length);
            return Some(head);
        }
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A server writing `answer` for every request it reads (closing after it
/// when `close`), counting the connections it accepted.
async fn raw(answer: &'static [u8], close: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut io, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while read_request(&mut io, &mut seen).await.is_some() {
                    if io.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

async fn body_of(resp: Response<LeasedBody>) -> (Bytes, Option<HeaderMap>) {
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

#[tokio::test]
async fn a_chunked_answer_with_trailers_keeps_its_connection() {
    let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 42\r\n\r\n";
    let (addr, accepted) = raw(answer, false).await;
    let pool = pool();
    for _ in 0..3 {
        let resp = pool.send(get(addr), None).await.unwrap();
        let (body, trailers) = body_of(resp).await;
        assert_eq!(body, "hello world");
        assert_eq!(trailers.unwrap()["x-checksum"], "42");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
        HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok";
    let (addr, accepted) = raw(answer, false).await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool.send(get(addr), None).await.unwrap();
        assert_eq!(resp.status(), 201);
        assert!(!resp.headers().contains_key("link"));
        assert_eq!(body_of(resp).await.0, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_read_to_the_close_retires_its_connection() {
    let (addr, accepted) = raw(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true).await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool.send(get(addr), None).await.unwrap();
        assert_eq!(body_of(resp).await.0, "until the end");
        assert_eq!(pool.idle_count(), 0);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ambiguous_or_broken_answers_are_errors_and_retire_the_connection() {
    let cases: [(&'static [u8], &str); 4] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\nok",
            "Content-Length with Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok",
            "more than one",
        ),
        (
            b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\ncontent-length: 0\r\n\r\n",
            "header",
        ),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "status"),
    ];
    for (answer, why) in cases {
        let (addr, accepted) = raw(answer, false).await;
        let pool = pool();
        for _ in 0..2 {
            let Err(e) = pool.send(get(addr), None).await else {
                panic!("{why}: answered");
            };
            assert!(matches!(e, Error::UpstreamInvalid(_)), "{why}: {e}");
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "{why}");
    }
}

#[tokio::test]
async fn bytes_after_the_body_retire_the_connection() {
    let (addr, accepted) = raw(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200",
        false,
    )
    .await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool.send(get(addr), None).await.unwrap();
        assert_eq!(body_of(resp).await.0, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_close_before_the_head_is_an_error_that_may_be_retried() {
    let (addr, _) = raw(b"", true).await;
    let Err(e) = pool().send(get(addr), None).await else {
        panic!("answered");
    };
    assert!(matches!(e, Error::UpstreamClosed), "{e}");
    assert!(crate::proxy::retry::before_response(&e));
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let (addr, _) = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true).await;
    let resp = pool().send(get(addr), None).await.unwrap();
    let e = resp.into_body().collect().await.unwrap_err();
    assert!(matches!(e, Error::UpstreamClosed), "{e}");
}

#[tokio::test]
async fn an_early_answer_stops_the_upload_and_retires_the_connection() {
    // Answers after the head, without reading the body, then reads on
    // (discarding) so the upload is not cut by a reset.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut io, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = io.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                }
                let answer = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n\r\nbig";
                io.write_all(answer).await.unwrap();
                while io.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    let pool = pool();
    for _ in 0..2 {
        let body = client::whole(Bytes::from(vec![b'x'; 32 << 20]));
        let req = Request::post(format!("http://{addr}/upload"))
            .body(body)
            .unwrap();
        let resp = pool.send(req, None).await.unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(body_of(resp).await.0, "big");
        assert_eq!(pool.idle_count(), 0);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_large_body_streams_in_growing_reads_and_its_connection_is_kept() {
    let (addr, accepted) = server(8 << 20).await;
    let pool = pool();
    for _ in 0..2 {
        let resp = pool.send(get(addr), None).await.unwrap();
        let mut body = resp.into_body();
        let (mut got, mut frames) = (0, 0);
        while let Some(frame) = body.frame().await {
            got += frame.unwrap().into_data().unwrap().len();
            frames += 1;
        }
        assert_eq!(got, 8 << 20);
        // Reads grow past the first 8 KB: far fewer frames than 1,024.
        assert!(frames < 400, "{frames} frames");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
}

/// Waits (bounded) until the pool holds `n` idle connections.
async fn idle(pool: &Arc<Pool>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.idle_count() != n {
        assert!(
            Instant::now() < deadline,
            "{} idle, not {n}",
            pool.idle_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_small_body_dropped_early_is_drained_and_its_connection_kept() {
    let (addr, accepted) = server(16 * 1024).await;
    let pool = pool();
    let resp = pool.send(get(addr), None).await.unwrap();
    drop(resp);
    idle(&pool, 1).await;
    assert_eq!(exchange(&pool, addr).await, 16 * 1024);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_exchange_abandoned_before_its_head_is_finished_and_kept() {
    // Answers 100 ms after each request.
    let (addr, accepted) = serve(|_| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(Response::new(http_body_util::Full::new(
            Bytes::from_static(b"late"),
        )))
    })
    .await;
    let pool = pool();
    let abandoned = tokio::time::timeout(Duration::from_millis(20), pool.send(get(addr), None));
    assert!(abandoned.await.is_err(), "answered before the client left");
    assert_eq!(pool.idle_count(), 0);
    idle(&pool, 1).await;
    let resp = pool.send(get(addr), None).await.unwrap();
    assert_eq!(body_of(resp).await.0, "late");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_abandoned_exchange_that_stays_silent_is_closed() {
    // Reads the request, never answers, and reports when the proxy closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut io, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        read_request(&mut io, &mut seen).await.unwrap();
        let mut buf = [0u8; 64];
        while io.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        let _ = closed_tx.send(Instant::now());
    });
    let pool = pool();
    let left = Instant::now();
    let abandoned = tokio::time::timeout(Duration::from_millis(20), pool.send(get(addr), None));
    assert!(abandoned.await.is_err());
    // The drain gives up after DRAIN_TIME and closes the connection.
    let closed_at = tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the connection was never closed")
        .unwrap();
    let drain = crate::proxy::h1::conn::drain::DRAIN_TIME;
    assert!(
        closed_at - left >= drain,
        "closed after {:?}",
        closed_at - left
    );
    assert_eq!(pool.idle_count(), 0);
}
