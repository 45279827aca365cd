//! Policies (the API's plugins) on the request path. Each plugin is one
//! file here implementing [`Policy`]; `chain` puts a route's policies in
//! order and picks, per plugin name, the most specific instance (route and
//! consumer > consumer > route > global); `consumers` is what
//! authentication looks credentials up in.
//!
//! Order: by [`Phase`], then by each plugin's fixed priority (higher
//! first), as in this table:
//!
//! | phase | plugins (priority) |
//! |---|---|
//! | access | ip-restriction (3000), cors (2000), key-auth (1250), basic-auth (1200), jwt (1100), acl (950) |
//! | limit | rate-limit (900), request-size-limit (850) |
//! | rewrite | request-transformer (800), json-xml (700) |
//! | response | response-transformer (800), json-xml (700), cors (600) |
//! | log | access-log (100) |
//!
//! Authentication plugins run in that order; the first that finds its
//! credential in the request identifies the consumer and the others are
//! skipped. Credentials present but wrong → 401 at once; no credential for
//! any of them → 401 from the last. Consumer-scoped plugins apply from the
//! `limit` phase on, once the consumer is known.
//!
//! Bodies: policies see heads, and bodies stream through untouched, except
//! for the policies that rewrite whole bodies (`request-transformer`,
//! `response-transformer` with JSON operations; `json-xml`). Such a policy
//! hands out a [`body::BodyRewrite`] (`Policy::request_body`,
//! `Policy::response_body`; `None` by default and when its config does
//! nothing to bodies). Only on a route where some policy has one (its own
//! chain, or a consumer-scoped plugin) does the proxy (`proxy::buffered`)
//! ask the rewrites, after the head hooks, whether they `want` this
//! message (its `Content-Type`, usually); only when one does is the body
//! read whole, at most [`body::BUFFER_MAX`] (8 MiB) or the route's smaller
//! body limit (over it: 413 for a request, 502 for a response). Then each
//! rewrite, in chain order (the request phases' order; for responses, that
//! of the response hooks: the response phase first), that wants the body
//! as the earlier ones left it rewrites it, and the result goes on with
//! its own `Content-Length`, no `Transfer-Encoding`, and the `Content-Type`
//! the rewrites set. A request body with a `Content-Encoding` other than
//! identity that a rewrite wants is refused (415); such a response goes
//! back unchanged, and on routes that rewrite responses the upstream gets
//! no `Accept-Encoding`. Empty bodies, answers to `HEAD` and statuses
//! without a body are never read. A request rewrite that fails answers 400
//! (413 when its output would pass [`body::OUTPUT_MAX`]) and nothing goes
//! upstream; a response rewrite that fails, or a response body that breaks
//! off, answers 502 (reading it is bounded by the upstream's `read_ms`:
//! 504). A rewritten request loses `Expect` (its body is read already) and
//! is not retried; trailers of a body read whole are dropped.

pub mod access_log;
pub mod acl;
pub mod basic_auth;
pub mod body;
pub mod chain;
pub mod consumers;
pub mod cors;
pub mod ip_restriction;
pub mod json_xml;
pub mod jwt;
pub mod key_auth;
pub mod rate_limit;
pub mod rejections;
pub mod request_size_limit;
pub mod request_transformer;
pub mod response_transformer;

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use turnpike_model::Plugin;

use crate::Error;
pub use body::BodyRewrite;
pub use chain::CompiledPolicies;
pub use consumers::{CompiledConsumer, CompiledConsumers};

/// Set on requests a policy authenticated; removed from every client
/// request first, so only the gateway can say who the consumer is.
pub const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
pub const X_CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");

/// The plugins this data plane enforces; a snapshot enabling any other is
/// refused (NACK), never served without it. Today that is every plugin the
/// control plane knows; the check stays for plugins a newer control plane
/// may send.
pub const SUPPORTED: &[&str] = &[
    "key-auth",
    "acl",
    "rate-limit",
    "basic-auth",
    "ip-restriction",
    "request-size-limit",
    "cors",
    "jwt",
    "request-transformer",
    "response-transformer",
    "json-xml",
    "access-log",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Who may pass: IP rules, CORS preflight, authentication, ACL.
    Access,
    /// How much: rate limits, body size.
    Limit,
    /// The request on its way up.
    Rewrite,
    /// The response on its way back.
    Response,
    /// The finished exchange: whether its access-log line is written.
    Log,
}

/// A request as the policies see it, before it is rewritten for the
/// upstream.
pub struct RequestCtx<'a> {
    pub parts: &'a mut http::request::Parts,
    pub client_ip: IpAddr,
    /// Route id, for limits keyed by route.
    pub route: &'a str,
    pub consumers: &'a CompiledConsumers,
    /// Set by the authentication plugin that identified the consumer.
    pub consumer: Option<Arc<CompiledConsumer>>,
    /// Headers to add to the answer, whatever it is (rate-limit state).
    pub response_headers: HeaderMap,
    /// The smallest body limit a policy set.
    pub body_limit: Option<u64>,
}

/// A response on its way back, as the policies see it.
pub struct ResponseCtx<'a> {
    pub status: StatusCode,
    pub headers: &'a mut HeaderMap,
    /// The client's request headers (an `Origin`, for CORS).
    pub request_headers: &'a HeaderMap,
}

