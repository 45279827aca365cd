//! Following the other control planes on the same database. Each control
//! plane serves its own data planes, so a version committed through one must
//! reach the streams of all. Every commit `NOTIFY`s its version on
//! [`CONFIG_CHANNEL`] (see `store::WriteTx::commit`); this task `LISTEN`s on
//! one dedicated connection and, when a version newer than the publisher's
//! is committed anywhere, reads the newest from `config_versions` and
//! publishes it to this process's streams.
//!
//! Notifications are the main path. Because they are lost while nobody
//! listens, the task also reads after every (re)connect of the listener, and,
//! as a safety net, at a slow period; that tick also pings the listener so a
//! silently dead connection is found and replaced.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;

use turnpike_model::backoff::Backoff;

use crate::Error;
use crate::snapshot::Publisher;
use crate::store::{CONFIG_CHANNEL, Store};

/// Period of the safety-net read (and of the listener's liveness ping).
pub const SAFETY_NET: Duration = Duration::from_secs(30);

/// How long a ping of the listener's connection may take before the
/// connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener connection that lived this long ends its reconnect backoff
/// afresh, so one flapping connection cannot reconnect in a tight loop.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

pub struct Follower {
    store: Store,
    publisher: Publisher,
    /// Where the listener connects (the store's database).
    listen_options: PgConnectOptions,
    safety_net: Duration,
}

/// Why one listener connection ended.
enum Ended {
    Shutdown,
    Lost(Error),
}

impl Follower {
    pub fn new(store: Store, publisher: Publisher, safety_net: Duration) -> Follower {
        let listen_options = (*store.pool().connect_options())
            .clone()
            .application_name("turnpike-control-plane-listener");
        Follower {
            store,
            publisher,
            listen_options,
            safety_net,
        }
    }

    /// Listens until `shutdown`, reconnecting with backoff whenever the
    /// listener's connection is lost.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            let started = Instant::now();
            match self.listen(&mut shutdown).await {
                Ended::Shutdown => return,
                Ended::Lost(e) => {
                    if started.elapsed() >= HEALTHY_AFTER {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay,
                        "config listener lost (or could not open) its connection; reconnecting, then catching up");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(&mut shutdown) => return,
                    }
                }
            }
        }
    }

    /// One listener connection: subscribe, catch up, then follow until the
    /// connection fails or `shutdown`.
    async fn listen(&self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let mut listener = match self.subscribe().await {
            Ok(l) => l,
            Err(e) => return Ended::Lost(e),
        };
        tracing::info!(
            channel = CONFIG_CHANNEL,
            "listening for versions committed by any control plane"
        );
        // Subscribed first, read second: a commit after the subscription is
        // heard, one before it is read here.
        if self.catch_up(shutdown).await.is_err() {
            return Ended::Shutdown;
        }
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.safety_net,
            self.safety_net,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // `try_recv` is cancel-safe: a notification half read when
            // another branch wins stays buffered for the next call.
            let look = tokio::select! {
                heard = listener.try_recv() => match heard {
                    Ok(Some(n)) => self.is_news(n.payload()),
                    Ok(None) => return Ended::Lost(Error::Internal("connection closed".into())),
                    Err(e) => return Ended::Lost(e.into()),
                },
                _ = tick.tick() => {
                    if let Err(e) = ping(&mut listener).await {
                        return Ended::Lost(e);
                    }
                    true
                }
                _ = stopped(shutdown) => return Ended::Shutdown,
            };
            if look && self.catch_up(shutdown).await.is_err() {
                return Ended::Shutdown;
            }
        }
    }

    async fn subscribe(&self) -> Result<PgListener, Error> {
        // A one-connection pool per subscription, never the store's: the
        // listener holds its connection for good, and a dead one (whose
        // UNLISTEN on drop may hang) must neither reach the admin API nor
        // block the next subscription.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.listen_options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // Reconnects are ours to make, so each is followed by a catch-up.
        listener.eager_reconnect(false);
        listener.listen(CONFIG_CHANNEL).await?;
        Ok(listener)
    }

    /// Whether a notification names a version this process does not hold.
    /// Our own commits come back too; they are already published.
    fn is_news(&self, payload: &str) -> bool {
        match payload.parse::<u64>() {
            Ok(v) => v > self.publisher.current().version,
            // Not ours to judge: read and see.
            Err(_) => true,
        }
    }

    /// Reads the newest version and publishes it if it is newer than the
    /// one held, retrying with backoff until it succeeds. `Err` only on
    /// shutdown.
    async fn catch_up(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ()> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match self.read_newest().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "could not read the newest config version");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(shutdown) => return Err(()),
                    }
                }
            }
        }
    }

    /// One read of `config_versions`; publishes what is newer than held.
    pub async fn read_newest(&self) -> Result<(), Error> {
        let held = self.publisher.current().version;
        if let Some(newest) = self.store.published_after(held).await? {
            tracing::info!(
                from = held,
                to = newest.version,
                "publishing a version committed by another control plane"
            );
            // `publish` keeps versions growing even if a local write
            // published something newer meanwhile.
            self.publisher.publish(newest);
        }
        Ok(())
    }
}

/// Resolves once `shutdown` turns true. Owns no guard, so the futures
/// that select on it stay `Send`.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// A round trip on the listener's own connection.
async fn ping(listener: &mut PgListener) -> Result<(), Error> {
    match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(listener)).await {
        Ok(done) => done.map(|_| ()).map_err(Error::from),
        Err(_) => Err(Error::Internal(format!(
            "no answer to a ping within {PING_TIMEOUT:?}"
        ))),
    }
}
