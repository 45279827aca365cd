//! The pool against real local servers: connections reused, kept when
//! concurrency exceeds what is idle (no churn), retired when a body is
//! dropped early, replaced when the server closes them, swept when idle.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use turnpike_model::UpstreamProtocol;

use super::*;
use crate::proxy::client;
use crate::proxy::connector;

/// An HTTP/1.1 server answering every request with `answer`, counting the
/// connections it accepted.
pub(super) async fn serve<F, Fut>(answer: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<http_body_util::Full<Bytes>>, hyper::Error>>
        + Send
        + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (io, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let svc = hyper::service::service_fn(answer.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc),
            );
        }
    });
    (addr, accepted)
}

/// `serve`, answering `size` bytes.
pub(super) async fn server(size: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    serve(move |_| async move {
        let body = Bytes::from(vec![b'x'; size]);
        Ok(Response::new(http_body_util::Full::new(body)))
    })
    .await
}

pub(super) fn pool() -> Arc<Pool> {
    let c = connector::build(
        Duration::from_secs(2),
        Duration::from_secs(2),
        UpstreamProtocol::Http1,
        None,
        None,
    )
    .unwrap();
    Pool::new(c, false)
}

pub(super) fn get(addr: std::net::SocketAddr) -> Request<UpstreamBody> {
    Request::get(format!("http://{addr}/x"))
        .body(client::empty())
        .unwrap()
}

/// One exchange, its body read to the end (which returns the connection).
pub(super) async fn exchange(pool: &Arc<Pool>, addr: std::net::SocketAddr) -> usize {
    let resp = pool.send(get(addr), None).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    body.len()
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (addr, accepted) = server(2).await;
    let pool = pool();
    for _ in 0..50 {
        assert_eq!(exchange(&pool, addr).await, 2);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn connections_opened_for_a_burst_are_kept_for_the_next() {
    let (addr, accepted) = server(100).await;
    let pool = pool();
    let burst = |pool: Arc<Pool>| async move {
        let all: Vec<_> = (0..20)
            .map(|_| {
                tokio::spawn({
                    let pool = pool.clone();
                    async move { exchange(&pool, addr).await }
                })
            })
            .collect();
        for t in all {
            assert_eq!(t.await.unwrap(), 100);
        }
    };
    burst(pool.clone()).await;
    let opened = accepted.load(Ordering::SeqCst);
    assert!((1..=20).contains(&opened), "{opened}");
    // The same burst again: every connection it needs is idle, none is
    // closed and reopened.
    for _ in 0..5 {
        burst(pool.clone()).await;
    }
    let reopened = accepted.load(Ordering::SeqCst) - opened;
    assert!(
        reopened <= 2,
        "{reopened} new connections for the same load"
    );
}

#[tokio::test]
async fn bursts_above_a_few_hundred_concurrent_requests_keep_their_connections() {
    // 300: more than the 256 idle connections the pool once kept, which
    // closed 44 of them after every burst and reopened them in the next.
    const BURST: usize = 300;
    let (addr, accepted) = server(2).await;
    let pool = pool();
    let burst = |pool: Arc<Pool>| async move {
        let all: Vec<_> = (0..BURST)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { exchange(&pool, addr).await })
            })
            .collect();
        for t in all {
            assert_eq!(t.await.unwrap(), 2);
        }
    };
    burst(pool.clone()).await;
    let opened = accepted.load(Ordering::SeqCst);
    assert_eq!(pool.idle_count(), opened, "every connection kept");
    for _ in 0..3 {
        burst(pool.clone()).await;
    }
    let reopened = accepted.load(Ordering::SeqCst) - opened;
    assert!(
        reopened <= 2,
        "{reopened} new connections for the same load"
    );
}

#[tokio::test]
async fn a_large_body_dropped_early_retires_its_connection() {
    let (addr, accepted) = server(256 * 1024).await;
    let pool = pool();
    let resp = pool.send(get(addr), None).await.unwrap();
    drop(resp);
    assert_eq!(exchange(&pool, addr).await, 256 * 1024);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_server_closes_are_replaced_without_errors() {
    // Answers one request per connection, then closes it without saying
    // so (no `Connection: close`): the pooled connection dies idle.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut io, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = io.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let _ = io
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let pool = pool();
    for _ in 0..10 {
        assert_eq!(exchange(&pool, addr).await, 2);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_send_stays_small() {
    // The request path moves this future several times: connecting (TLS
    // state included) must stay behind a box (inline, it made this 7.5 KB
    // in a debug build and the copies half of the proxy's instructions).
    let pool = pool();
    let (parts, body) = get("127.0.0.1:1".parse().unwrap()).into_parts();
    let to = (&Scheme::HTTP, parts.uri.authority().unwrap());
    let path = PathAndQuery::from_static("/x");
    let due = Some(tokio::time::Instant::now() + Duration::from_secs(1));
    let added = Added::default();
    let send = pool.send_parts(to, (&parts, &added), &path, body, due);
    assert!(size_of_val(&send) < 2048, "{}", size_of_val(&send));
}

#[tokio::test]
async fn idle_connections_are_swept_after_the_idle_timeout() {
    let (addr, _) = server(2).await;
    let pool = pool();
    exchange(&pool, addr).await;
    pool.sweep(Instant::now());
    assert_eq!(pool.idle_count(), 1, "not yet idle for long");
    pool.sweep(Instant::now() + IDLE_TIMEOUT);
    assert_eq!(pool.idle_count(), 0);
}

#[test]
fn the_host_header_names_the_target_without_a_default_port() {
    let a: Authority = "127.0.0.1:8080".parse().unwrap();
    assert_eq!(host_header(&Scheme::HTTP, &a).unwrap(), "127.0.0.1:8080");
    let a: Authority = "example.com:80".parse().unwrap();
    assert_eq!(host_header(&Scheme::HTTP, &a).unwrap(), "example.com");
    assert_eq!(host_header(&Scheme::HTTPS, &a).unwrap(), "example.com:80");
    let a: Authority = "example.com:443".parse().unwrap();
    assert_eq!(host_header(&Scheme::HTTPS, &a).unwrap(), "example.com");
}
