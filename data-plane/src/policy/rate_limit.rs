//! `rate-limit` (limit phase, priority 900): at most `limit` requests per
//! window (`per` or `window_s`) and key, `burst` at once (the limit when
//! unset), by GCRA: requests are spaced `window / limit` apart on average
//! and up to `burst` may come together.
//!
//! What is counted (`key`): `consumer` (the one authentication named),
//! `ip` (the client's address as the proxy sees it), `route`, or
//! `header:NAME` (the header's first value, e.g. a tenant set by something
//! in front that the gateway trusts: clients choose header values). A
//! request without it (no consumer identified, no such header) is counted
//! by its client IP instead, in a bucket of its own kind.
//!
//! `policy: local` ([`local`]): counters in this process. `policy: redis`
//! ([`redis`]): one counter per key in Redis (`--redis-url`), shared by
//! every data plane, checked by one atomic Lua script per request and
//! bounded by [`redis::TIMEOUT`]. When Redis fails or is slower than that,
//! `fault_tolerant: true` (the default) lets the request through,
//! `false` answers 503; either way `/status` counts it in
//! `rate_limit_redis_errors`. A data plane started without `--redis-url`
//! refuses (NACKs) a config enabling a `redis` rate limit.
//!
//! Answers: past the limit, 429 `{"message": ...}` with `Retry-After`
//! (seconds until one more request is allowed, rounded up); every request
//! the plugin counted, passed or refused, carries `RateLimit-Limit` (the
//! limit), `RateLimit-Remaining` (requests allowed right now) and
//! `RateLimit-Reset` (seconds until the whole allowance is back, rounded
//! up), as in the IETF draft.

pub mod local;
pub mod redis;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::watch;
use turnpike_model::plugin::rate_limit::{Per, Policy as Counting, RateLimitConfig};
use uuid::Uuid;

use self::local::{LocalLimiter, LocalRegistry};
use self::redis::{RedisBackend, RedisLimiter};
use super::{Flow, Phase, Policy, Rejection, RequestCtx};
use crate::Error;

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The part of a config the counters depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub limit: u64,
    pub window_s: u32,
    pub burst: u64,
}

impl Rate {
    pub fn of(config: &RateLimitConfig) -> Rate {
        let window_s = match (config.window_s, config.per) {
            (Some(w), _) => w.max(1),
            (None, Some(Per::Second)) => 1,
            (None, Some(Per::Hour)) => 3600,
            (None, Some(Per::Minute) | None) => 60,
        };
        let limit = config.limit.max(1);
        Rate {
            limit,
            window_s,
            burst: config.burst.unwrap_or(limit).max(1),
        }
    }

    /// The spacing of requests: the window over the limit (at least 1 ns).
    pub fn interval(&self) -> Duration {
        let ns = u128::from(self.window_s) * 1_000_000_000 / u128::from(self.limit);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX).max(1))
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests allowed right now, after this one.
    pub remaining: u64,
    /// Until the whole allowance is back.
    pub reset: Duration,
    /// When refused: until one more request is allowed.
    pub retry_after: Duration,
}

/// What a request is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRef<'a> {
    Ip(IpAddr),
    Consumer(Uuid),
    Route(&'a str),
    Header(&'a [u8]),
}

enum KeySource {
    Consumer,
    Ip,
    Route,
    Header(HeaderName),
}

impl KeySource {
    fn parse(key: &str) -> Result<KeySource, String> {
        Ok(match key {
            "consumer" => KeySource::Consumer,
            "ip" => KeySource::Ip,
            "route" => KeySource::Route,
            k => match k.strip_prefix("header:") {
                Some(name) => KeySource::Header(
                    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("key: {name} is not a header name"))?,
                ),
                None => return Err(format!("key: unknown key {k}")),
            },
        })
    }

    /// The request's key; its client IP when it lacks what is counted.
    fn of<'a>(&self, ctx: &'a RequestCtx<'_>) -> KeyRef<'a> {
        let ip = KeyRef::Ip(ctx.client_ip);
        match self {
            KeySource::Ip => ip,
            KeySource::Route => KeyRef::Route(ctx.route),
            KeySource::Consumer => ctx.consumer.as_ref().map_or(ip, |c| KeyRef::Consumer(c.id)),
            KeySource::Header(h) => ctx
                .parts
                .headers
                .get(h)
                .map_or(ip, |v| KeyRef::Header(v.as_bytes())),
        }
    }
}

enum Counter {
    Local(Arc<LocalLimiter>),
    Redis(Arc<RedisLimiter>),
}

pub struct RateLimit {
    key: KeySource,
    /// `RateLimit-Limit`, made once.
    limit: HeaderValue,
    counter: Counter,
}

