//! Edges of the proxy core, with real processes: a WebSocket upgrade over
//! the TLS listener and a `101` the proxy must not pass on (`502`) in
//! `upgrades`; bare LF line endings in a request and an upstream's
//! hop-by-hop fields in `hygiene` (docs/proxy.md, "Limits and request
//! hygiene" and "WebSocket"). Here: the processes and a raw upstream.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http::{Method, StatusCode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use turnpike_tests::raw::{RawConn, RawResponse, Read};
use turnpike_tests::{
    ControlPlane, CountingUpstream, DataPlane, Db, assert_status, free_port, fresh_database_url,
};

/// Longest wait for any byte or answer: a hang fails instead of blocking.
const WAIT: Duration = Duration::from_secs(20);
/// RFC 6455 §1.3's example key and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Sent by the WebSocket upstream right after its 101, unasked.
const GREETING: &[u8] = b"hello from upstream\n";
/// A kept-alive, chunked `200 ok` with every hop-by-hop field, and
/// `X-Secret`, named by its `Connection`; only `X-Kept` is the client's.
const HOP_BY_HOP_ANSWER: &str = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\n\
    Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authenticate: Basic\r\n\
    Trailer: X-T\r\nUpgrade: h2c\r\nTE: trailers\r\nX-Secret: hidden\r\nX-Kept: yes\r\n\
    Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";

/// A control plane on a fresh database and a data plane with `dp_args`,
/// routing `/` to an upstream at `upstream` (5 s read timeout).
async fn setup(upstream: &str, dp_args: &[String]) -> (Db, ControlPlane, DataPlane, u64) {
    let (url, name) = fresh_database_url();
    let db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start_args(&cp.cluster, &cp.cluster_token, dp_args);
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "u", "targets": [{"address": upstream}], "timeouts": {"read_ms": 5000}})),
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
    let version = route.version();
    (db, cp, dp, version)
}

/// A raw upstream: records each request head (lowercased) and answers by
/// path. `/ws/...` with `Upgrade: websocket` asked: a correct 101, then a
/// greeting and an echo of every byte; `/h2c/...`: a 101 naming h2c;
/// `/no-upgrade/...`: a 101 with no `Upgrade`; `/plain/...`: a 101 naming
/// websocket whatever was asked; `/hop/...`: a chunked `200 ok` carrying
/// every kind of hop-by-hop field ([`HOP_BY_HOP_ANSWER`]); anything else:
/// `200 ok`, kept alive.
/// After a 101 it never answers on that connection again.
struct RawUpstream {
    addr: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, seen.clone()));
            }
        });
        RawUpstream { addr, heads }
    }

    fn heads_with(&self, needle: &str) -> Vec<String> {
        let heads = self.heads.lock().unwrap();
        heads
            .iter()
            .filter(|h| h.contains(needle))
            .cloned()
            .collect()
    }
}

async fn serve(mut stream: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = next_head(&mut stream, &mut buf).await else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        heads.lock().unwrap().push(lower.clone());
        let path = lower.split(' ').nth(1).unwrap_or("").to_owned();
        let websocket = lower.contains("\r\nupgrade: websocket\r\n");
        let switch = |upgrade: &str| {
            let key = header(&head, "sec-websocket-key").unwrap_or_default();
            format!(
                "HTTP/1.1 101 Switching Protocols\r\n{upgrade}Connection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                accept(&key)
            )
        };
        let answer = if path.starts_with("/ws/") && websocket {
            switch("Upgrade: websocket\r\n")
        } else if path.starts_with("/h2c/") {
            switch("Upgrade: h2c\r\n")
        } else if path.starts_with("/no-upgrade/") {
            switch("")
        } else if path.starts_with("/plain/") {
            switch("Upgrade: websocket\r\n")
        } else {
            let ok = if path.starts_with("/hop/") {
                HOP_BY_HOP_ANSWER
            } else {
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            if stream.write_all(ok.as_bytes()).await.is_err() {
                return;
            }
            continue;
        };
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if !(path.starts_with("/ws/") && websocket) {
            // Switched, as far as this upstream knows: it says nothing more
            // and waits for the proxy to close.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        stream.write_all(GREETING).await.unwrap();
        stream.write_all(&buf).await.unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The next request head on `stream` (bytes after it stay in `buf`).
async fn next_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sec-WebSocket-Accept: base64(SHA-1(key + the RFC 6455 GUID)).
fn accept(key: &str) -> String {
    let digest = Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn upgrade_request(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

async fn read_exactly<S: AsyncRead + Unpin>(stream: &mut S, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("bytes in time")
        .expect("bytes read");
    buf
}

/// An answer's head, read byte by byte so no tunnel byte is taken with it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_exactly(stream, 1).await);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends `msg` in several writes and reads the same bytes back.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, msg: &[u8]) {
    for part in msg.chunks(7) {
        stream.write_all(part).await.unwrap();
        stream.flush().await.unwrap();
    }
    assert_eq!(read_exactly(stream, msg.len()).await, msg);
}

/// Sends `request` on a fresh connection; the answer, then a sentinel
/// request on the same connection must get the upstream's plain 200.
async fn answer_then_sentinel(addr: &str, request: &str, sentinel: &str) -> RawResponse {
    let mut conn = RawConn::connect(addr).await;
    assert!(conn.send(request.as_bytes()).await);
    let Read::Response(answer) = conn.read().await else {
        panic!("connection closed without an answer to {request:?}");
    };
    if answer.status != 101 && !answer.closes() {
        let next = format!("GET {sentinel} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(conn.send(next.as_bytes()).await);
        match conn.read().await {
            Read::Response(r) => {
                assert_eq!(r.status, 200, "sentinel after {request:?}: {r:?}");
                assert_eq!(r.body, b"ok");
            }
            Read::Closed => panic!("closed before the sentinel after {request:?}"),
        }
    }
    answer
}

mod hygiene;
mod upgrades;
