//! TLS of the cluster listener. With a client CA, every data plane must
//! present a certificate that CA signed (mutual TLS) before its stream is
//! even opened; the cluster token is checked on top, so a stolen token alone
//! is not enough, and neither is a certificate alone.

use std::fmt;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// PEM inputs of the cluster listener's TLS (`--cluster-tls-*`).
#[derive(Clone)]
pub struct ClusterTls {
    /// The control plane's certificate chain.
    pub cert_pem: String,
    pub key_pem: String,
    /// When set, data planes must present a certificate signed by it.
    pub client_ca_pem: Option<String>,
}

// By hand: the key must not reach logs through a `{:?}` of the settings.
impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls")
            .field("key_pem", &"<redacted>")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterTls {
    /// TLS 1.2 and 1.3 only (rustls offers nothing older); client
    /// certificates required when a client CA is configured.
    pub fn server_config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(false),
            None => config,
        }
    }
}
