//! The request path, top to bottom: load the config once → match a route →
//! pick a target → rewrite the request → send it through the upstream's pool
//! → hand the response back, streaming both bodies.

pub mod client;
pub mod headers;

use std::convert::Infallible;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::compile::Compiled;
use crate::{Error, Shared};

/// Bodies the proxy answers with: the upstream's, streamed, or its own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Entry point for every proxied request.
pub async fn handle(
    shared: Arc<Shared>,
    client: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    // One load of the config: the request sees exactly one version, even if
    // a new one is swapped in while it runs.
    let config = shared.config.load_full();
    match forward(&config, client, req).await {
        Ok(resp) => Ok(resp),
        Err(e) => Ok(error_response(&e)),
    }
}

async fn forward(
    config: &Compiled,
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Error> {
    // 1. Which host was asked for: the Host header (HTTP/1) or the
    //    authority (HTTP/2). Two Host headers are ambiguous: refuse.
    let mut host_headers = req.headers().get_all(header::HOST).iter();
    let host_header = host_headers.next().cloned();
    if host_headers.next().is_some() {
        return Err(Error::AmbiguousHost);
    }
    let host = host_header.clone().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });

    // 2. Route.
    let host_str = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
    let m = config
        .router
        .lookup(host_str, req.uri().path(), req.method(), req.headers())
        .ok_or(Error::NoRoute)?;
    let route = &config.routes[m.route];
    let upstream = &config.upstreams[route.upstream];

    // 3. Balance.
    let target = upstream
        .balancer
        .pick()
        .ok_or_else(|| Error::NoTarget(upstream.name.clone()))?;

    // 4. Rewrite: URI to the target, path stripped if asked, hop-by-hop
    //    headers out, X-Forwarded-* in.
    let path_and_query = if route.strip_path && m.matched_len > 0 {
        strip_prefix(req.uri(), m.matched_len)?
    } else {
        req.uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(target.authority.clone());
    parts.path_and_query = Some(path_and_query);
    *req.uri_mut() =
        Uri::from_parts(parts).map_err(|e| Error::BadUpstreamRequest(e.to_string()))?;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    headers::strip_hop_by_hop(headers);
    headers::set_forwarded(headers, client.ip(), "http", host.as_ref());
    if route.preserve_host {
        if let Some(h) = host {
            headers.insert(header::HOST, h);
        }
    } else {
        // The pool's client sets Host from the target's address.
        headers.remove(header::HOST);
    }

    // 5. Send, bounded by the upstream's read timeout (connect included).
    let resp = match tokio::time::timeout(upstream.read_timeout, upstream.client.request(req)).await
    {
        Err(_) => return Err(Error::UpstreamTimeout),
        Ok(Err(e)) => return Err(classify(e)),
        Ok(Ok(resp)) => resp,
    };

    // 6. Respond, streaming the upstream's body.
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// Removes the first `len` bytes of the path, keeping the query. What is
/// left always starts with `/`.
fn strip_prefix(uri: &Uri, len: usize) -> Result<PathAndQuery, Error> {
    let path = uri.path();
    let rest = path.get(len..).unwrap_or("");
    let rest = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    let full = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    PathAndQuery::try_from(full).map_err(|e| Error::BadUpstreamRequest(e.to_string()))
}

/// Connection failures are 502, except a connect timeout, which is 504.
fn classify(e: hyper_util::client::legacy::Error) -> Error {
    if e.is_connect() {
        let mut source = e.source();
        while let Some(s) = source {
            if s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                || s.to_string().contains("timed out")
            {
                return Error::UpstreamTimeout;
            }
            source = s.source();
        }
        Error::UpstreamConnect(e)
    } else {
        Error::UpstreamProtocol(e)
    }
}

/// The proxy's own answers: small JSON bodies.
pub fn error_response(e: &Error) -> Response<ProxyBody> {
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!(error = %e, source = ?e.source(), "proxy error");
    }
    json_response(status, &serde_json::json!({ "message": e.to_string() }))
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_keeps_query_and_leading_slash() {
        let uri: Uri = "/api/users/7?x=1".parse().unwrap();
        assert_eq!(strip_prefix(&uri, 4).unwrap().as_str(), "/users/7?x=1");
        let uri: Uri = "/api".parse().unwrap();
        assert_eq!(strip_prefix(&uri, 4).unwrap().as_str(), "/");
    }
}
