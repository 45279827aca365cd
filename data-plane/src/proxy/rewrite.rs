//! Stage 4, the rewrite: what goes upstream in place of what the client
//! sent. The target in origin form (the route's prefix stripped if asked),
//! hop-by-hop headers out (but a WebSocket upgrade's, whose client side is
//! taken here), and the fields the proxy adds (`X-Forwarded-*`,
//! `X-Request-Id`; `Host` = the target's unless `preserve_host`), carried
//! beside the head's map (`headers::Added`).

use crate::listener::h1::upgrade::OnUpgrade;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};

use crate::Error;
use crate::compile::CompiledRoute;
use crate::listener::Conn;
use crate::proxy::send::Rewritten;
use crate::proxy::{headers, upgrade};
use crate::router::RouteMatch;

/// Stage 4: the URI to the target, the path stripped if asked, hop-by-hop
/// headers out (but a WebSocket upgrade's, whose client side is taken),
/// X-Forwarded-* and X-Request-Id in (beside the map: `headers::Added`).
pub fn rewrite(
    parts: &mut Parts,
    route: &CompiledRoute,
    m: RouteMatch,
    conn: &Conn,
    host: Option<HeaderValue>,
    request_id: &HeaderValue,
) -> Result<(Rewritten, Option<OnUpgrade>), Error> {
    // A WebSocket request the listener can hand over (an HTTP/1.1 one).
    let (websocket, client_upgrade) = match upgrade::websocket(parts) {
        Some(u) => match upgrade::client(parts) {
            Some(client) => (Some(u), Some(client)),
            None => (None, None),
        },
        None => (None, None),
    };
    let path_and_query = if route.strip_path && m.matched_len > 0 {
        strip_prefix(&parts.uri, m.matched_len)?
    } else {
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    };
    let proto = if conn.tls { "https" } else { "http" };
    let headers = &mut parts.headers;
    headers::strip_hop_by_hop(headers);
    if let Some(u) = websocket {
        upgrade::set_headers(headers, u);
    }
    let mut to = Rewritten {
        path_and_query,
        added: headers::forwarded(
            headers,
            &conn.forwarded_for,
            proto,
            host.as_ref(),
            request_id.clone(),
        ),
    };
    if route.preserve_host {
        if let Some(h) = host {
            headers.insert(header::HOST, h);
        }
    } else {
        // The pool writes the target's address instead.
        to.added.host_from = headers::HostFrom::Target;
    }
    Ok((to, client_upgrade))
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
