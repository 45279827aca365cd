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

mod clients;
mod targets;
mod write_timeout;
