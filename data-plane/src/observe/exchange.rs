//! One request's bookkeeping, from its head to the end of its answer: the
//! proxy fills an [`Exchange`] as it goes (route, target, consumer, upstream
//! time); when the answer is ready, [`Exchange::finish`] counts it in the
//! route's stats (unless `--no-metrics`) and either logs it at once (the
//! proxy's own answers) or hands a [`Finish`] to the response body, which
//! records the duration and bytes when the body ends. Whether the answer
//! is logged is decided there too: the route's log-phase policies
//! (`access-log` sampling) have the last word. Without the access log
//! nothing here allocates.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{HeaderValue, Method, Request};

use super::access_log::{AccessLog, Entry};
use super::stats::RouteStats;
use super::trace::TraceContext;
use crate::Shared;
use crate::compile::Compiled;
use crate::policy::CompiledConsumer;

pub struct Exchange {
    pub started: Instant,
    pub client_ip: IpAddr,
    pub trace: TraceContext,
    /// Index into the config's routes, once matched.
    pub route: Option<usize>,
    /// The target of the last attempt.
    pub target: Option<Authority>,
    pub upstream_time: Option<Duration>,
    pub consumer: Option<Arc<CompiledConsumer>>,
    /// What the log line needs of the request head, kept only when logging.
    head: Option<Head>,
}

/// Inline, with host and path in one buffer: one allocation per logged
/// request (a box and two strings were three, and their frees, on the
/// request path).
struct Head {
    method: Method,
    /// The host, then the path.
    text: String,
    host_len: usize,
    bytes_in: u64,
}

impl Head {
    fn host(&self) -> &str {
        &self.text[..self.host_len]
    }

    fn path(&self) -> &str {
        &self.text[self.host_len..]
    }
}

impl Exchange {
    pub fn start<B: hyper::body::Body>(
        req: &Request<B>,
        client_ip: IpAddr,
        logging: bool,
    ) -> Exchange {
        let head = logging.then(|| {
            let host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(Authority::as_str))
                .unwrap_or("");
            let path = req.uri().path();
            let mut text = String::with_capacity(host.len() + path.len());
            text.push_str(host);
            text.push_str(path);
            Head {
                method: req.method().clone(),
                text,
                host_len: host.len(),
                bytes_in: req.body().size_hint().exact().unwrap_or(0),
            }
        });
        Exchange {
            started: Instant::now(),
            client_ip,
            trace: TraceContext::of(req.headers()),
            route: None,
            target: None,
            upstream_time: None,
            consumer: None,
            head,
        }
    }

    /// The answer's head is ready. `local`: the proxy answered itself, so
    /// the exchange ends now; otherwise the returned [`Finish`] ends it when
    /// the response body does. `None` when there is nothing left to record.
    pub fn finish(
        self,
        status: u16,
        local: bool,
        config: &Arc<Compiled>,
        shared: &Shared,
        request_id: &HeaderValue,
    ) -> Option<Finish> {
        let stats = self
            .route
            .filter(|_| shared.metrics)
            .and_then(|i| config.routes.get(i))
            .map(|r| r.stats.clone());
        if let Some(s) = &stats {
            s.count(status, local);
            if let Some(t) = self.upstream_time {
                s.upstream_latency.observe(t);
            }
        }
        // The log phase (`access-log` sampling), only when there is a log.
        let log = shared.access_log.as_ref().filter(|_| {
            self.route
                .is_none_or(|r| config.policies.logs(r, self.consumer.as_deref(), status))
        });
        let pending = match (log, self.head) {
            (Some(log), Some(head)) => Some(Box::new(Pending {
                log: log.clone(),
                config: config.clone(),
                request_id: request_id.clone(),
                client_ip: self.client_ip,
                status,
                route: self.route,
                target: self.target,
                upstream_time: self.upstream_time,
                consumer: self.consumer,
                trace: self.trace,
                head,
            })),
            _ => None,
        };
        if stats.is_none() && pending.is_none() {
            return None;
        }
        let finish = Finish {
            stats,
            started: self.started,
            bytes_out: 0,
            pending,
        };
        if local {
            drop(finish);
            None
        } else {
            Some(finish)
        }
    }
}

/// The end of an exchange whose answer is still streaming.
pub struct Finish {
    stats: Option<Arc<RouteStats>>,
    started: Instant,
    pub bytes_out: u64,
    pending: Option<Box<Pending>>,
}

struct Pending {
    log: Arc<AccessLog>,
    config: Arc<Compiled>,
    request_id: HeaderValue,
    client_ip: IpAddr,
    status: u16,
    route: Option<usize>,
    target: Option<Authority>,
    upstream_time: Option<Duration>,
    consumer: Option<Arc<CompiledConsumer>>,
    trace: TraceContext,
    head: Head,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        if let Some(s) = &self.stats {
            s.latency.observe(took);
            s.bytes_out
                .fetch_add(self.bytes_out, std::sync::atomic::Ordering::Relaxed);
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let route = p.route.and_then(|i| p.config.routes.get(i));
        let upstream = route.and_then(|r| p.config.upstreams.get(r.upstream));
        let target = p.target.as_ref().map(Authority::as_str);
        p.log.write(&Entry {
            time: std::time::SystemTime::now(),
            request_id: p.request_id.to_str().unwrap_or(""),
            trace_id: p.trace.trace_id,
            client_ip: p.client_ip,
            method: p.head.method.as_str(),
            host: p.head.host(),
            path: p.head.path(),
            status: p.status,
            route: route.map(|r| r.name.as_str()),
            upstream: upstream.map(|u| u.name.as_str()),
            target,
            consumer: p.consumer.as_ref().map(|c| c.username.as_str()),
            duration: took,
            upstream_time: p.upstream_time,
            bytes_in: p.head.bytes_in,
            bytes_out: self.bytes_out,
            config_version: p.config.version,
        });
    }
}
