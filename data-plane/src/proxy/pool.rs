//! Upstream connections, pooled per target: HTTP/1 ones of our own
//! (`proxy::h1`), HTTP/2 ones from hyper's connection API
//! (`hyper::client::conn`), not hyper-util's legacy client, whose
//! machinery (pool keys hashed with SipHash, checkout futures, a task
//! spawned per response to return the connection) cost more instructions
//! than the HTTP/1 exchange itself.
//!
//! - HTTP/1: idle connections wait in a per-target stack (most recently
//!   used first, so a few stay warm); a request takes one that is ready,
//!   else opens one. The connection is lent with the response (its body, a
//!   [`LeasedBody`], reads it: `lease`) and comes back when the response
//!   body has been read to its end; an invalid response or an upgrade never
//!   returns it, and an exchange its client abandoned returns it only when
//!   what was left of the answer was small and quick (`h1::conn::drain`).
//! - HTTP/2: one shared connection per target, multiplexed; a new one
//!   replaces it once it closes.
//! - A request never written (the pooled connection closed under it) is
//!   sent again on another connection, whatever its method: it never
//!   reached the upstream. Nothing else is retried here (`proxy::retry`).
//! - Idle connections are closed after [`IDLE_TIMEOUT`], before a typical
//!   upstream keep-alive (60 s in nginx) would close them under us.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use crate::Error;
use crate::proxy::client::UpstreamBody;
use crate::proxy::connector::UpstreamConnector;
use crate::proxy::h1::conn::{Exchanged, H1Conn, Outgoing};
use crate::proxy::h1::io::Io;
use crate::proxy::headers::{Added, HostFrom};
use crate::proxy::lease::{Lease, LeasedBody, Lent};

mod failure;

use failure::{connect_error, handshake_error, request_error};

/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle HTTP/1 connections kept per target; more are closed when released.
/// Far above any steady concurrency on purpose: a worker finishing a batch
/// of responses releases their connections before the clients' next
/// requests arrive, so at a concurrency above this cap every batch closed
/// the excess and the next one reopened it (with 256 kept, 400 clients
/// opened 781 connections in their first 5 s and 292 in the next 5).
/// Idle ones still close after
/// [`IDLE_TIMEOUT`], so a burst's connections do not outlive it for long.
pub const MAX_IDLE_PER_TARGET: usize = 4096;
/// How often idle connections past their time are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Sends of one request that hyper gave back unsent before giving up.
const UNSENT_TRIES: usize = 3;

/// Keyed by the authority's text: `Authority` hashes byte by byte (it
/// lowercases each one, as its equality ignores case), which cost ~650
/// instructions a lookup, two lookups a request (callgrind). A target's
/// authority is the same text every time (it comes from the config).
type Slots = HashMap<Box<str>, Slot, foldhash::fast::RandomState>;

/// The connections of one upstream (one connector: TLS and protocol).
pub struct Pool {
    connector: UpstreamConnector,
    http2: bool,
    idle: Mutex<Slots>,
}

struct Slot {
    key: Arc<SlotKey>,
    h1: Vec<Idle>,
    h2: Option<http2::SendRequest<UpstreamBody>>,
}

/// A target's slot as its leases name it: one reference count per request
/// instead of copies of the authority and the `Host` value, which made
/// every lent connection (and so every response body, moved several times
/// on its way out) ~70 bytes larger.
#[derive(Debug)]
pub(crate) struct SlotKey {
    pub(crate) authority: Authority,
    /// `Host` for HTTP/1 requests to this target.
    pub(crate) host: HeaderValue,
}

struct Idle {
    conn: Box<H1Conn>,
    since: Instant,
}

/// HTTP/1 connections are boxed once, when made: a lease (held by the
/// response body) then moves a pointer, not the connection's ~130 bytes.
enum Sender {
    H1(Box<H1Conn>),
    H2(http2::SendRequest<UpstreamBody>),
}

