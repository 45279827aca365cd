//! TLS on the proxy (`--proxy-tls-listen`), with real processes: the
//! certificates uploaded through the admin API are served by SNI (exact,
//! then one-label wildcard, else the handshake is refused), HTTP/1.1 and
//! h2 are both proxied after ALPN, the upstream sees
//! `X-Forwarded-Proto: https`, and replacing a certificate changes what new
//! handshakes get while an open h2 connection keeps working.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use turnpike_tests::{
    ControlPlane, DataPlane, Echo, assert_status, drop_database, free_port, fresh_database_url,
    wait_for,
};

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// A test CA and the leaf certificates it signs, in memory.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "turnpike test CA");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A certificate for `san` and its key, as PEM.
    fn leaf(&self, san: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, san);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client that trusts only this CA and never resumes a session (so
    /// every connection sees the certificate the server picks now).
    fn connector(&self, alpn: &[u8]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// An HTTP connection over TLS: HTTP/1.1 or h2, as ALPN agreed.
enum Conn {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// Connects with `sni` (an IP sends none) offering one ALPN protocol;
/// returns the connection and the leaf certificate the server presented,
/// or the handshake's error.
async fn open(
    ca: &Ca,
    port: u16,
    sni: &str,
    alpn: &[u8],
) -> Result<(Conn, CertificateDer<'static>), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = ca
        .connector(alpn)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let leaf = session.peer_certificates().unwrap()[0].clone().into_owned();
    assert_eq!(session.alpn_protocol(), Some(alpn), "ALPN agreed");
    let io = TokioIo::new(tls);
    let conn = if alpn == b"h2" {
        let (send, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        Conn::H2(send)
    } else {
        let (send, conn) = http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Conn::H1(send)
    };
    Ok((conn, leaf))
}

/// One GET through the connection; the echo's JSON answer.
async fn get(conn: &mut Conn, host: &str, path: &str) -> serde_json::Value {
    let resp = match conn {
        Conn::H1(send) => {
            send.ready().await.unwrap();
            let req = Request::get(path).header(header::HOST, host);
            send.send_request(req.body(Empty::new()).unwrap()).await
        }
        Conn::H2(send) => {
            let req = Request::get(format!("https://{host}{path}"));
            send.send_request(req.body(Empty::new()).unwrap()).await
        }
    }
    .expect("the proxy answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_by_sni_over_http1_and_h2() {
    let (url, db) = fresh_database_url();
    let _cleanup = Cleanup(db);
    let ca = Ca::new();
    let cp = ControlPlane::start(&url).await;
    let echo = Echo::start("echo-tls").await;
    let tls_port = free_port();
    let dp = DataPlane::start_args(
        &cp.cluster,
        &cp.cluster_token,
        &["--proxy-tls-listen".into(), format!("127.0.0.1:{tls_port}")],
    );

    let write = |path: &'static str, body: serde_json::Value| {
        let cp = &cp;
        async move {
            let answer = cp.api(Method::POST, path, Some(body)).await;
            assert_status(&answer, StatusCode::CREATED);
            answer
        }
    };
    write(
        "/upstreams",
        json!({"name": "u", "targets": [{"address": echo.addr}]}),
    )
    .await;
    write(
        "/routes",
        json!({"name": "r", "paths": ["/"], "upstream": "u"}),
    )
    .await;
    let (a_cert, a_key) = ca.leaf("a.example.test");
    let (b_cert, b_key) = ca.leaf("*.b.example.test");
    let a = write(
        "/certificates",
        json!({"cert": a_cert, "key": a_key, "snis": ["a.example.test"]}),
    )
    .await;
    let b = write(
        "/certificates",
        json!({"cert": b_cert, "key": b_key, "snis": ["*.b.example.test"]}),
    )
    .await;
    dp.wait_for_version(b.version()).await;
    assert_eq!(dp.status().await.unwrap()["tls_certificates"], 2);

    // The exact name gets A, over HTTP/1.1; the upstream hears https.
    let (mut h1, leaf) = open(&ca, tls_port, "a.example.test", b"http/1.1")
        .await
        .unwrap();
    assert_eq!(leaf, der(&a_cert));
    let seen = get(&mut h1, "a.example.test", "/one").await;
    assert_eq!(seen["name"], "echo-tls");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-host"], "a.example.test");

    // One label under the wildcard gets B, over h2.
    let (mut h2, leaf) = open(&ca, tls_port, "x.b.example.test", b"h2")
        .await
        .unwrap();
    assert_eq!(leaf, der(&b_cert));
    let seen = get(&mut h2, "x.b.example.test", "/two").await;
    assert_eq!(seen["path"], "/two");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");

    // No certificate for the name, two labels under the wildcard, or no
    // SNI at all: the handshake is refused (rustls' access_denied alert).
    for sni in ["c.example.test", "y.x.b.example.test", "127.0.0.1"] {
        let refused = open(&ca, tls_port, sni, b"h2").await.err();
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("AccessDenied")),
            "{sni}: {refused:?}"
        );
    }

    // The plaintext listener still says http.
    let plain = dp.get("/three").await;
    assert_eq!(plain.json()["headers"]["x-forwarded-proto"], "http");

    // Replace A while an h2 connection that got A is open.
    let (mut open_h2, leaf) = open(&ca, tls_port, "a.example.test", b"h2").await.unwrap();
    assert_eq!(leaf, der(&a_cert));
    let (a2_cert, a2_key) = ca.leaf("a.example.test");
    let id = a.json()["id"].as_str().unwrap().to_owned();
    let replaced = cp
        .api(
            Method::PUT,
            &format!("/certificates/{id}"),
            Some(json!({"cert": a2_cert, "key": a2_key, "snis": ["a.example.test"]})),
        )
        .await;
    assert_status(&replaced, StatusCode::OK);
    dp.wait_for_version(replaced.version()).await;

    // The open connection keeps serving; a new one gets the new certificate.
    let seen = get(&mut open_h2, "a.example.test", "/four").await;
    assert_eq!(seen["path"], "/four");
    let (mut fresh, leaf) = wait_for(
        "a new handshake to get the new certificate",
        Duration::from_secs(10),
        || async {
            let (conn, leaf) = open(&ca, tls_port, "a.example.test", b"h2").await.ok()?;
            (leaf == der(&a2_cert)).then_some((conn, leaf))
        },
    )
    .await;
    assert_ne!(leaf, der(&a_cert));
    assert_eq!(
        get(&mut fresh, "a.example.test", "/five").await["path"],
        "/five"
    );
    // The HTTP/1.1 connection from before the change still works too.
    assert_eq!(get(&mut h1, "a.example.test", "/six").await["path"], "/six");
}
