//! How the data plane talks to upstreams, with real processes and upstream
//! servers in the test: TLS to the targets (verified against the upstream's
//! own CA, or not verified at all), HTTP/2 to the targets (h2 by ALPN over
//! TLS, h2c with prior knowledge in cleartext), clients speaking HTTP/2 to
//! the proxy (h2c on the plain listener, h2 by ALPN on the TLS one), and a
//! write to a target that stops reading timing out after `write_ms`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use turnpike_tests::{
    Answer, ControlPlane, DataPlane, Db, assert_status, free_port, fresh_database_url,
};

/// Longest wait for any answer: a hang fails instead of blocking.
const WAIT: Duration = Duration::from_secs(20);

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA and the leaf certificates it signs, in memory.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `san` and its key, as PEM.
    fn leaf(&self, san: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, san);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A TLS server config with a `localhost` certificate from this CA,
    /// offering exactly one ALPN protocol.
    fn server(&self, alpn: &[u8]) -> Arc<ServerConfig> {
        let (cert, key) = self.leaf("localhost");
        let mut config = ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    /// A client trusting only this CA, offering one ALPN protocol.
    fn connector(&self, alpn: &[u8]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

/// Which HTTP an [`Upstream`] speaks: one only, so a request in the other
/// fails.
#[derive(Clone, Copy)]
enum Speaks {
    Http1,
    Http2,
}

/// One request as an upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    version: Version,
    /// Whether it came over TLS.
    tls: bool,
    /// The ALPN protocol of its TLS connection, if one was agreed.
    alpn: Option<Vec<u8>>,
}

/// An HTTP upstream in the test process: answers every request with 200
/// and the request's HTTP version as the body, and records it.
struct Upstream {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    async fn start(speaks: Speaks, tls: Option<Arc<ServerConfig>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = log.clone();
                let tls = tls.clone().map(TlsAcceptor::from);
                tokio::spawn(async move {
                    match tls {
                        None => serve(tcp, speaks, false, None, log).await,
                        // A client that refuses the certificate ends the
                        // handshake: nothing to serve.
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                                serve(stream, speaks, true, alpn, log).await;
                            }
                        }
                    }
                });
            }
        });
        Upstream { addr, seen, task }
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.path == path).cloned().collect()
    }
}

async fn serve<S>(
    io: S,
    speaks: Speaks,
    tls: bool,
    alpn: Option<Vec<u8>>,
    log: Arc<Mutex<Vec<Seen>>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        log.lock().unwrap().push(Seen {
            path: req.uri().path().to_owned(),
            version: req.version(),
            tls,
            alpn: alpn.clone(),
        });
        let body = format!("{:?}", req.version());
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
    });
    let io = TokioIo::new(io);
    let _ = match speaks {
        Speaks::Http1 => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        }
        Speaks::Http2 => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
    };
}

/// Creates or replaces upstream `u` with `spec` (its name added) and, the
/// first time, route `r` on `/` to it; waits until `dp` runs the result.
async fn configure(cp: &ControlPlane, dp: &DataPlane, mut spec: Value) {
    spec["name"] = json!("u");
    let exists = cp.api(Method::GET, "/upstreams/u", None).await.status == StatusCode::OK;
    let written = if exists {
        let a = cp.api(Method::PUT, "/upstreams/u", Some(spec)).await;
        assert_status(&a, StatusCode::OK);
        a
    } else {
        let a = cp.api(Method::POST, "/upstreams", Some(spec)).await;
        assert_status(&a, StatusCode::CREATED);
        let r = cp
            .api(
                Method::POST,
                "/routes",
                Some(json!({"name": "r", "paths": ["/"], "upstream": "u"})),
            )
            .await;
        assert_status(&r, StatusCode::CREATED);
        r
    };
    dp.wait_for_version(written.version()).await;
}

async fn get(dp: &DataPlane, path: &str) -> Answer {
    tokio::time::timeout(WAIT, dp.get(path))
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} within {WAIT:?}"))
}

