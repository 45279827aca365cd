//! JWKS for the `jwt` policy's `jwks_uri`: the key set is fetched in the
//! background, never on the request path's own initiative.
//!
//! - One [`Jwks`] per URI in the process ([`shared`]): a registry of weak
//!   references, so a new config version naming the same URI reuses the
//!   running one (its keys and its task) and the last policy to drop it
//!   aborts the task.
//! - Fetched at start, then every [`REFRESH`]; after a failed fetch again
//!   after a backoff (2 s doubling to [`REFRESH`]). A failure keeps the last
//!   good set (stale-while-error); a set that does not parse is a failure.
//! - A token naming an unknown `kid` may ask for an early refresh
//!   ([`Jwks::request_refresh`]): at most one per [`ON_DEMAND_EVERY`]; the
//!   request can wait for it ([`Jwks::refreshed`], bounded by
//!   [`WAIT_FOR_REFRESH`]).
//! - Only signature keys with a `kid` are kept: `use` absent or `sig`;
//!   symmetric (`oct`) keys and unknown key types are skipped. A key's
//!   algorithms are its `alg` when it names one, else every algorithm of
//!   its type and curve (RSA: RS*/PS*; P-256: ES256; P-384: ES384;
//!   Ed25519: EdDSA); the policy intersects them with its `algorithms`.
//! - Fetched with hyper-util's pooled client over hyper-rustls (ring,
//!   public roots from webpki-roots, https only), at most [`MAX_BYTES`] in
//!   [`FETCH_TIMEOUT`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls::{ClientConfig, RootCertStore};
use tokio::sync::{Notify, watch};

pub const REFRESH: Duration = Duration::from_secs(300);
pub const ON_DEMAND_EVERY: Duration = Duration::from_secs(60);
pub const WAIT_FOR_REFRESH: Duration = Duration::from_secs(5);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_BYTES: usize = 512 * 1024;
/// Keys kept from one set; a bigger set is cut (and logged).
pub const MAX_KEYS: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;

/// A usable key of the set.
pub struct JwksKey {
    pub key: DecodingKey,
    /// The algorithms this key may verify (never empty).
    pub algorithms: Vec<Algorithm>,
}

pub type KeySet = HashMap<String, Arc<JwksKey>>;

/// Where key sets come from: HTTPS in production, a closure in tests.
pub trait Fetch: Send + Sync {
    fn fetch<'a>(
        &'a self,
        uri: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>>;
}

/// One URI's keys, shared by the policies that name it.
pub struct Jwks {
    state: Arc<State>,
    task: Option<tokio::task::AbortHandle>,
}

struct State {
    uri: String,
    keys: ArcSwap<KeySet>,
    /// Counts finished fetches (good or bad), for requests waiting on one.
    fetched: watch::Sender<u64>,
    wake: Notify,
    last_on_demand: Mutex<Option<Instant>>,
}

impl Drop for Jwks {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Jwks {
    /// Starts fetching `uri` with `fetcher` (on the current tokio runtime;
    /// without one nothing is fetched and every lookup misses).
    pub fn start(uri: &str, fetcher: Arc<dyn Fetch>) -> Jwks {
        let state = Arc::new(State {
            uri: uri.to_owned(),
            keys: ArcSwap::from_pointee(KeySet::new()),
            fetched: watch::channel(0).0,
            wake: Notify::new(),
            last_on_demand: Mutex::new(None),
        });
        let task = match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(rt.spawn(run(state.clone(), fetcher)).abort_handle()),
            Err(_) => {
                tracing::warn!(uri, "no runtime: the JWKS will not be fetched");
                None
            }
        };
        Jwks { state, task }
    }

    pub fn uri(&self) -> &str {
        &self.state.uri
    }

    pub fn get(&self, kid: &str) -> Option<Arc<JwksKey>> {
        self.state.keys.load().get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.state.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the task for a fetch now, unless one was asked for less than
    /// [`ON_DEMAND_EVERY`] ago. Returns whether it was asked.
    pub fn request_refresh(&self) -> bool {
        let now = Instant::now();
        let mut last = self
            .state
            .last_on_demand
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < ON_DEMAND_EVERY) {
            return false;
        }
        *last = Some(now);
        self.state.wake.notify_one();
        true
    }

