//! Capped exponential backoff with jitter (each delay drawn from the upper
//! half of its ceiling), so a fleet that lost its control plane does not
//! reconnect in lockstep. Shared by the data plane's config stream and the
//! control plane's Postgres listener.

use std::time::Duration;

use rand::Rng;

#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// A delay drawn from [ceiling/2, ceiling], where the ceiling doubles per
    /// attempt up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2));
        }
        assert!(
            b.next_delay() >= Duration::from_secs(1),
            "stays near the cap"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
