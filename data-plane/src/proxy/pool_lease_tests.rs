//! The pool's HTTP/1 connections driven by the requests using them
//! (`proxy::lease`), against real local servers: no task per connection,
//! request bodies written and dead idle connections noticed without one,
//! one wake-up per exchange, the per-connection timer.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::tests::{exchange, pool, serve, server};
use super::*;
use crate::proxy::client;

/// `server`, in a runtime of its own on another thread: its tasks do not
/// count in the test's runtime.
fn server_on_own_thread(size: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tx.send(server(size).await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

#[tokio::test]
async fn connections_have_no_task_of_their_own() {
    let (addr, accepted) = server_on_own_thread(64 * 1024);
    let pool = pool();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let all: Vec<_> = (0..10)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { exchange(&pool, addr).await })
        })
        .collect();
    for t in all {
        assert_eq!(t.await.unwrap(), 64 * 1024);
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!(opened >= 2, "{opened}");
    assert_eq!(pool.idle_count(), opened, "every connection kept");
    // A task per connection would be alive until the connection closes.
    assert_eq!(tasks(), before);
}

#[tokio::test]
async fn a_large_request_body_is_written_while_its_request_waits() {
    // Answers with the length of the body it read.
    let (addr, accepted) = serve(|req| async move {
        let body = req.into_body().collect().await?.to_bytes();
        Ok(Response::new(Full::new(Bytes::from(
            body.len().to_string(),
        ))))
    })
    .await;
    let pool = pool();
    for _ in 0..2 {
        // Far more than the socket buffers take at once.
        let body = client::whole(Bytes::from(vec![b'x'; 8 << 20]));
        let req = Request::post(format!("http://{addr}/upload"))
            .body(body)
            .unwrap();
        let resp = pool.send(req, None).await.unwrap();
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got, (8 << 20).to_string());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn idle_connections_the_upstream_closed_are_skipped() {
    // Answers one request per connection, keeps it open until told to
    // close (no `Connection: close`), then closes it and counts the close;
    // on threads of its own, so it closes whatever this test's runtime does.
    let (tx, rx) = std::sync::mpsc::channel();
    let closed = Arc::new(AtomicUsize::new(0));
    let close = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let (count, signal) = (closed.clone(), close.clone());
    std::thread::spawn(move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        for io in listener.incoming() {
            let (count, signal) = (count.clone(), signal.clone());
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut io = io.unwrap();
                let (mut buf, mut seen) = (vec![0u8; 4096], Vec::new());
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match io.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                let (lock, cvar) = &*signal;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = cvar.wait(go).unwrap();
                }
                drop(io);
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let addr = rx.recv().unwrap();
    let pool = pool();
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { exchange(&pool, addr).await })
        })
        .collect();
    for t in burst {
        assert_eq!(t.await.unwrap(), 2);
    }
    assert_eq!(pool.idle_count(), 4);
    *close.0.lock().unwrap() = true;
    close.1.notify_all();
    while closed.load(Ordering::SeqCst) < 4 {
        tokio::task::yield_now().await;
    }
    // Lets the runtime's reactor read the closes (it runs between tasks).
    tokio::task::yield_now().await;
    // Every pooled connection is dead: the request finds that out before
    // sending on one, and opens a new connection.
    assert_eq!(exchange(&pool, addr).await, 2);
    // The dead ones are gone (the new one too, if its close came with its
    // answer).
    assert!(pool.idle_count() <= 1, "{}", pool.idle_count());
}

/// An HTTP/1.1 server answering `/after/<ms>` that many milliseconds late,
/// and never answering `/never`.
async fn slow_server() -> std::net::SocketAddr {
    let (addr, _) = serve(|req| async move {
        let wait = match req.uri().path().strip_prefix("/after/") {
            Some(ms) => Duration::from_millis(ms.parse().unwrap()),
            None => Duration::from_secs(3600),
        };
        tokio::time::sleep(wait).await;
        Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
    .await;
    addr
}

fn get_path(addr: std::net::SocketAddr, path: &str) -> Request<UpstreamBody> {
    Request::get(format!("http://{addr}{path}"))
        .body(client::empty())
        .unwrap()
}

#[tokio::test]
async fn a_pooled_connection_times_out_waiting_for_a_head() {
    let addr = slow_server().await;
    let pool = pool();
    let timeout = Some(Duration::from_millis(200));
    let resp = pool
        .send(get_path(addr, "/after/0"), timeout)
        .await
        .unwrap();
    resp.into_body().collect().await.unwrap();
    assert_eq!(pool.idle_count(), 1);
    let started = Instant::now();
    let Err(err) = pool.send(get_path(addr, "/never"), timeout).await else {
        panic!("/never answered");
    };
    assert!(matches!(err, Error::UpstreamTimeout), "{err}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn a_timer_left_from_a_shorter_exchange_does_not_cut_a_longer_one() {
    let addr = slow_server().await;
    let pool = pool();
    // The connection's timer is set for 50 ms from now...
    let short = Some(Duration::from_millis(50));
    let resp = pool.send(get_path(addr, "/after/0"), short).await.unwrap();
    resp.into_body().collect().await.unwrap();
    // ...and fires while this exchange, due in 2 s, waits 150 ms for its
    // answer: set again, not a timeout.
    let long = Some(Duration::from_secs(2));
    let resp = pool.send(get_path(addr, "/after/150"), long).await.unwrap();
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    // And a shorter due time than the timer's moves it earlier.
    let Err(err) = pool.send(get_path(addr, "/never"), short).await else {
        panic!("/never answered");
    };
    assert!(matches!(err, Error::UpstreamTimeout), "{err}");
}

/// Counts the wake-ups passed to the task it wraps the waker of.
struct Counting {
    inner: std::task::Waker,
    wakes: AtomicUsize,
}

impl std::task::Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.inner.wake_by_ref();
    }
}

#[tokio::test]
async fn a_pooled_exchange_wakes_its_task_once() {
    // The whole answer in one write: it arrives as one readable event.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut io, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        loop {
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            io.write_all(answer).await.unwrap();
        }
    });
    let pool = pool();
    assert_eq!(exchange(&pool, addr).await, 2);
    // The second, on the pooled connection: sending the request, reading
    // the response and its body (which returns the connection) should take
    // the response's arrival, and nothing the task did itself.
    let counting = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(Arc::new(Counting {
            inner: cx.waker().clone(),
            wakes: AtomicUsize::new(0),
        }))
    })
    .await;
    let waker = std::task::Waker::from(counting.clone());
    let mut fut = std::pin::pin!(exchange(&pool, addr));
    let got = std::future::poll_fn(|_| {
        fut.as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    })
    .await;
    assert_eq!(got, 2);
    assert_eq!(pool.idle_count(), 1);
    let wakes = counting.wakes.load(Ordering::SeqCst);
    assert_eq!(wakes, 1, "wake-ups of one exchange");
}