impl Pool {
    pub fn new(connector: UpstreamConnector, http2: bool) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            connector,
            http2,
            idle: Mutex::new(Slots::default()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Sends `req` (absolute URI: scheme and the target's authority); see
    /// [`Pool::send_parts`].
    pub async fn send(
        self: &Arc<Self>,
        req: Request<UpstreamBody>,
        timeout: Option<Duration>,
    ) -> Result<Response<LeasedBody>, Error> {
        let (parts, body) = req.into_parts();
        let (Some(scheme), Some(authority)) = (parts.uri.scheme(), parts.uri.authority()) else {
            return Err(Error::BadUpstreamRequest("no target in the URI".into()));
        };
        let path = match parts.uri.path_and_query() {
            Some(p) => p.clone(),
            None => PathAndQuery::from_static("/"),
        };
        let due = timeout.map(|t| tokio::time::Instant::now() + t);
        let head = (&parts, &Added::default());
        self.send_parts((scheme, authority), head, &path, body, due)
            .await
    }

    /// Sends the request of head `parts` (its URI unused) with the fields
    /// `added` beside it, target `path` and `body` to the target `to` on a
    /// pooled or new connection. The
    /// head is only borrowed: an attempt that fails leaves it to the caller
    /// for the next. An HTTP/1 response's body holds its connection until
    /// it ends. The response head is due by `due`, connecting included
    /// (504); the caller read the clock for it already.
    pub async fn send_parts(
        self: &Arc<Self>,
        (scheme, authority): (&Scheme, &Authority),
        (parts, added): (&Parts, &Added),
        path: &PathAndQuery,
        mut body: UpstreamBody,
        due: Option<tokio::time::Instant>,
    ) -> Result<Response<LeasedBody>, Error> {
        let (mut pooled, key) = self.checkout(scheme, authority)?;
        for _ in 0..UNSENT_TRIES {
            let pooled = pooled
                .take()
                .or_else(|| self.checkout(scheme, authority).ok()?.0);
            let (sender, reused) = match pooled {
                Some(s) => (s, true),
                // Boxed: connecting holds a TLS stream by value, which
                // would make every request's future (moved a few times on
                // its way through the server) kilobytes larger.
                None => (
                    within(due, Box::pin(self.connect(scheme, authority))).await??,
                    false,
                ),
            };
            match sender {
                Sender::H1(conn) => {
                    let head = Outgoing {
                        parts,
                        added,
                        path: path.as_str(),
                        host: key.as_ref().map(|k| &k.host),
                    };
                    // Dropped while the head is awaited, the connection is
                    // drained (`Lent`).
                    let key = match &key {
                        Some(k) => k.clone(),
                        None => self.key(scheme, authority)?,
                    };
                    let mut lent = Lent(Some(Lease {
                        pool: self.clone(),
                        key,
                        conn,
                    }));
                    let exchanged = match &mut lent.0 {
                        Some(lease) => lease.conn.exchange(head, body, due).await,
                        None => unreachable!("set above"),
                    };
                    let lease = lent.0.take();
                    match (exchanged?, lease) {
                        (Exchanged::Head(parts, passed), Some(lease)) => {
                            let body = LeasedBody::h1(lease, passed);
                            return Ok(Response::from_parts(parts, body));
                        }
                        // Never written: safe to send again, but only when
                        // the connection was a pooled one (a fresh one
                        // failing says the target is the problem).
                        (Exchanged::Unsent(unsent), _) if reused => body = unsent,
                        _ => return Err(Error::UpstreamClosed),
                    }
                }
                Sender::H2(mut s) => {
                    let req = h2_request(scheme, authority, (parts, added), path, body)?;
                    // Boxed as connecting is: hyper's HTTP/2 request
                    // future was 800 bytes of every request's future.
                    match within(due, Box::pin(s.try_send_request(req))).await? {
                        Ok(resp) => return Ok(resp.map(LeasedBody::h2)),
                        Err(mut failed) => match failed.take_message() {
                            Some(unsent) if reused => body = unsent.into_body(),
                            _ => return Err(request_error(failed.into_error())),
                        },
                    }
                }
            }
        }
        Err(Error::UpstreamConnect(
            "pooled connections kept closing before the request was sent".into(),
        ))
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready connection to `authority`, if one is idle, and for HTTP/1
    /// its slot's key (with the `Host` it is sent with), kept with the
    /// target's connections so it is built once: one lock and one lookup
    /// per request. An idle HTTP/1
    /// connection is checked outside the lock (it is polled, which may read
    /// its socket); one the upstream closed is dropped and the next tried.
    fn checkout(
        &self,
        scheme: &Scheme,
        authority: &Authority,
    ) -> Result<(Option<Sender>, Option<Arc<SlotKey>>), Error> {
        let (mut candidate, key) = {
            let mut slots = self.slots();
            let slot = match slots.get_mut(authority.as_str()) {
                Some(slot) => slot,
                None => slots.entry(authority.as_str().into()).or_insert(Slot {
                    key: self.key(scheme, authority)?,
                    h1: Vec::new(),
                    h2: None,
                }),
            };
            if self.http2 {
                return Ok(match &slot.h2 {
                    Some(s) if !s.is_closed() => (Some(Sender::H2(s.clone())), None),
                    _ => (None, None),
                });
            }
            (slot.h1.pop(), slot.key.clone())
        };
        while let Some(mut idle) = candidate {
            if idle.conn.usable() {
                return Ok((Some(Sender::H1(idle.conn)), Some(key)));
            }
            candidate = self
                .slots()
                .get_mut(authority.as_str())
                .and_then(|s| s.h1.pop());
        }
        Ok((None, Some(key)))
    }

    fn key(&self, scheme: &Scheme, authority: &Authority) -> Result<Arc<SlotKey>, Error> {
        Ok(Arc::new(SlotKey {
            authority: authority.clone(),
            host: host_header(scheme, authority)?,
        }))
    }

    pub(crate) fn checkin(&self, key: Arc<SlotKey>, mut conn: Box<H1Conn>) {
        if !conn.reusable() {
            return;
        }
        conn.park();
        let mut slots = self.slots();
        // Swept while the connection was lent (it had nothing idle): made again.
        let slot = match slots.get_mut(key.authority.as_str()) {
            Some(slot) => slot,
            None => slots.entry(key.authority.as_str().into()).or_insert(Slot {
                key,
                h1: Vec::new(),
                h2: None,
            }),
        };
        if slot.h1.len() < MAX_IDLE_PER_TARGET {
            slot.h1.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self, scheme: &Scheme, authority: &Authority) -> Result<Sender, Error> {
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| Error::BadUpstreamRequest(e.to_string()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect_error)?;
        let io = connector.call(uri).await.map_err(connect_error)?;
        if self.http2 || io.connected().is_negotiated_h2() {
            let mut builder = http2::Builder::new(TokioExecutor::new());
            builder.timer(TokioTimer::new());
            let (sender, conn) = builder.handshake(io).await.map_err(handshake_error)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            });
            if let Some(slot) = self.slots().get_mut(authority.as_str()) {
                slot.h2 = Some(sender.clone());
            }
            Ok(Sender::H2(sender))
        } else {
            // No task: the requests using it drive it (`h1::conn`).
            Ok(Sender::H1(Box::new(H1Conn::new(Io::new(io)))))
        }
    }

    /// Closes idle connections past [`IDLE_TIMEOUT`] and forgets closed ones.
    fn sweep(&self, now: Instant) {
        let mut slots = self.slots();
        slots.retain(|_, slot| {
            slot.h1
                .retain(|i| i.conn.reusable() && now.duration_since(i.since) < IDLE_TIMEOUT);
            if slot.h2.as_ref().is_some_and(http2::SendRequest::is_closed) {
                slot.h2 = None;
            }
            !slot.h1.is_empty() || slot.h2.is_some()
        });
    }

    /// Idle HTTP/1 connections, for tests.
    pub fn idle_count(&self) -> usize {
        self.slots().values().map(|s| s.h1.len()).sum()
    }
}

/// hyper's HTTP/2 client takes an owned request with an absolute URI.
fn h2_request(
    scheme: &Scheme,
    authority: &Authority,
    (parts, added): (&Parts, &Added),
    path: &PathAndQuery,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, Error> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(scheme.clone());
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(path.clone());
    let mut req = Request::new(body);
    *req.uri_mut() = Uri::from_parts(uri).map_err(|e| Error::BadUpstreamRequest(e.to_string()))?;
    *req.method_mut() = parts.method.clone();
    *req.headers_mut() = parts.headers.clone();
    if added.host_from == HostFrom::Target {
        // `:authority` names the target.
        req.headers_mut().remove(http::header::HOST);
    }
    added.insert_into(req.headers_mut());
    Ok(req)
}

/// `fut`, unless `due` passes first (504).
async fn within<T>(
    due: Option<tokio::time::Instant>,
    fut: impl Future<Output = T>,
) -> Result<T, Error> {
    match due {
        Some(due) => tokio::time::timeout_at(due, fut)
            .await
            .map_err(|_| Error::UpstreamTimeout),
        None => Ok(fut.await),
    }
}

/// Runs while the pool lives.
async fn sweep(pool: Weak<Pool>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match pool.upgrade() {
            Some(p) => p.sweep(Instant::now()),
            None => return,
        }
    }
}

/// `Host` from the target's address (used unless the route kept the
/// client's, `preserve_host`); the default port is left out, as clients do.
fn host_header(scheme: &Scheme, authority: &Authority) -> Result<HeaderValue, Error> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    match authority.port_u16() {
        Some(p) if p == default_port => HeaderValue::from_str(authority.host()),
        _ => HeaderValue::from_str(authority.as_str()),
    }
    .map_err(|e| Error::BadUpstreamRequest(e.to_string()))
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pool_lease_tests.rs"]
mod lease_tests;

#[cfg(test)]
#[path = "pool_h1_tests.rs"]
mod h1_tests;
