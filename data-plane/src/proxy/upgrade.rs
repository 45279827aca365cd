//! WebSocket upgrades (HTTP/1.1 `Upgrade: websocket`): the proxy forwards
//! `Connection: upgrade` and `Upgrade` for them only, and when the upstream
//! answers 101 it returns the 101 and splices the two upgraded connections
//! byte for byte (frames are the endpoints' business). Any other `Upgrade`
//! (h2c, TLS) is dropped as a hop-by-hop header, as before.

use std::sync::Arc;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use tokio::io::AsyncWriteExt;

use crate::Error;
use crate::listener::DRAIN_DEADLINE;
use crate::listener::h1::upgrade::OnUpgrade;
use crate::listener::hold::ConnectionHold;
use crate::proxy::h1::conn::Io;

/// The client's `Upgrade` value when it asks for a WebSocket: a GET over
/// HTTP/1.1 with `upgrade` among the `Connection` tokens and `Upgrade:
/// websocket` (tokens compared without case).
pub fn websocket(req: &Parts) -> Option<HeaderValue> {
    if req.method != Method::GET || req.version != Version::HTTP_11 {
        return None;
    }
    let headers = &req.headers;
    // `Upgrade` first: most requests have none, and one lookup tells.
    let mut upgrade = headers.get_all(header::UPGRADE).iter();
    let (Some(v), None) = (upgrade.next(), upgrade.next()) else {
        return None;
    };
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    (asks && is_websocket(v)).then(|| v.clone())
}

/// The client's side of the upgrade, taken out of the head's extensions
/// (where the listener put it); `None` for a request that cannot upgrade.
pub fn client(req: &mut Parts) -> Option<OnUpgrade> {
    req.extensions.remove::<OnUpgrade>()
}

fn is_websocket(v: &HeaderValue) -> bool {
    v.to_str()
        .is_ok_and(|s| s.trim().eq_ignore_ascii_case("websocket"))
}

/// Puts the upgrade back after the hop-by-hop headers were removed.
pub fn set_headers(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// The upstream switched protocols: checks it switched to what was asked,
/// starts the tunnel and gives the 101 to return to the client (hop-by-hop
/// headers already removed by the caller, the upgrade put back).
pub fn switch<B>(
    mut resp: Response<B>,
    client: OnUpgrade,
    upstream: (Box<Io>, BytesMut),
    hold: Option<Arc<ConnectionHold>>,
) -> Result<Response<B>, Error> {
    debug_assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let Some(upgrade) = resp
        .headers()
        .get(header::UPGRADE)
        .filter(|v| is_websocket(v))
        .cloned()
    else {
        return Err(Error::UpstreamUpgrade("a 101 without Upgrade: websocket"));
    };
    // Taken now, before the 101 goes out and its request stops counting in
    // flight: the connection must never look idle while the tunnel runs.
    let guard = hold.map(|h| h.tunnel());
    tokio::spawn(async move {
        let (guard, shutdown) = guard.unzip();
        splice(client, upstream, shutdown).await;
        drop(guard);
    });
    let headers = resp.headers_mut();
    super::headers::strip_hop_by_hop(headers);
    set_headers(headers, upgrade);
    Ok(resp)
}

/// Copies bytes both ways until either side closes, or until the drain
/// deadline has passed after shutdown began. What the upstream sent right
/// after its 101 (`early`) goes to the client first.
async fn splice(
    client: OnUpgrade,
    (mut upstream, early): (Box<Io>, BytesMut),
    shutdown: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let mut client = match client.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    if let Err(e) = client.write_all(&early).await {
        tracing::debug!(error = %e, "WebSocket tunnel ended before it started");
        return;
    }
    let drained = async {
        match shutdown {
            Some(mut s) => {
                crate::stopped(&mut s).await;
                tokio::time::sleep(DRAIN_DEADLINE).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "WebSocket tunnel ended with an error");
            }
        }
        _ = drained => tracing::debug!("WebSocket tunnel closed by the drain"),
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn req(conn: &str, upgrade: &str) -> Parts {
        Request::get("/")
            .header(header::CONNECTION, conn)
            .header(header::UPGRADE, upgrade)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn only_websocket_upgrades() {
        assert!(websocket(&req("Upgrade", "websocket")).is_some());
        assert!(websocket(&req("keep-alive, UPGRADE", "WebSocket")).is_some());
        assert!(websocket(&req("Upgrade, HTTP2-Settings", "h2c")).is_none());
        assert!(websocket(&req("keep-alive", "websocket")).is_none());
        let mut post = req("upgrade", "websocket");
        post.method = Method::POST;
        assert!(websocket(&post).is_none());
        let mut h2 = req("upgrade", "websocket");
        h2.version = Version::HTTP_2;
        assert!(websocket(&h2).is_none());
    }
}
