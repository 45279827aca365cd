//! `turnpike echo`: a sample upstream that answers every request with JSON
//! describing what it received. Test hooks: `?status=NNN` sets the answer's
//! status, `?delay_ms=N` delays the answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use turnpike_data_plane::listener::RequestBody;

/// Bodies beyond this are refused: the echo server is a test tool.
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(clap::Args)]
pub struct EchoArgs {
    #[arg(long, env = "TURNPIKE_ECHO_LISTEN", default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Name reported in every answer, to tell upstreams apart.
    #[arg(long, env = "TURNPIKE_ECHO_NAME", default_value = "echo")]
    name: String,
}

pub async fn run(args: EchoArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, name = %args.name, "echo upstream listening");
    let name: Arc<str> = args.name.into();
    turnpike_data_plane::listener::serve(
        listener,
        move |conn, req| answer(name.clone(), conn.peer, req),
        turnpike_cli::common::shutdown_signal(),
    )
    .await;
    Ok(())
}

async fn answer(
    name: Arc<str>,
    _peer: SocketAddr,
    req: Request<RequestBody>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    if let Some(ms) = params.get("delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    }
    let status = params
        .get("status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => format!("<unreadable body: {e}>"),
    };
    let mut headers = BTreeMap::<String, String>::new();
    for (k, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_owned())
            .and_modify(|prev| {
                prev.push_str(", ");
                prev.push_str(&v);
            })
            .or_insert(v);
    }
    let json = serde_json::json!({
        "name": &*name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": query,
        "headers": headers,
        "body": body,
    });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