/// A 200 whose body is the HTTP version the upstream saw.
fn assert_ok_via(answer: &Answer, upstream_version: &str) {
    assert_status(answer, StatusCode::OK);
    assert_eq!(answer.body, upstream_version.as_bytes(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verifies_targets_against_the_upstreams_ca() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let ca = Ca::new("upstream CA");
    let other = Ca::new("another CA");
    let up = Upstream::start(Speaks::Http1, Some(ca.server(b"http/1.1"))).await;
    // One target and no retries: each request makes exactly one attempt.
    let targets = json!([{"address": up.addr}]);

    // The upstream's CA and the name on its certificate: served over TLS.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"ca": ca.pem(), "server_name": "localhost"}}),
    )
    .await;
    assert_ok_via(&get(&dp, "/verified").await, "HTTP/1.1");
    let seen = up.seen("/verified");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].tls, "over TLS: {seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_11);

    // Another CA: the certificate does not verify, nothing reaches the
    // upstream.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"ca": other.pem(), "server_name": "localhost"}}),
    )
    .await;
    let refused = get(&dp, "/other-ca").await;
    assert_status(&refused, StatusCode::BAD_GATEWAY);
    assert!(refused.json()["message"].is_string(), "{refused:?}");
    assert!(up.seen("/other-ca").is_empty());

    // The right CA but a name the certificate does not carry: refused too.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"ca": ca.pem(), "server_name": "elsewhere.test"}}),
    )
    .await;
    assert_status(&get(&dp, "/wrong-name").await, StatusCode::BAD_GATEWAY);
    assert!(up.seen("/wrong-name").is_empty());

    // No verification (and so no CA needed): served again.
    configure(
        &cp,
        &dp,
        json!({"targets": targets, "retries": 0, "tls": {"verify": false}}),
    )
    .await;
    assert_ok_via(&get(&dp, "/unverified").await, "HTTP/1.1");
    assert_eq!(up.seen("/unverified").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_the_upstream_over_tls_by_alpn() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let ca = Ca::new("upstream CA");
    // Speaks h2 only, and agrees to no other ALPN protocol.
    let up = Upstream::start(Speaks::Http2, Some(ca.server(b"h2"))).await;

    configure(
        &cp,
        &dp,
        json!({
            "targets": [{"address": up.addr}],
            "protocol": "http2",
            "tls": {"ca": ca.pem(), "server_name": "localhost"},
        }),
    )
    .await;
    assert_ok_via(&get(&dp, "/h2").await, "HTTP/2.0");
    let seen = up.seen("/h2");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_2);
    assert!(seen[0].tls, "over TLS: {seen:?}");
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_the_upstream_in_cleartext_with_prior_knowledge() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let up = Upstream::start(Speaks::Http2, None).await;
    let targets = json!([{"address": up.addr}]);

    // HTTP/1.1 (the default) to an HTTP/2-only server fails...
    configure(&cp, &dp, json!({"targets": targets, "retries": 0})).await;
    assert_status(&get(&dp, "/h1").await, StatusCode::BAD_GATEWAY);
    assert!(up.seen("/h1").is_empty());

    // ...h2c works.
    configure(&cp, &dp, json!({"targets": targets, "protocol": "http2"})).await;
    assert_ok_via(&get(&dp, "/h2c").await, "HTTP/2.0");
    let seen = up.seen("/h2c");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].version, Version::HTTP_2);
    assert!(!seen[0].tls, "cleartext: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_speak_http2_to_the_proxy_in_cleartext_and_over_tls() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let tls_port = free_port();
    let dp = DataPlane::start_args(
        &cp.cluster,
        &cp.cluster_token,
        &["--proxy-tls-listen".into(), format!("127.0.0.1:{tls_port}")],
    );
    let up = Upstream::start(Speaks::Http1, None).await;
    configure(&cp, &dp, json!({"targets": [{"address": up.addr}]})).await;
    let ca = Ca::new("proxy CA");
    let (cert, key) = ca.leaf("proxy.example.test");
    let c = cp
        .api(
            Method::POST,
            "/certificates",
            Some(json!({"cert": cert, "key": key, "snis": ["proxy.example.test"]})),
        )
        .await;
    assert_status(&c, StatusCode::CREATED);
    dp.wait_for_version(c.version()).await;

    // h2c with prior knowledge on the plain listener; HTTP/1.1 upstream.
    let h2c = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = Request::get(format!("{}/h2c", dp.proxy))
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, h2c.request(req))
        .await
        .expect("an answer in time")
        .expect("the proxy speaks h2c");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/1.1", "the upstream got HTTP/1.1");
    assert_eq!(up.seen("/h2c").len(), 1);

    // h2 by ALPN on the TLS listener.
    let tcp = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    let tls = ca
        .connector(b"h2")
        .connect(ServerName::try_from("proxy.example.test").unwrap(), tcp)
        .await
        .expect("TLS handshake with the proxy");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://proxy.example.test/tls-h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .expect("an answer in time")
        .expect("the proxy answers over h2");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/1.1");
    assert_eq!(up.seen("/tls-h2").len(), 1);
}

/// A request body of `left` bytes in 64 KiB chunks, made as it is sent.
struct Filler {
    left: usize,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const CHUNK: usize = 64 * 1024;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_reading_fails_the_request_after_write_ms() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);

    // Accepts connections and keeps them open, never reading a byte.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let upstream = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });

    let read_ms = 30_000;
    configure(
        &cp,
        &dp,
        json!({
            "targets": [{"address": addr}],
            "timeouts": {"write_ms": 300, "read_ms": read_ms},
        }),
    )
    .await;

    // 16 MiB, far more than the loopback socket buffers take (about 4 MiB
    // here), streamed: the proxy's writes stall once they are full.
    let tcp = TcpStream::connect(dp.proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/upload")
        .header(http::header::HOST, "gateway.test")
        .body(Filler {
            left: 16 * 1024 * 1024,
        })
        .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .expect("an answer before the read timeout")
        .expect("the proxy answers while the body is still unsent");
    let elapsed = started.elapsed();
    assert!(accepted.load(Ordering::SeqCst) >= 1, "the proxy connected");
    assert_eq!(
        resp.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "a stalled write is a timeout (answered after {elapsed:?})"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}: write_ms is 300, read_ms {read_ms}"
    );
    upstream.abort();
}
