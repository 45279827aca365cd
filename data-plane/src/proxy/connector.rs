//! How upstream connections are made: TCP from hyper-util's `HttpConnector`
//! (connect timeout, nodelay), a write deadline around the socket, and TLS
//! from hyper-rustls when the upstream sets `tls` (offering ALPN `h2` when
//! its protocol is `http2`; none for `http1`, which every TLS server takes
//! as HTTP/1.1), with the client certificate of `tls.client_certificate`
//! for targets that ask for one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::client::WantsClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use turnpike_model::{UpstreamProtocol, UpstreamTls};

use crate::Error;

/// The connector every upstream client uses.
pub type UpstreamConnector = HttpsConnector<TimeoutConnector>;

/// The certificate an upstream presents to its targets: the PEM chain and
/// key of the certificate its `tls.client_certificate` names, as the
/// snapshot holds them. Part of what a pool is kept for, so a certificate
/// whose PEM or key changes gets new connections.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientCert {
    pub cert: String,
    pub key: String,
}

// By hand: the key has no place in a log line.
impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert").finish_non_exhaustive()
    }
}

/// Builds the connector of one upstream. Errors only on a CA bundle or a
/// client certificate that does not load (the control plane checked them,
/// so only a bad snapshot).
pub fn build(
    connect: Duration,
    write: Duration,
    protocol: UpstreamProtocol,
    tls: Option<&UpstreamTls>,
    client_cert: Option<&ClientCert>,
) -> Result<UpstreamConnector, Error> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect));
    http.set_nodelay(true);
    // The scheme of the request URI says TLS or not; it is set from the
    // upstream's `tls`, never from the client's request.
    http.enforce_http(false);
    let inner = TimeoutConnector { http, write };
    let config = tls_config(tls, client_cert)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match tls.and_then(|t| t.server_name.as_deref()) {
        Some(name) => {
            let name = ServerName::try_from(name.to_owned())
                .map_err(|e| Error::Compile(format!("upstream tls.server_name: {e}")))?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(match protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(inner),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(inner),
    })
}

/// TLS settings: the upstream's CA or the bundled public roots, its client
/// certificate if any; TLS 1.2+ (rustls has nothing older); ALPN is set by
/// the connector builder.
fn tls_config(
    tls: Option<&UpstreamTls>,
    client_cert: Option<&ClientCert>,
) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Compile(format!("upstream TLS: {e}")))?;
    let mut roots = RootCertStore::empty();
    match tls.and_then(|t| t.ca.as_deref()) {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| Error::Compile(format!("upstream tls.ca: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Compile(format!("upstream tls.ca: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = if tls.is_some_and(|t| !t.verify) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    with_client_cert(builder, client_cert)
}

/// Adds the client certificate: rustls sends it only to a target that asks
/// (a CertificateRequest), so one that does not is unaffected.
fn with_client_cert(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    client_cert: Option<&ClientCert>,
) -> Result<ClientConfig, Error> {
    let Some(c) = client_cert else {
        return Ok(builder.with_no_client_auth());
    };
    let refused = |what: String| Error::Compile(format!("tls.client_certificate: {what}"));
    let chain = CertificateDer::pem_slice_iter(c.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refused(format!("cert is not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(refused("cert holds no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(c.key.as_bytes())
        .map_err(|e| refused(format!("key is not a PEM private key: {e}")))?;
    builder.with_client_auth_cert(chain, key).map_err(|e| {
        refused(format!(
            "key does not load or does not match the certificate: {e}"
        ))
    })
}

/// `tls.verify: false`: the handshake's signatures are still checked (so the
/// peer holds the key of the certificate it shows), not the certificate.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `HttpConnector` whose connections fail a write that stalls longer than
/// the upstream's `write_ms`.
#[derive(Clone)]
pub struct TimeoutConnector {
    http: HttpConnector,
    write: Duration,
}

impl tower_service::Service<Uri> for TimeoutConnector {
    type Response = TokioIo<WriteTimeout<TcpStream>>;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let write = self.write;
        Box::pin(async move {
            // The deadline wraps the tokio socket, and hyper sees it
            // through one adapter (`h1::io` takes it back out).
            Ok(TokioIo::new(WriteTimeout {
                inner: connecting.await?.into_inner(),
                timeout: write,
                stalled: None,
            }))
        })
    }
}

/// A connection whose writes fail with `TimedOut` once the peer has taken
/// no bytes for `timeout` (nginx's `proxy_send_timeout`). The timer exists
/// only while a write is blocked.
pub struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteTimeout<T> {
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "upstream write timed out",
        ))
    }

    fn progressed<R>(
        &mut self,
        r: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(v) => {
                self.stalled = None;
                Poll::Ready(v)
            }
            Poll::Pending => self.stall(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for WriteTimeout<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
