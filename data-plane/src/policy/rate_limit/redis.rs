//! `policy: redis`: one GCRA counter per key in Redis, shared by every data
//! plane that points at it: one key holding the theoretical arrival time
//! (TAT, µs of Redis's clock, so data planes' clocks do not matter), read,
//! tested and moved by one Lua script, so concurrent checks from any number
//! of data planes are atomic. The key expires when its counter is back to
//! full. Same arithmetic as governor's local limiter.
//!
//! The script goes by `EVALSHA`; on `NOSCRIPT` (a restarted or flushed
//! Redis) the same call is made with `EVAL`, which also caches it again.
//! One multiplexed connection per process (redis' `ConnectionManager`:
//! made lazily, warmed at start, reconnected by itself). Each check is
//! bounded by [`TIMEOUT`] (50 ms, connecting included): past it, or on any
//! Redis error, the check has no answer, the process's error count goes up
//! and the plugin's `fault_tolerant` decides.
//!
//! Keys: `turnpike:rl:{plugin id}:{limit}/{window}s/{burst}:{what}`, where
//! what is `ip:ADDR`, `consumer:ID`, `route:ID` or `header:VALUE` (a value
//! over 128 bytes as its SHA-256); a rate change starts new counters.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ErrorKind, RedisError, Script, ServerErrorKind, cmd};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Decision, KeyRef, Rate};
use crate::Error;

/// The longest a check may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_millis(50);

pub const KEY_PREFIX: &str = "turnpike:rl:";

/// KEYS[1]: the counter. ARGV[1]: the interval between requests, ARGV[2]:
/// the tolerance ((burst - 1) × interval), both in µs. Returns {allowed,
/// remaining, µs until full, µs until the next request is allowed}.
const GCRA: &str = r"
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local allow_at = tat - tau
if now < allow_at then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
local new_tat = tat + t
redis.call('SET', KEYS[1], string.format('%.3f', new_tat),
  'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now + tau + t - new_tat) / t), math.ceil(new_tat - now), 0}
";

/// The process's connection to Redis and the script.
pub struct RedisBackend {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    timeout: Duration,
    errors: Arc<AtomicU64>,
    /// When the last error was logged (ms since `since`), so an outage
    /// logs a line every few seconds, not one per request.
    last_log: AtomicU64,
    since: Instant,
}

impl RedisBackend {
    /// A backend for `url` (`redis://[user:pass@]host:port[/db]`); counters
    /// under `prefix`; failed checks counted in `errors`. Needs a Tokio
    /// runtime; the connection is made in the background, not here.
    pub fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
        errors: Arc<AtomicU64>,
    ) -> Result<RedisBackend, Error> {
        let bad = |e: RedisError| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--redis-url: {e}"),
            ))
        };
        let client = Client::open(url).map_err(bad)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?;
        let backend = RedisBackend {
            conn,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            timeout,
            errors,
            last_log: AtomicU64::new(0),
            since: Instant::now(),
        };
        // Connect and load the script now, so the first requests do not
        // pay for it within their timeout.
        let mut warm = backend.conn.clone();
        tokio::spawn(async move {
            let loaded = cmd("SCRIPT")
                .arg("LOAD")
                .arg(GCRA)
                .query_async::<String>(&mut warm)
                .await;
            if let Err(e) = loaded {
                tracing::warn!(error = %e, "rate-limit: Redis not reachable yet");
            }
        });
        Ok(backend)
    }

    /// Runs the script for `key`; `None` when Redis failed or was late.
    pub async fn check(&self, key: &[u8], rate: Rate) -> Option<Decision> {
        let t_us = rate.interval().as_nanos() as f64 / 1000.0;
        let tau_us = t_us * rate.burst.saturating_sub(1) as f64;
        let run = self.eval(key, t_us, tau_us);
        let reply = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return self.failed(&e.to_string()),
            Err(_) => return self.failed("no answer in time"),
        };
        let [allowed, remaining, reset_us, retry_us] = reply;
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Some(Decision {
            allowed: allowed == 1,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: us(reset_us),
            retry_after: us(retry_us),
        })
    }

    async fn eval(&self, key: &[u8], t_us: f64, tau_us: f64) -> Result<[i64; 4], RedisError> {
        let mut conn = self.conn.clone();
        let call = |name: &str, script: &str| {
            let mut c = cmd(name);
            c.arg(script).arg(1).arg(key).arg(t_us).arg(tau_us);
            c
        };
        match call("EVALSHA", self.script.get_hash())
            .query_async(&mut conn)
            .await
        {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                call("EVAL", GCRA).query_async(&mut conn).await
            }
            r => r,
        }
    }

    fn failed(&self, why: &str) -> Option<Decision> {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.since.elapsed().as_millis() as u64 + 1;
        let last = self.last_log.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 5_000)
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = why, errors = n, "rate-limit: Redis check failed");
        }
        None
    }
}

/// One `redis` rate-limit plugin: its rate and where its counters are.
pub struct RedisLimiter {
    backend: Arc<RedisBackend>,
    /// The key up to what is counted.
    scope: Vec<u8>,
    rate: Rate,
    fault_tolerant: bool,
}

impl RedisLimiter {
    pub fn new(backend: Arc<RedisBackend>, id: Uuid, rate: Rate, fault_tolerant: bool) -> Self {
        let scope = format!(
            "{}{id}:{}/{}s/{}:",
            backend.prefix, rate.limit, rate.window_s, rate.burst
        )
        .into_bytes();
        RedisLimiter {
            backend,
            scope,
            rate,
            fault_tolerant,
        }
    }

    /// Whether requests pass when Redis cannot answer.
    pub fn fault_tolerant(&self) -> bool {
        self.fault_tolerant
    }

    /// The Redis key counting `what`.
    pub fn key(&self, what: &KeyRef<'_>) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.scope.len() + 48);
        k.extend_from_slice(&self.scope);
        // Writes to a Vec do not fail.
        let _ = match what {
            KeyRef::Ip(ip) => write!(k, "ip:{ip}"),
            KeyRef::Consumer(id) => write!(k, "consumer:{id}"),
            KeyRef::Route(id) => write!(k, "route:{id}"),
            KeyRef::Header(v) if v.len() > 128 => {
                write!(k, "header:sha256:{}", hex::encode(Sha256::digest(v)))
            }
            KeyRef::Header(v) => {
                k.extend_from_slice(b"header:");
                k.extend_from_slice(v);
                Ok(())
            }
        };
        k
    }

    /// Counts one request; `None` when Redis did not answer.
    pub async fn check(&self, key: &[u8]) -> Option<Decision> {
        self.backend.check(key, self.rate).await
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
