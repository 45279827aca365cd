//! Expiry of the fleet view: rows of data planes not seen for longer than
//! `--data-plane-expiry` are deleted, so nodes that were scaled away or
//! renamed do not stay in the view as `disconnected` forever. Every control
//! plane runs this task; the delete is idempotent, so running it on several
//! at once is harmless.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// Default of `--data-plane-expiry`.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// How often to look: often enough that a row outlives its expiry by a
/// small fraction of it, rarely enough to cost nothing.
pub fn period(expiry: Duration) -> Duration {
    (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Deletes expired rows every [`period`] until `shutdown`.
pub async fn run(store: Store, expiry: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(period(expiry));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match store.expire_data_planes(expiry).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                ?expiry,
                "expired data planes not seen for longer than the expiry"
            ),
            // The next tick tries again; nothing is lost by waiting.
            Err(e) => tracing::warn!(error = %e, "could not expire old data-plane records"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_is_a_fraction_of_the_expiry_within_bounds() {
        assert_eq!(period(DEFAULT_EXPIRY), Duration::from_secs(300));
        assert_eq!(period(Duration::from_secs(60)), Duration::from_secs(15));
        assert_eq!(period(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