    /// A receiver that changes when the next fetch finishes; take it before
    /// [`Jwks::request_refresh`] so that fetch is not missed.
    pub fn refreshed(&self) -> watch::Receiver<u64> {
        let mut rx = self.state.fetched.subscribe();
        rx.borrow_and_update();
        rx
    }
}

async fn run(state: Arc<State>, fetcher: Arc<dyn Fetch>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = match tokio::time::timeout(FETCH_TIMEOUT, fetcher.fetch(&state.uri)).await {
            Ok(r) => r.and_then(|body| parse(&body)),
            Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
        };
        let wait = match result {
            Ok(keys) => {
                tracing::debug!(uri = %state.uri, keys = keys.len(), "JWKS fetched");
                state.keys.store(Arc::new(keys));
                backoff = FIRST_BACKOFF;
                REFRESH
            }
            Err(error) => {
                tracing::warn!(uri = %state.uri, %error, kept = state.keys.load().len(),
                    "JWKS fetch failed; keeping the last good keys");
                let wait = backoff;
                backoff = (backoff * 2).min(REFRESH);
                wait
            }
        };
        state.fetched.send_modify(|n| *n += 1);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = state.wake.notified() => {}
        }
    }
}

/// Parses a JWK Set document. Keys that do not parse or cannot verify are
/// skipped, so one exotic key does not take the others down; a document
/// that is not a set is an error.
pub fn parse(body: &[u8]) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut out = KeySet::new();
    for value in doc.keys {
        if out.len() == MAX_KEYS {
            tracing::warn!("JWKS has more than {MAX_KEYS} keys; the rest are ignored");
            break;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if let Some(key) = usable(&jwk) {
            out.entry(kid).or_insert_with(|| Arc::new(key));
        }
    }
    Ok(out)
}

fn usable(jwk: &Jwk) -> Option<JwksKey> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        // Symmetric keys have no place in a published set.
        _ => return None,
    };
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        None => by_type.to_vec(),
        // Its `alg` must be one of its type's (an EC key saying RS256 is
        // refused).
        Some(named) => {
            let a = by_type
                .iter()
                .copied()
                .find(|a| KeyAlgorithm::from(*a) == named)?;
            vec![a]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { key, algorithms })
}

/// The process's JWKS sources by URI.
static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<Jwks>>>> = LazyLock::new(Mutex::default);

/// The running source for `uri`, or a new one fetching over HTTPS. Called
/// while compiling a config.
pub fn shared(uri: &str) -> Result<Arc<Jwks>, String> {
    let mut all = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|_, w| w.strong_count() > 0);
    if let Some(j) = all.get(uri).and_then(Weak::upgrade) {
        return Ok(j);
    }
    let j = Arc::new(Jwks::start(uri, https()?));
    all.insert(uri.to_owned(), Arc::downgrade(&j));
    Ok(j)
}

/// The HTTPS fetcher with the bundled public roots, built once.
fn https() -> Result<Arc<dyn Fetch>, String> {
    static ONE: LazyLock<Result<Arc<HttpsFetch>, String>> = LazyLock::new(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        HttpsFetch::new(roots).map(Arc::new)
    });
    match &*ONE {
        Ok(f) => Ok(f.clone()),
        Err(e) => Err(e.clone()),
    }
}

/// GETs a key set over HTTPS (only).
pub struct HttpsFetch {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpsFetch {
    pub fn new(roots: RootCertStore) -> Result<HttpsFetch, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("JWKS client TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpsFetch {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

impl Fetch for HttpsFetch {
    fn fetch<'a>(
        &'a self,
        uri: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'a>> {
        Box::pin(async move {
            let req = http::Request::get(uri)
                .header(http::header::ACCEPT, "application/json")
                .header(http::header::USER_AGENT, "turnpike-data-plane")
                .body(Empty::new())
                .map_err(|e| e.to_string())?;
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            if resp.status() != http::StatusCode::OK {
                return Err(format!("answered {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_BYTES)
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?;
            Ok(body.to_bytes())
        })
    }
}