impl RateLimit {
    /// The policy of plugin `id`; a local limiter comes from the registry
    /// (so an unchanged rate keeps its counters across config versions).
    pub fn new(id: Uuid, config: &RateLimitConfig) -> Result<RateLimit, String> {
        let reg = registry();
        RateLimit::build(id, config, &reg.local, reg.redis.load_full())
    }

    /// [`RateLimit::new`] with the registry and Redis given.
    pub fn build(
        id: Uuid,
        config: &RateLimitConfig,
        local: &LocalRegistry,
        redis: Option<Arc<RedisBackend>>,
    ) -> Result<RateLimit, String> {
        let rate = Rate::of(config);
        let counter = match config.policy {
            Counting::Local => Counter::Local(local.get(id, rate)),
            Counting::Redis => {
                let backend = redis
                    .ok_or("policy redis needs a Redis: start the data plane with --redis-url")?;
                Counter::Redis(Arc::new(RedisLimiter::new(
                    backend,
                    id,
                    rate,
                    config.fault_tolerant,
                )))
            }
        };
        Ok(RateLimit {
            key: KeySource::parse(&config.key)?,
            limit: HeaderValue::from(rate.limit),
            counter,
        })
    }
}

impl Policy for RateLimit {
    fn name(&self) -> &'static str {
        "rate-limit"
    }

    fn phase(&self) -> Phase {
        Phase::Limit
    }

    fn priority(&self) -> u16 {
        900
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        match &self.counter {
            Counter::Local(l) => {
                let key = l.key(&self.key.of(ctx));
                let d = l.check(key);
                let h = headers(&d, &self.limit);
                if d.allowed {
                    ctx.response_headers.extend(h);
                    Flow::Continue
                } else {
                    Flow::Reject(too_many(h))
                }
            }
            Counter::Redis(r) => {
                let key = r.key(&self.key.of(ctx));
                let (r, limit) = (r.clone(), self.limit.clone());
                Flow::Wait(Box::pin(async move {
                    match r.check(&key).await {
                        Some(d) if d.allowed => Ok(headers(&d, &limit)),
                        Some(d) => Err(too_many(headers(&d, &limit))),
                        None if r.fault_tolerant() => Ok(HeaderMap::new()),
                        None => Err(Rejection::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "rate limit unavailable",
                        )),
                    }
                }))
            }
        }
    }
}

/// The headers a counted request gets; `Retry-After` too when refused.
pub fn headers(d: &Decision, limit: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(RATELIMIT_LIMIT, limit.clone());
    h.insert(RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    h.insert(RATELIMIT_RESET, HeaderValue::from(ceil_s(d.reset)));
    if !d.allowed {
        h.insert(RETRY_AFTER, HeaderValue::from(ceil_s(d.retry_after).max(1)));
    }
    h
}

/// The 429, with [`headers`].
pub fn too_many(headers: HeaderMap) -> Rejection {
    let mut r = Rejection::new(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
    r.headers = headers;
    r
}

/// Whole seconds, rounded up.
pub fn ceil_s(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Rate-limit state of the process: local limiters (kept across config
/// versions) and the Redis connection. Process-wide because plugins are
/// compiled from the snapshot alone (`policy::compile`); a process runs one
/// data plane.
pub struct RateLimits {
    pub local: LocalRegistry,
    redis: ArcSwapOption<RedisBackend>,
    /// Checks that Redis failed or did not answer in time.
    redis_errors: Arc<AtomicU64>,
}

static RATE_LIMITS: LazyLock<RateLimits> = LazyLock::new(|| RateLimits {
    local: LocalRegistry::default(),
    redis: ArcSwapOption::empty(),
    redis_errors: Arc::default(),
});

pub fn registry() -> &'static RateLimits {
    &RATE_LIMITS
}

/// How many Redis checks failed or timed out since the process started.
pub fn redis_errors() -> u64 {
    registry().redis_errors.load(Ordering::Relaxed)
}

/// Sets up rate limiting for a data plane: the Redis connection (made
/// lazily, warmed at once) when `redis_url` is given, and the task that
/// prunes idle local keys every [`local::PRUNE_EVERY`] until `shutdown`.
pub fn start(redis_url: Option<&str>, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let reg = registry();
    let backend = match redis_url {
        Some(url) => Some(Arc::new(RedisBackend::connect(
            url,
            redis::KEY_PREFIX,
            redis::TIMEOUT,
            reg.redis_errors.clone(),
        )?)),
        None => None,
    };
    reg.redis.store(backend);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(local::PRUNE_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = tokio::task::spawn_blocking(|| registry().local.prune()).await;
                }
                _ = crate::stopped(&mut shutdown) => break,
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests;
