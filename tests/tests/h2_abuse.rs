//! HTTP/2 abuse against the data plane's plaintext listener (h2c with prior
//! knowledge), with the `h2` crate as the client so the test controls the
//! frames: the concurrent stream limit (100, streams past it refused), the
//! rapid reset mitigation (CVE-2023-44487: more than 20 streams reset
//! before being accepted → `GOAWAY`), and the header list limit (64 KiB →
//! `431`, never sent upstream). See docs/proxy.md, "Limits and request
//! hygiene".

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{self, ResponseFuture, SendRequest};
use h2::{Ping, Reason};
use http::{Method, Request, StatusCode};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, assert_status, fresh_database_url, wait_for,
};

/// Longest wait for any answer: a hang fails instead of blocking.
const WAIT: Duration = Duration::from_secs(20);

/// A control plane and a data plane routing `/` to `upstream`.
async fn setup(upstream: &str) -> (Db, ControlPlane, DataPlane) {
    let (url, name) = fresh_database_url();
    let db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": upstream}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "r", "paths": ["/"], "upstream": "u"})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    dp.wait_for_version(route.version()).await;
    (db, cp, dp)
}

fn proxy_addr(dp: &DataPlane) -> &str {
    dp.proxy.trim_start_matches("http://")
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("http://h2.example.test{path}"))
        .body(())
        .unwrap()
}

/// An h2c connection with its connection task spawned.
async fn connect(
    dp: &DataPlane,
) -> (
    SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(proxy_addr(dp)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, conn) = client::handshake(tcp).await.expect("h2c handshake");
    (send, tokio::spawn(conn))
}

/// The status of one request sent on `send`, and the body read to its end.
async fn status_of(
    send: &mut SendRequest<Bytes>,
    req: Request<()>,
) -> Result<StatusCode, h2::Error> {
    let mut send = send.clone().ready().await?;
    let (resp, _) = send.send_request(req, true)?;
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("an answer in time")?;
    let status = resp.status();
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(status)
}

/// An HTTP/1.1 upstream that holds every request until released, counting
/// how many it holds at once.
struct HoldingUpstream {
    addr: String,
    arrived: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    most_held: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl HoldingUpstream {
    async fn start() -> HoldingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = HoldingUpstream {
            addr,
            arrived: Arc::default(),
            held: Arc::default(),
            most_held: Arc::default(),
            release: watch::channel(false).0,
        };
        let (arrived, held, most) = (up.arrived.clone(), up.held.clone(), up.most_held.clone());
        let release = up.release.subscribe();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, h, m, r) = (arrived.clone(), held.clone(), most.clone(), release.clone());
                tokio::spawn(hold(stream, a, h, m, r));
            }
        });
        up
    }
}

