//! The listener's rustls config over in-memory streams: TLS 1.2 and 1.3
//! negotiate, a TLS 1.1 ClientHello is refused, ALPN offers h2 and
//! http/1.1, and an SNI without a certificate fails the handshake.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::compile::certs::tests::certificate;
use crate::compile::certs::{CompiledCertificates, KeyCache};

/// A resolver over a fixed table, standing in for the live config.
struct Table(CompiledCertificates);

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Table")
    }
}

impl ResolvesServerCert for Table {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.resolve(hello.server_name())
    }
}

struct Setup {
    acceptor: TlsAcceptor,
    roots: RootCertStore,
}

fn setup() -> Setup {
    let cert = certificate(&["a.example.test"]);
    let table =
        CompiledCertificates::build(std::slice::from_ref(&cert), &KeyCache::default()).unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(cert.spec.cert.as_bytes()).unwrap())
        .unwrap();
    Setup {
        acceptor: TlsAcceptor::from(Arc::new(server_config(Arc::new(Table(table))).unwrap())),
        roots,
    }
}

/// Handshakes with a client limited to `versions`, offering `alpn`;
/// returns the version and protocol agreed, or the client's error.
async fn handshake(
    setup: &Setup,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
    sni: &str,
) -> Result<(ProtocolVersion, Option<Vec<u8>>), String> {
    let mut client =
        ClientConfig::builder_with_provider(Arc::new(crate::compile::certs::provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(setup.roots.clone())
            .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = setup.acceptor.clone();
    let server = tokio::spawn(async move { acceptor.accept(server_io).await.map(|_| ()) });
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let result = TlsConnector::from(Arc::new(client))
        .connect(name, client_io)
        .await
        .map(|tls| {
            let (_, conn) = tls.get_ref();
            (
                conn.protocol_version().unwrap(),
                conn.alpn_protocol().map(<[u8]>::to_vec),
            )
        })
        .map_err(|e| e.to_string());
    let _ = server.await;
    result
}

#[tokio::test]
async fn tls_12_and_13_with_alpn() {
    let s = setup();
    let both = [&TLS13, &TLS12];
    assert_eq!(
        handshake(&s, &both, &[b"h2", b"http/1.1"], "a.example.test").await,
        Ok((ProtocolVersion::TLSv1_3, Some(b"h2".to_vec())))
    );
    assert_eq!(
        handshake(&s, &[&TLS12], &[b"http/1.1"], "a.example.test").await,
        Ok((ProtocolVersion::TLSv1_2, Some(b"http/1.1".to_vec())))
    );
    assert_eq!(
        handshake(&s, &[&TLS13], &[], "a.example.test").await,
        Ok((ProtocolVersion::TLSv1_3, None)),
        "ALPN is optional"
    );
    let unknown = handshake(&s, &both, &[], "b.example.test").await;
    assert!(
        unknown.is_err(),
        "no certificate, no handshake: {unknown:?}"
    );
}

/// rustls clients cannot speak TLS 1.1, so this writes a TLS 1.1
/// ClientHello by hand and expects a fatal `protocol_version` alert.
#[tokio::test]
async fn tls_11_is_refused() {
    let s = setup();
    let (mut client, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = s.acceptor.clone();
    let server = tokio::spawn(async move { acceptor.accept(server_io).await.map(|_| ()) });

    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES-CBC-SHA suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    // SNI and signature_algorithms, so the certificate resolves and the
    // version is what fails (rustls checks it after choosing a certificate).
    let name = b"a.example.test";
    let mut sni = vec![0x00];
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let sni = [&((sni.len()) as u16).to_be_bytes()[..], &sni].concat();
    let sigs = [0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01];
    let mut extensions = Vec::new();
    for (kind, data) in [(0x0000u16, &sni[..]), (0x000d, &sigs[..])] {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extensions.extend_from_slice(data);
    }
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut hello = vec![0x01, 0x00];
    hello.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hello.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    record.extend_from_slice(&hello);
    client.write_all(&record).await.unwrap();

    let mut answer = [0u8; 7];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[0], 0x15, "an alert record: {answer:?}");
    assert_eq!(&answer[5..], &[2, 70], "fatal protocol_version: {answer:?}");
    assert!(server.await.unwrap().is_err());
}
