//! WebSocket upgrades through a real data plane: a raw-socket client, and an
//! upstream that answers the upgrade with a 101 and then echoes every byte
//! (the proxy splices bytes, so no frames are needed). Also: a refused 101
//! is proxied as a normal answer, an `Upgrade: h2c` is not forwarded, and an
//! open tunnel ends at shutdown within the drain deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http::{Method, StatusCode};
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use turnpike_tests::{ControlPlane, DataPlane, Db, assert_status, fresh_database_url};

/// Longest wait for any byte or answer: a hang fails instead of blocking.
const WAIT: Duration = Duration::from_secs(20);
/// RFC 6455 §1.3's example key and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Sent by the upstream right after its 101, unasked: the upstream-to-client
/// direction works on its own.
const GREETING: &[u8] = b"hello from upstream\n";

/// The upstream: records each request head (lowercased); answers a
/// WebSocket upgrade with 101 and echoes, a target containing `deny` with
/// 403, anything else with 200.
struct WsUpstream {
    addr: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl WsUpstream {
    async fn start() -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, seen.clone()));
            }
        });
        WsUpstream { addr, heads }
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
    let (head, rest) = read_head(&mut stream).await;
    let lower = head.to_ascii_lowercase();
    heads.lock().unwrap().push(lower.clone());
    let websocket = lower.contains("\r\nupgrade: websocket\r\n");
    if lower.contains("deny") || !websocket {
        let (status, body) = if websocket {
            ("403 Forbidden", "denied")
        } else {
            ("200 OK", "ok")
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        return;
    }
    let key = header(&head, "sec-websocket-key").unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept(&key)
    );
    stream.write_all(answer.as_bytes()).await.unwrap();
    stream.write_all(GREETING).await.unwrap();
    stream.write_all(&rest).await.unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sec-WebSocket-Accept: base64(SHA-1(key + the RFC 6455 GUID)).
fn accept(key: &str) -> String {
    let digest = Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Reads up to the end of a head; returns it and any bytes after it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("a head in time")
            .expect("readable");
        assert!(
            n > 0,
            "closed before a full head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("bytes in time")
        .expect("bytes read");
    buf
}

/// Sends `msg` in several writes and reads the same bytes back.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) {
    for part in msg.chunks(7) {
        stream.write_all(part).await.unwrap();
        stream.flush().await.unwrap();
    }
    assert_eq!(read_exactly(stream, msg.len()).await, msg);
}

fn upgrade_request(path: &str, connection: &str, upgrade: &str) -> String {
    // h2c's own header, named by Connection, so it must be dropped too.
    let settings = if upgrade == "h2c" {
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    } else {
        ""
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: chat.example.com\r\nConnection: {connection}\r\n\
         Upgrade: {upgrade}\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         {settings}\r\n"
    )
}

/// Connects to the data plane's proxy and sends `request`; returns the
/// stream and the answer's head.
async fn open(dp: &DataPlane, request: &str) -> (TcpStream, String) {
    let addr = dp.proxy.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    // Byte by byte, so nothing after the head (tunnel bytes, a body) is
    // taken with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend(read_exactly(&mut stream, 1).await);
    }
    (stream, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_spliced_and_others_are_not() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let upstream = WsUpstream::start().await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = cp
        .api(
            Method::POST,
            "/upstreams",
            Some(json!({"name": "ws", "targets": [{"address": upstream.addr}]})),
        )
        .await;
    assert_status(&up, StatusCode::CREATED);
    let route = cp
        .api(
            Method::POST,
            "/routes",
            Some(json!({"name": "ws", "paths": ["/ws"], "upstream": "ws"})),
        )
        .await;
    assert_status(&route, StatusCode::CREATED);
    dp.wait_for_version(route.version()).await;

    // The upgrade goes through (tokens in any case), the upstream's 101
    // comes back with its accept value, and bytes flow both ways.
    let (mut ws, head) = open(
        &dp,
        &upgrade_request("/ws/chat", "keep-alive, Upgrade", "WebSocket"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header(&head, "upgrade").as_deref(),
        Some("websocket"),
        "{head}"
    );
    assert!(
        header(&head, "connection").is_some_and(|c| c.eq_ignore_ascii_case("upgrade")),
        "{head}"
    );
    assert_eq!(
        header(&head, "sec-websocket-accept").as_deref(),
        Some(ACCEPT),
        "{head}"
    );
    assert!(header(&head, "x-request-id").is_some(), "{head}");
    assert_eq!(read_exactly(&mut ws, GREETING.len()).await, GREETING);
    round_trip(&mut ws, b"first message, sent in pieces through the tunnel").await;
    round_trip(&mut ws, &[0x81, 0x05, 0, 1, 2, 0xff, 0xfe]).await;
    let sent = upstream.heads_with("/ws/chat");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("\r\nconnection: upgrade\r\n"),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains(&format!(
        "\r\nsec-websocket-key: {}\r\n",
        KEY.to_ascii_lowercase()
    )));
    assert!(
        sent[0].contains("\r\nupgrade: websocket\r\n"),
        "{}",
        sent[0]
    );

    // A config push does not disturb the open tunnel.
    let patched = cp
        .api(
            Method::PATCH,
            "/routes/ws",
            Some(json!({"tags": ["pushed"]})),
        )
        .await;
    assert_status(&patched, StatusCode::OK);
    dp.wait_for_version(patched.version()).await;
    round_trip(&mut ws, b"second message, after a config push").await;

    // The upstream refusing the upgrade: a normal answer, body and all.
    let (mut denied, head) = open(&dp, &upgrade_request("/ws/deny", "Upgrade", "websocket")).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(read_exactly(&mut denied, 6).await, b"denied");

    // h2c is not a WebSocket: Upgrade and what Connection names are dropped,
    // and the answer is the upstream's plain 200.
    let (mut h2c, head) = open(
        &dp,
        &upgrade_request("/ws/h2c", "Upgrade, HTTP2-Settings", "h2c"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(read_exactly(&mut h2c, 2).await, b"ok");
    let sent = upstream.heads_with("/ws/h2c");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(!sent[0].contains("\r\nupgrade:"), "{}", sent[0]);
    assert!(!sent[0].contains("http2-settings"), "{}", sent[0]);
    assert!(!sent[0].contains("\r\nconnection: upgrade"), "{}", sent[0]);

    // Shutdown: the open tunnel keeps the drain waiting, and is closed at
    // the drain deadline (10 s); the process then exits cleanly.
    let mut proc = dp.proc;
    let exit = tokio::task::spawn_blocking(move || proc.terminate(Duration::from_secs(30)));
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(30), ws.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "tunnel closed at the drain: {closed:?}"
    );
    assert_eq!(exit.await.unwrap(), Some(0));
}
