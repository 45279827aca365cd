//! Mutual TLS to upstreams, with real processes: a TLS upstream in the
//! test that requires a client certificate signed by its CA (rustls'
//! `WebPkiClientVerifier`), and the upstream's `tls.client_certificate`
//! naming a certificate entity (without SNIs) that the data plane presents.
//! Without it the handshake is refused (502); with it the request goes
//! through; a certificate renewed under the same id is what the next
//! connection presents.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use turnpike_tests::{Answer, ControlPlane, DataPlane, Db, assert_status, fresh_database_url};

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

    /// A certificate for `name` (its CN and SAN) and its key, as PEM.
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS upstream (a `localhost` certificate from `server_ca`) that
/// requires a client certificate from `client_ca`. It answers 200 and
/// records the leaf certificate each request's connection presented.
struct Upstream {
    addr: String,
    presented: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    async fn start(server_ca: &Ca, client_ca: &Ca) -> Upstream {
        let mut roots = RootCertStore::empty();
        roots.add(client_ca.issuer.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), ring())
            .build()
            .unwrap();
        let (cert, key) = server_ca.leaf("localhost");
        let mut config = ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let presented = Arc::new(Mutex::new(Vec::new()));
        let log = presented.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    // No (or an untrusted) client certificate: the handshake
                    // fails and nothing is served.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let leaf = tls.get_ref().1.peer_certificates().map(|c| c[0].clone());
                    let service = service_fn(move |_req: Request<Incoming>| {
                        if let Some(leaf) = &leaf {
                            log.lock().unwrap().push(leaf.clone());
                        }
                        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("mtls")))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            presented,
            task,
        }
    }

    /// The leaf certificates presented so far, one per request served.
    fn presented(&self) -> Vec<CertificateDer<'static>> {
        self.presented.lock().unwrap().clone()
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Writes `body` with `method` to `path` and waits until `dp` runs the
/// version it produced.
async fn write(
    cp: &ControlPlane,
    dp: &DataPlane,
    method: Method,
    path: &str,
    body: Value,
) -> Answer {
    let created = method == Method::POST;
    let a = cp.api(method, path, Some(body)).await;
    assert_status(
        &a,
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
    );
    dp.wait_for_version(a.version()).await;
    a
}

async fn get(dp: &DataPlane, path: &str) -> Answer {
    tokio::time::timeout(WAIT, dp.get(path))
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} within {WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_client_certificate_is_presented_to_targets_that_require_one() {
    let (url, name) = fresh_database_url();
    let _db = Db(name);
    let cp = ControlPlane::start(&url).await;
    let dp = DataPlane::start(&cp.cluster, &cp.cluster_token);
    let server_ca = Ca::new("upstream server CA");
    let client_ca = Ca::new("upstream client CA");
    let up = Upstream::start(&server_ca, &client_ca).await;

    // A client certificate from the CA the upstream trusts, as a
    // certificate entity without SNIs.
    let (cert, key) = client_ca.leaf("gateway.client.test");
    let c = write(
        &cp,
        &dp,
        Method::POST,
        "/certificates",
        json!({"cert": cert, "key": key}),
    )
    .await;
    let cert_id = c.json()["id"].as_str().unwrap().to_owned();

    // Verified TLS to the upstream, one target and no retries (each request
    // is one attempt), but no client certificate: the upstream refuses the
    // handshake.
    let tls = json!({"ca": server_ca.issuer.pem(), "server_name": "localhost"});
    let mut upstream =
        json!({"name": "u", "targets": [{"address": up.addr}], "retries": 0, "tls": tls});
    write(&cp, &dp, Method::POST, "/upstreams", upstream.clone()).await;
    write(
        &cp,
        &dp,
        Method::POST,
        "/routes",
        json!({"name": "r", "paths": ["/"], "upstream": "u"}),
    )
    .await;
    let refused = get(&dp, "/without").await;
    assert_status(&refused, StatusCode::BAD_GATEWAY);
    assert!(up.presented().is_empty(), "nothing was served");

    // With the certificate: served, and the upstream saw that certificate.
    upstream["tls"]["client_certificate"] = json!(cert_id);
    write(&cp, &dp, Method::PUT, "/upstreams/u", upstream.clone()).await;
    let ok = get(&dp, "/with").await;
    assert_status(&ok, StatusCode::OK);
    assert_eq!(ok.body, "mtls");
    assert_eq!(up.presented(), [der(&cert)]);

    // The certificate entity changes under the same id (the upstream's spec
    // does not): the next connection presents the new one. First one the
    // upstream does not trust...
    let stranger = Ca::new("someone else's CA");
    let (untrusted, untrusted_key) = stranger.leaf("gateway.client.test");
    let one = format!("/certificates/{cert_id}");
    write(
        &cp,
        &dp,
        Method::PUT,
        &one,
        json!({"cert": untrusted, "key": untrusted_key}),
    )
    .await;
    assert_status(&get(&dp, "/untrusted").await, StatusCode::BAD_GATEWAY);
    assert_eq!(up.presented().len(), 1, "refused: {:?}", up.presented());

    // ...then a renewed one it does.
    let (renewed, renewed_key) = client_ca.leaf("gateway.client.test");
    write(
        &cp,
        &dp,
        Method::PUT,
        &one,
        json!({"cert": renewed, "key": renewed_key}),
    )
    .await;
    assert_status(&get(&dp, "/renewed").await, StatusCode::OK);
    assert_eq!(up.presented(), [der(&cert), der(&renewed)]);

    // Back without a client certificate: refused again.
    upstream["tls"]
        .as_object_mut()
        .unwrap()
        .remove("client_certificate");
    write(&cp, &dp, Method::PUT, "/upstreams/u", upstream).await;
    assert_status(&get(&dp, "/again-without").await, StatusCode::BAD_GATEWAY);
    assert_eq!(up.presented().len(), 2);
}