async fn hold(
    mut stream: TcpStream,
    arrived: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    most_held: Arc<AtomicUsize>,
    mut release: watch::Receiver<bool>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One head (the requests have no body).
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        buf.drain(..end + 4);
        arrived.fetch_add(1, Ordering::SeqCst);
        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
        most_held.fetch_max(now, Ordering::SeqCst);
        let _ = release.wait_for(|r| *r).await;
        held.fetch_sub(1, Ordering::SeqCst);
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A socket whose reads wait until the gate opens (writes go through): the
/// client then sends its streams before it can have seen the server's
/// SETTINGS, and so before it knows the server's stream limit.
struct Gated {
    io: TcpStream,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.gate.open.load(Ordering::SeqCst) {
            *this.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            if !this.gate.open.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_concurrency_limit_are_refused() {
    let upstream = HoldingUpstream::start().await;
    let (_db, _cp, dp) = setup(&upstream.addr).await;

    // The server's SETTINGS advertise the limit.
    let (polite, _polite_conn) = connect(&dp).await;
    let limit = wait_for("the server's SETTINGS", WAIT, || async {
        let max = polite.current_max_send_streams();
        (max != usize::MAX).then_some(max)
    })
    .await;
    assert_eq!(limit, 100, "SETTINGS_MAX_CONCURRENT_STREAMS");

    // A client that ignores it: 150 streams written before the SETTINGS
    // are read (the h2 client would otherwise queue streams 101-150).
    let tcp = TcpStream::connect(proxy_addr(&dp)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let gate = Arc::new(Gate::default());
    let io = Gated {
        io: tcp,
        gate: gate.clone(),
    };
    let (mut send, conn) = client::handshake(io).await.expect("h2c handshake");
    let responses: Vec<ResponseFuture> = (0..150)
        .map(|i| {
            send.send_request(get(&format!("/hold/{i}")), true)
                .unwrap()
                .0
        })
        .collect();
    let conn = tokio::spawn(conn);

    // The first 100 reach the upstream and are held there.
    wait_for("100 streams at the upstream", WAIT, || async {
        (upstream.arrived.load(Ordering::SeqCst) >= 100).then_some(())
    })
    .await;
    gate.open();
    let mut waiting: Vec<_> = responses.into_iter().map(tokio::spawn).collect();
    let later = waiting.split_off(100);
    // The last 50 are refused while the first 100 are open.
    for (i, r) in later.into_iter().enumerate() {
        let got = tokio::time::timeout(WAIT, r)
            .await
            .expect("stream refused in time")
            .unwrap();
        match got {
            Err(e) => assert_eq!(
                e.reason(),
                Some(Reason::REFUSED_STREAM),
                "stream {}: {e}",
                100 + i
            ),
            Ok(resp) => panic!(
                "stream {} past the limit answered {}",
                100 + i,
                resp.status()
            ),
        }
    }
    // Every HEADERS frame has been read by now: none of the refused ones
    // reached the upstream.
    assert_eq!(upstream.arrived.load(Ordering::SeqCst), 100);
    assert_eq!(upstream.most_held.load(Ordering::SeqCst), 100);

    // Released, the first 100 complete, and the connection is still good.
    upstream.release.send(true).unwrap();
    for (i, r) in waiting.into_iter().enumerate() {
        let resp = tokio::time::timeout(WAIT, r)
            .await
            .expect("an answer in time")
            .unwrap()
            .unwrap_or_else(|e| panic!("stream {i}: {e}"));
        assert_eq!(resp.status(), StatusCode::OK, "stream {i}");
    }
    assert_eq!(
        status_of(&mut send, get("/after")).await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(upstream.arrived.load(Ordering::SeqCst), 101);
    assert!(!conn.is_finished(), "the connection stays open");
}

/// Drives `conn` until a PING sent now is answered (every frame written
/// before it has then been read by the server); `Err` with the
/// connection's end if it ends first.
async fn round_trip<C>(conn: &mut C, ping: &mut h2::PingPong) -> Result<(), Result<(), h2::Error>>
where
    C: Future<Output = Result<(), h2::Error>> + Unpin,
{
    let pong = ping.ping(Ping::opaque());
    tokio::pin!(pong);
    let outcome = tokio::time::timeout(WAIT, async {
        tokio::select! {
            biased;
            end = &mut *conn => Err(end),
            pong = &mut pong => match pong {
                Ok(_pong) => Ok(()),
                // The connection failed under the ping: get its error.
                Err(_) => Err(conn.await),
            },
        }
    })
    .await;
    outcome.expect("a PONG or the connection's end in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_and_the_listener_stays_healthy() {
    let upstream = CountingUpstream::start().await;
    let (_db, _cp, dp) = setup(&upstream.addr).await;

    let tcp = TcpStream::connect(proxy_addr(&dp)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut send, mut conn) = client::handshake(tcp).await.expect("h2c handshake");
    let mut ping = conn.ping_pong().expect("ping_pong taken once");
    // Not spawned: driven here, so each batch below goes out in one write
    // and the server reads every HEADERS with its RST_STREAM before it can
    // accept the stream.
    round_trip(&mut conn, &mut ping)
        .await
        .expect("the connection opens");

    // Batches of 50 streams, each opened and at once reset (CANCEL), up to
    // 1,000 resets.
    const BATCH: usize = 50;
    let mut reset = 0;
    let end = loop {
        assert!(reset < 1000, "no GOAWAY after {reset} rapid resets");
        for _ in 0..BATCH {
            let req = get(&format!("/reset/{reset}"));
            let Ok((_resp, mut stream)) = send.send_request(req, false) else {
                break;
            };
            stream.send_reset(Reason::CANCEL);
            reset += 1;
        }
        if let Err(end) = round_trip(&mut conn, &mut ping).await {
            break end;
        }
    };
    let err = end.expect_err("the connection ends with an error");
    assert!(err.is_go_away() && err.is_remote(), "{err:?}");
    assert_eq!(err.reason(), Some(Reason::ENHANCE_YOUR_CALM), "{err:?}");
    // 21 resets pending accept are enough: it takes one batch.
    assert_eq!(reset, BATCH, "GOAWAY only after {reset} resets");

    // The data plane serves a new connection, and still runs.
    let (mut fresh, _conn) = connect(&dp).await;
    assert_eq!(
        status_of(&mut fresh, get("/after-reset")).await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(upstream.matching("/after-reset").len(), 1);
    assert!(dp.status().await.is_some(), "status endpoint answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_list_is_431_and_never_sent_upstream() {
    let upstream = CountingUpstream::start().await;
    let (_db, _cp, dp) = setup(&upstream.addr).await;
    let (mut send, conn) = connect(&dp).await;

    // 17 headers of 4 KiB: about 68 KiB decoded, over the 64 KiB
    // SETTINGS_MAX_HEADER_LIST_SIZE (the client does not check it).
    let mut big = get("/big");
    for i in 0..17 {
        let value: String = (0..4096)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        big.headers_mut().insert(
            format!("x-big-{i}").parse::<http::HeaderName>().unwrap(),
            value.parse().unwrap(),
        );
    }
    let status = status_of(&mut send, big)
        .await
        .expect("an answer, not a reset");
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // A stream error only: the same connection serves the next request,
    // and that is the only one the upstream ever saw.
    assert_eq!(
        status_of(&mut send, get("/small")).await.unwrap(),
        StatusCode::OK
    );
    let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(seen, ["/small"]);
    assert!(!conn.is_finished(), "the connection stays open");
}
