//! `basic-auth`: the consumer presents `Authorization: Basic
//! base64(username:password)` (RFC 7617; the scheme in any case, strict
//! padded base64, UTF-8, the first colon ends the username). The username
//! finds the credential; the password is checked against its Argon2id PHC
//! hash, as the control plane stored it (`control-plane::seal`).
//!
//! No `Authorization`, or one of another scheme (a `Bearer` token is the
//! jwt plugin's): absent, so another authentication plugin may answer.
//! Malformed credentials, an unknown username or a wrong password: 401 at
//! once. Every 401 carries `WWW-Authenticate: Basic realm="<realm>"`.
//!
//! An Argon2 check costs 20–50 ms of CPU and 19 MiB: it never runs on the
//! async threads but on the blocking pool (`Flow::Identify`), at most one
//! per core at a time (a semaphore, which also caps the memory), with at
//! most [`MAX_PENDING_PER_CORE`] per core waiting or running; past that a
//! check is refused with 503 and `Retry-After: 1`, so a burst of wrong
//! passwords cannot queue without end. Successful checks are remembered
//! (`Verified`): the SHA-256 of username, password and stored hash, so a
//! changed password or hash misses. The cache is a process-wide `static`,
//! not part of a config version: a push that does not touch a credential
//! keeps its entries (and one that does changes the key), and a data plane
//! is one process. It holds up to [`CACHE_ENTRIES`] digests, oldest out
//! first. Only a client that knows the password can make a check hit it.
//! Unknown usernames are refused without hashing, so timing tells whether
//! a username exists (as in Kong and APISIX); usernames are not secrets.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64ct::{Base64, Encoding};
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use turnpike_model::plugin::basic_auth::BasicAuthConfig;

use super::{CompiledConsumer, Flow, Phase, Policy, Rejection, RequestCtx};

/// Successful checks remembered by this data plane.
pub const CACHE_ENTRIES: usize = 10_000;
/// Checks waiting or running, per core, before new ones get 503.
pub const MAX_PENDING_PER_CORE: usize = 32;
/// Longest decoded `username:password` (128 + 1 + 1024 bytes, the
/// credential's limits, and some room).
const MAX_DECODED: usize = 1280;

pub struct BasicAuth {
    hide_credentials: bool,
    challenge: HeaderValue,
}

impl BasicAuth {
    pub fn new(config: BasicAuthConfig) -> Result<BasicAuth, String> {
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{}\"", config.realm))
            .map_err(|_| format!("realm {:?} is not a header value", config.realm))?;
        Ok(BasicAuth {
            hide_credentials: config.hide_credentials,
            challenge,
        })
    }

    fn refuse(&self, message: &'static str) -> Rejection {
        Rejection::new(StatusCode::UNAUTHORIZED, message)
            .with_header(WWW_AUTHENTICATE, self.challenge.clone())
    }
}

impl Policy for BasicAuth {
    fn name(&self) -> &'static str {
        "basic-auth"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn priority(&self) -> u16 {
        1200
    }

    fn authenticates(&self) -> bool {
        true
    }

    fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Flow {
        let mut values = ctx.parts.headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Flow::Absent(self.refuse("no basic credentials found in the request"));
        };
        if values.next().is_some() {
            return Flow::Reject(self.refuse("more than one Authorization header"));
        }
        let mut buf = [0u8; MAX_DECODED];
        let (username, password) = match parse(value.as_bytes(), &mut buf) {
            Ok(Some(pair)) => pair,
            Ok(None) => {
                return Flow::Absent(self.refuse("no basic credentials found in the request"));
            }
            Err(()) => return Flow::Reject(self.refuse("malformed basic credentials")),
        };
        let consumers = ctx.consumers;
        let Some((hash, consumer)) = consumers
            .basic_auth
            .get(username)
            .and_then(|(cred, c)| Some((cred.password_hash.as_deref()?, c)))
        else {
            return Flow::Reject(self.refuse("invalid username or password"));
        };
        let key = cache_key(username, password, hash);
        if verified().contains(&key) {
            ctx.consumer = Some(consumer.clone());
            self.hide(ctx);
            return Flow::Continue;
        }
        let check = Check {
            password: password.to_owned(),
            hash: hash.to_owned(),
            key,
        };
        let consumer = consumer.clone();
        let wrong = self.refuse("invalid username or password");
        // On a wrong password the request is refused, so hiding now is safe.
        self.hide(ctx);
        Flow::Identify(Box::pin(check.run(consumer, wrong)))
    }
}

impl BasicAuth {
    fn hide(&self, ctx: &mut RequestCtx<'_>) {
        if self.hide_credentials {
            ctx.parts.headers.remove(AUTHORIZATION);
        }
    }
}

/// `Basic <base64>`: `Ok(None)` for another scheme, `Err` for a Basic one
/// that is malformed.
fn parse<'b>(value: &[u8], buf: &'b mut [u8]) -> Result<Option<(&'b str, &'b str)>, ()> {
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Ok(None);
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(());
    }
    let decoded = Base64::decode(token, buf).map_err(|_| ())?;
    let text = std::str::from_utf8(decoded).map_err(|_| ())?;
    let (username, password) = text.split_once(':').ok_or(())?;
    if username.is_empty() {
        return Err(());
    }
    Ok(Some((username, password)))
}

/// SHA-256 of the three, each length-prefixed so no two triples collide.
fn cache_key(username: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut d = Sha256::new();
    for part in [username, password, hash] {
        d.update((part.len() as u64).to_be_bytes());
        d.update(part.as_bytes());
    }
    d.finalize().into()
}

/// A password check to run on the blocking pool.
struct Check {
    password: String,
    hash: String,
    key: [u8; 32],
}

impl Check {
    async fn run(
        self,
        consumer: Arc<CompiledConsumer>,
        wrong: Rejection,
    ) -> Result<Arc<CompiledConsumer>, Rejection> {
        let _pending = Pending::enter().ok_or_else(busy)?;
        // The permit moves into the blocking task: a client that goes away
        // does not free its core before the hash is done.
        let permit = hashing()
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        let Check {
            password,
            hash,
            key,
        } = self;
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .map_err(|_| {
            Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the password check failed",
            )
        })?;
        if !ok {
            return Err(wrong);
        }
        verified().insert(key);
        Ok(consumer)
    }
}

fn busy() -> Rejection {
    Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many password checks in progress",
    )
    .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// One permit per core: Argon2 checks running at once.
fn hashing() -> &'static Arc<Semaphore> {
    static HASHING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(cores())));
    &HASHING
}

static PENDING: AtomicUsize = AtomicUsize::new(0);

/// A check counted as waiting or running until dropped.
struct Pending;

impl Pending {
    fn enter() -> Option<Pending> {
        let max = MAX_PENDING_PER_CORE * cores();
        PENDING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Pending)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Digests of successful checks, oldest evicted first.
#[derive(Default)]
struct Verified {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

struct Cache(Mutex<Verified>);

fn verified() -> &'static Cache {
    static VERIFIED: LazyLock<Cache> = LazyLock::new(|| Cache(Mutex::default()));
    &VERIFIED
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().seen.contains(key)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut v = self.lock();
        if v.seen.insert(key) {
            v.order.push_back(key);
            if v.order.len() > CACHE_ENTRIES
                && let Some(old) = v.order.pop_front()
            {
                v.seen.remove(&old);
            }
        }
    }
}

#[cfg(test)]
#[path = "basic_auth_tests.rs"]
mod tests;
