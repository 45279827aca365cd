//! TLS to the control plane: the CA that signed the control plane's
//! certificate, and optionally this data plane's own certificate for
//! mutual TLS. `https://` control-plane addresses need the CA: there is no
//! fallback to the system's roots, on purpose, so a data plane only ever
//! trusts the cluster's own CA.

use std::fmt;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// PEM inputs (`--cluster-ca`, `--cluster-tls-cert`, `--cluster-tls-key`).
#[derive(Clone)]
pub struct ClusterTls {
    pub ca_pem: String,
    /// Certificate chain and key presented to the control plane.
    pub identity: Option<(String, String)>,
}

// By hand: the key must not reach logs through a `{:?}` of the settings.
impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls")
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterTls {
    pub fn client_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}