/// What a policy decides about a request.
pub enum Flow {
    Continue,
    /// An authentication plugin found no credential of its kind: the next
    /// one may; if none does, this is the answer.
    Absent(Rejection),
    Reject(Rejection),
    /// The decision needs I/O (a counter shared through Redis): the proxy
    /// awaits it, then continues or answers the rejection. Headers to add to
    /// the response come back with the decision.
    Wait(Pin<Box<dyn Future<Output = Result<HeaderMap, Rejection>> + Send>>),
    /// An authentication plugin's check must run off the request's task (a
    /// password hash): the chain awaits it, and the consumer it names is the
    /// request's, as if the plugin had set `ctx.consumer` itself.
    Identify(Pin<Box<dyn Future<Output = Result<Arc<CompiledConsumer>, Rejection>> + Send>>),
}

/// A policy's answer instead of the upstream's: `{"message": ...}` with
/// this status and these headers (`WWW-Authenticate`, `Retry-After`...).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
    pub headers: HeaderMap,
}

impl Rejection {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Rejection {
        Rejection {
            status,
            message: message.into(),
            headers: HeaderMap::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Rejection {
        self.headers.insert(name, value);
        self
    }
}

pub trait Policy: Send + Sync {
    fn name(&self) -> &'static str;
    fn phase(&self) -> Phase;
    /// Order within the phase, higher first (the module's table).
    fn priority(&self) -> u16;
    /// Authentication plugins: the others are skipped once one of them
    /// identified the consumer.
    fn authenticates(&self) -> bool {
        false
    }
    fn on_request(&self, _ctx: &mut RequestCtx<'_>) -> Flow {
        Flow::Continue
    }
    /// Whether `on_response` is called: response-phase policies, and a
    /// policy of another phase that also sees the answer (cors). Those run
    /// after the response phase, in the route's order.
    fn responds(&self) -> bool {
        self.phase() == Phase::Response
    }
    fn on_response(&self, _ctx: &mut ResponseCtx<'_>) {}
    /// Log phase: whether the access-log line of an answer with this
    /// status is written; every log-phase policy that applies must agree.
    /// Called only when the access log is on.
    fn on_log(&self, _status: u16) -> bool {
        true
    }
    /// The rewrite of request bodies, if this policy's config has one
    /// (module header: "Bodies").
    fn request_body(&self) -> Option<&dyn BodyRewrite> {
        None
    }
    /// The rewrite of response bodies, if this policy's config has one.
    fn response_body(&self) -> Option<&dyn BodyRewrite> {
        None
    }
}

/// Builds the policy of one plugin. Errors name the plugin; a config that
/// does not parse here passed the control plane's schema, so it is a
/// version mismatch or a bug, and the snapshot is refused.
pub fn compile(plugin: &Plugin) -> Result<Arc<dyn Policy>, Error> {
    let spec = &plugin.spec;
    let refuse = |e: String| Error::Compile(format!("plugin {} ({}): {e}", spec.name, plugin.id));
    let policy: Arc<dyn Policy> = match spec.name.as_str() {
        "key-auth" => Arc::new(key_auth::KeyAuth::new(
            config(&spec.config).map_err(refuse)?,
        )),
        "acl" => Arc::new(acl::Acl::new(config(&spec.config).map_err(refuse)?)),
        "basic-auth" => Arc::new(
            basic_auth::BasicAuth::new(config(&spec.config).map_err(refuse)?).map_err(refuse)?,
        ),
        "ip-restriction" => Arc::new(
            ip_restriction::IpRestriction::new(config(&spec.config).map_err(refuse)?)
                .map_err(refuse)?,
        ),
        "request-size-limit" => Arc::new(request_size_limit::RequestSizeLimit::new(
            config(&spec.config).map_err(refuse)?,
        )),
        "cors" => Arc::new(cors::Cors::new(config(&spec.config).map_err(refuse)?).map_err(refuse)?),
        "rate-limit" => Arc::new(
            rate_limit::RateLimit::new(plugin.id, &config(&spec.config).map_err(refuse)?)
                .map_err(refuse)?,
        ),
        "jwt" => Arc::new(jwt::Jwt::new(config(&spec.config).map_err(refuse)?).map_err(refuse)?),
        "request-transformer" => Arc::new(
            request_transformer::RequestTransformer::new(config(&spec.config).map_err(refuse)?)
                .map_err(refuse)?,
        ),
        "response-transformer" => Arc::new(
            response_transformer::ResponseTransformer::new(config(&spec.config).map_err(refuse)?)
                .map_err(refuse)?,
        ),
        "json-xml" => Arc::new(json_xml::JsonXml::new(
            config(&spec.config).map_err(refuse)?,
        )),
        "access-log" => Arc::new(access_log::AccessLogSampling::new(
            &config(&spec.config).map_err(refuse)?,
        )),
        other => {
            return Err(Error::Config(
                turnpike_model::ModelError::UnsupportedPlugin(other.to_owned()),
            ));
        }
    };
    Ok(policy)
}

fn config<C: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<C, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}
