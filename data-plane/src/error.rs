//! The data plane's one error enum; [`Error::status`] is the one place that
//! maps proxy errors to HTTP statuses.

use std::path::PathBuf;

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route matches the request")]
    NoRoute,
    #[error("request has more than one Host header")]
    AmbiguousHost,
    #[error("upstream '{0}' has no target in rotation")]
    NoTarget(String),
    #[error("could not connect to the upstream")]
    UpstreamConnect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    #[error("the upstream sent an invalid response")]
    UpstreamProtocol(#[source] hyper_util::client::legacy::Error),
    #[error("could not build the upstream request: {0}")]
    BadUpstreamRequest(String),
    #[error("config refused: {0}")]
    Config(#[from] turnpike_model::ModelError),
    #[error("config could not be compiled: {0}")]
    Compile(String),
    #[error("control plane: {0}")]
    ControlPlane(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The disk cache holds something that must not be served: truncated,
    /// corrupt, from another format, or a config this data plane refuses.
    #[error("cached config {} refused: {reason}", path.display())]
    CacheRefused { path: PathBuf, reason: String },
    #[error("cached config {} not written: {source}", path.display())]
    CacheWrite {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoRoute => StatusCode::NOT_FOUND,
            Error::AmbiguousHost => StatusCode::BAD_REQUEST,
            Error::NoTarget(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamConnect(_)
            | Error::UpstreamProtocol(_)
            | Error::BadUpstreamRequest(_) => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Error::Config(_)
            | Error::Compile(_)
            | Error::ControlPlane(_)
            | Error::Io(_)
            | Error::CacheRefused { .. }
            | Error::CacheWrite { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::ControlPlane(e.to_string())
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::ControlPlane(format!("{}: {}", s.code(), s.message()))
    }
}
