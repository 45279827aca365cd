//! The data plane's one error enum; [`Error::status`] is the one place that
//! maps proxy errors to HTTP statuses (and [`Error::closes_connection`]
//! says which answers also close the connection).

use std::path::PathBuf;

use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route matches the request")]
    NoRoute,
    /// An HTTP/1 request head that does not parse, or frames its body
    /// ambiguously (`listener::h1::head`).
    #[error("malformed request: {0}")]
    MalformedRequest(&'static str),
    /// More header fields, or a longer head, than the listener's limits.
    #[error("{0}")]
    HeadTooLarge(&'static str),

    #[error("request has more than one Host header")]
    AmbiguousHost,
    #[error("HTTP/1.1 request without a Host header")]
    MissingHost,
    #[error("invalid host: {0}")]
    InvalidHost(&'static str),
    #[error("the request URI's authority differs from the Host header")]
    HostMismatch,
    #[error("request path refused: {0}")]
    InvalidPath(&'static str),
    #[error("request target longer than {0} bytes")]
    UriTooLong(usize),
    #[error("invalid request header: {0}")]
    InvalidHeader(&'static str),
    #[error("ambiguous request framing: {0}")]
    InvalidFraming(&'static str),
    #[error("only the chunked transfer coding is supported")]
    UnsupportedTransferEncoding,
    /// The client's body broke off or was malformed (a bad chunk, an early
    /// end) while it was being forwarded.
    #[error("the request body is malformed or incomplete")]
    ClientBody(#[source] crate::listener::BodyError),
    /// The request body is (declared or turned out) larger than the
    /// `--max-body-bytes` limit.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    /// The client stopped sending its body for longer than
    /// `--body-read-timeout`.
    #[error("the request body stalled for more than {0:?}")]
    BodyTimeout(std::time::Duration),
    /// Reading the client's body failed (bad chunk, early end); wrapped on
    /// its way through the upstream client, unwrapped by `classify`.
    #[error("reading the request body failed")]
    BodyRead(#[source] crate::listener::BodyError),
    /// A policy must rewrite the request body, but the body is compressed
    /// (`Content-Encoding` other than identity).
    #[error("a request body with Content-Encoding {0} cannot be rewritten: send it uncompressed")]
    EncodedBody(String),
    /// A policy answered instead of the upstream (401, 403, 429...).
    #[error("{}", .0.message)]
    Rejected(Box<crate::policy::Rejection>),
    #[error("upstream '{0}' has no target in rotation")]
    NoTarget(String),
    /// The upstream's circuit breaker is open: too many requests in
    /// progress or waiting.
    #[error("upstream '{0}' is at its limit of {1}")]
    CircuitOpen(String, &'static str),
    #[error("could not connect to the upstream")]
    UpstreamConnect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("connecting to the upstream timed out")]
    UpstreamConnectTimeout,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// An HTTP/2 exchange failed (hyper's client).
    #[error("the upstream sent an invalid response")]
    UpstreamProtocol(#[source] hyper::Error),
    /// An HTTP/1 response that does not parse, or is framed ambiguously.
    #[error("the upstream sent an invalid response: {0}")]
    UpstreamInvalid(crate::proxy::h1::decode::Invalid),
    /// The upstream closed its HTTP/1 connection before the response was
    /// complete.
    #[error("the upstream closed the connection before its response was complete")]
    UpstreamClosed,
    /// Reading from or writing to an HTTP/1 upstream connection failed.
    #[error("the upstream connection failed")]
    UpstreamIo(#[source] std::io::Error),
    /// Parsed by hyper, but framed ambiguously (`Content-Length` with
    /// `Transfer-Encoding`, several lengths): not passed on.
    #[error("the upstream sent an ambiguous response: {0}")]
    UpstreamFraming(&'static str),
    /// A 101 the proxy cannot pass on: to a request that asked for no
    /// WebSocket, or to another protocol.
    #[error("the upstream switched protocols wrongly: {0}")]
    UpstreamUpgrade(&'static str),
    /// A policy must rewrite the upstream's response body, and it could
    /// not: too large to read whole, broken off, or not what its
    /// `Content-Type` says.
    #[error("the upstream's response body {0}")]
    ResponseBody(String),
    #[error("could not build the upstream request: {0}")]
    BadUpstreamRequest(String),
    #[error("config refused: {0}")]
    Config(#[from] turnpike_model::ModelError),
    #[error("config could not be compiled: {0}")]
    Compile(String),
    #[error("control plane: {0}")]
    ControlPlane(String),
    /// The TLS listener could not be set up.
    #[error("TLS listener: {0}")]
    Tls(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The OpenTelemetry exporter could not be set up (`--otlp-endpoint`).
    #[error("OpenTelemetry export: {0}")]
    Otel(String),
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
            Error::Rejected(r) => r.status,
            Error::AmbiguousHost
            | Error::MalformedRequest(_)
            | Error::MissingHost
            | Error::InvalidHost(_)
            | Error::HostMismatch
            | Error::InvalidPath(_)
            | Error::InvalidHeader(_)
            | Error::InvalidFraming(_)
            | Error::ClientBody(_)
            | Error::BodyRead(_) => StatusCode::BAD_REQUEST,
            Error::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Error::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::EncodedBody(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::UnsupportedTransferEncoding => StatusCode::NOT_IMPLEMENTED,
            Error::NoTarget(_) | Error::CircuitOpen(..) => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamConnect(_)
            | Error::UpstreamProtocol(_)
            | Error::UpstreamInvalid(_)
            | Error::UpstreamClosed
            | Error::UpstreamIo(_)
            | Error::UpstreamFraming(_)
            | Error::UpstreamUpgrade(_)
            | Error::ResponseBody(_)
            | Error::BadUpstreamRequest(_) => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout | Error::UpstreamConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
            Error::Config(_)
            | Error::Compile(_)
            | Error::ControlPlane(_)
            | Error::Tls(_)
            | Error::Io(_)
            | Error::Otel(_)
            | Error::CacheRefused { .. }
            | Error::CacheWrite { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the answer closes the client's connection: after a request
    /// refused for its framing, head or body, what follows on the
    /// connection cannot be trusted to start a new request (and the body
    /// was not read).
    pub fn closes_connection(&self) -> bool {
        self.status().is_client_error() && !matches!(self, Error::NoRoute | Error::Rejected(_))
            || matches!(self, Error::UnsupportedTransferEncoding)
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
