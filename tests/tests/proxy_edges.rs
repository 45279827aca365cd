//! Edges of the proxy core, with real processes: a WebSocket upgrade over
//! the TLS listener, a `101` the proxy must not pass on (`502`), and bare LF
//! line endings in a request (docs/proxy.md, "Limits and request hygiene"
//! and "WebSocket").

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
/// websocket whatever was asked; anything else: `200 ok`, kept alive.
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
            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
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

/// A test CA signing one leaf certificate.
fn ca_and_leaf(san: &str) -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "turnpike test CA");
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, san);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (issuer.der().clone(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_is_spliced() {
    let upstream = RawUpstream::start().await;
    let tls_port = free_port();
    let args = ["--proxy-tls-listen".into(), format!("127.0.0.1:{tls_port}")];
    let (_db, cp, dp, _) = setup(&upstream.addr, &args).await;
    let (ca, cert, key) = ca_and_leaf("ws.example.test");
    let uploaded = cp
        .api(
            Method::POST,
            "/certificates",
            Some(json!({"cert": cert, "key": key, "snis": ["ws.example.test"]})),
        )
        .await;
    assert_status(&uploaded, StatusCode::CREATED);
    dp.wait_for_version(uploaded.version()).await;

    // HTTP/1.1 by ALPN: WebSockets over h2 (RFC 8441) are not supported.
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("ws.example.test").unwrap();
    let mut ws = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(ws.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    ws.write_all(upgrade_request("/ws/tls", "ws.example.test").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut ws).await;
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

    // Both ways through TLS and the tunnel.
    assert_eq!(read_exactly(&mut ws, GREETING.len()).await, GREETING);
    round_trip(&mut ws, b"a message through TLS, in pieces").await;
    round_trip(&mut ws, &[0x81, 0x05, 0, 1, 2, 0xff, 0xfe]).await;

    // The upstream saw one upgrade, marked https.
    let sent = upstream.heads_with("/ws/tls");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("\r\nupgrade: websocket\r\n"),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("\r\nconnection: upgrade\r\n"),
        "{}",
        sent[0]
    );
    assert!(
        sent[0].contains("\r\nx-forwarded-proto: https\r\n"),
        "{}",
        sent[0]
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_the_client_did_not_ask_for_is_502() {
    let upstream = RawUpstream::start().await;
    let (_db, _cp, dp, version) = setup(&upstream.addr, &[]).await;
    dp.wait_for_version(version).await;
    let addr = dp.proxy.trim_start_matches("http://");

    // The control: the same upstream's correct 101 goes through.
    let ok = answer_then_sentinel(addr, &upgrade_request("/ws/control", "h"), "/ok/0").await;
    assert_eq!(ok.status, 101, "{ok:?}");

    // A WebSocket asked, another protocol (or none) named; no upgrade asked
    // at all. The upstream switched each time, so each of its connections
    // must be dropped, never reused: the sentinel after each answer is
    // served on a fresh one (a reused one would never answer: 504).
    let cases = [
        ("h2c", upgrade_request("/h2c/ws", "h")),
        ("no Upgrade", upgrade_request("/no-upgrade/ws", "h")),
        (
            "plain GET",
            "GET /plain/get HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        ),
    ];
    for (i, (case, request)) in cases.iter().enumerate() {
        let answer = answer_then_sentinel(addr, request, &format!("/ok/{}", i + 1)).await;
        assert_eq!(answer.status, 502, "{case}: {answer:?}");
        assert!(
            answer.header("upgrade").is_none(),
            "{case}: an Upgrade went back: {answer:?}"
        );
        // The proxy's own answer, for this reason (not a failed exchange).
        let message = answer.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("switched protocols"), "{case}: {answer:?}");
    }
    for path in ["/h2c/ws", "/no-upgrade/ws", "/plain/get"] {
        let sent = upstream.heads_with(path);
        assert_eq!(sent.len(), 1, "{path}: {sent:?}");
    }
    // The plain GET asked for nothing, and nothing was asked for it.
    let plain = &upstream.heads_with("/plain/get")[0];
    assert!(!plain.contains("\r\nupgrade:"), "{plain}");
    for i in 1..=3 {
        assert_eq!(upstream.heads_with(&format!("/ok/{i} ")).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_lf_line_ends_are_read_as_crlf_and_forwarded_once() {
    let upstream = CountingUpstream::start().await;
    let (_db, _cp, dp, version) = setup(&upstream.addr, &[]).await;
    dp.wait_for_version(version).await;
    let addr = dp.proxy.trim_start_matches("http://");

    // docs/proxy.md: a bare LF ends a line; the upstream gets the fields as
    // hyper read them, re-serialised with CRLF.
    let mut conn = RawConn::connect(addr).await;
    assert!(
        conn.send(b"GET /lf/one HTTP/1.1\nHost: x\nX-A: a\nX-B: b\r\nX-C: c\n\n")
            .await
    );
    let Read::Response(first) = conn.read().await else {
        panic!("closed without an answer");
    };
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-seen-path"), Some("/lf/one"));
    assert!(!first.closes(), "{first:?}");

    // The connection goes on: the next request (bare LF again, then CRLF)
    // is parsed from where the first ended.
    assert!(conn.send(b"GET /lf/two HTTP/1.1\nHost: x\n\n").await);
    let Read::Response(second) = conn.read().await else {
        panic!("closed after the first request");
    };
    assert_eq!(second.header("x-seen-path"), Some("/lf/two"), "{second:?}");
    assert!(
        conn.send(b"GET /lf/three HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
    );
    let Read::Response(third) = conn.read().await else {
        panic!("closed after the second request");
    };
    assert_eq!(third.header("x-seen-path"), Some("/lf/three"), "{third:?}");

    // Each arrived once, as a well-formed CRLF request (the counting
    // upstream parses nothing else), with the fields split at each LF.
    let seen = upstream.requests();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/lf/one", "/lf/two", "/lf/three"]);
    let one = &seen[0];
    assert_eq!(one.header("x-a"), Some("a"), "{one:?}");
    assert_eq!(one.header("x-b"), Some("b"), "{one:?}");
    assert_eq!(one.header("x-c"), Some("c"), "{one:?}");
    for r in &seen {
        assert!(
            r.headers
                .iter()
                .all(|(k, v)| !k.contains(['\r', '\n']) && !v.contains(['\r', '\n'])),
            "{r:?}"
        );
    }
}
