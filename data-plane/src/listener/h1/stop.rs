//! A connection's watch on its listener's shutdown while it waits for a
//! request head, so an idle keep-alive connection closes when the drain
//! begins.
//!
//! Why not poll the channel's future at each wait: tokio's watch future
//! keeps its waker in the channel's `Notify`, whose waiters sit under one
//! mutex shared by every connection of the listener (on every worker
//! thread), and each poll of a registered waiter takes that mutex to
//! compare wakers: a lock and ~170 instructions a request (callgrind).
//! Here the future is polled only when this task's waker is not the one
//! it registered (the first wait, or a task given another waker); other
//! waits read the channel's version, one atomic load. A shutdown wakes the
//! registered waker, and that wait sees the new version.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::sync::watch;

pub(super) struct Stop<'a, F> {
    /// Resolves when shutdown begins (`crate::stopped`).
    wait: Pin<&'a mut F>,
    /// A receiver of the same channel that is never marked seen: any new
    /// version is the shutdown (only `true` is ever sent), and a dropped
    /// sender counts as one, as it does for `wait`.
    probe: &'a watch::Receiver<bool>,
    registered: Option<Waker>,
}

impl<'a, F: Future<Output = ()>> Stop<'a, F> {
    pub(super) fn new(wait: Pin<&'a mut F>, probe: &'a watch::Receiver<bool>) -> Self {
        Stop {
            wait,
            probe,
            registered: None,
        }
    }

    /// Ready once shutdown has begun; else pending, with this task to be
    /// woken when it begins.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.probe.has_changed().unwrap_or(true) {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        if self.wait.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        self.registered = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    /// `crate::stopped`, counting its polls.
    fn counted<'a>(
        rx: &'a mut watch::Receiver<bool>,
        polls: &'a AtomicUsize,
    ) -> impl Future<Output = ()> + 'a {
        let mut inner = Box::pin(crate::stopped(rx));
        poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            inner.as_mut().poll(cx)
        })
    }

    /// One poll, whatever its outcome.
    async fn once<F: Future<Output = ()>>(stop: &mut Stop<'_, F>) -> Poll<()> {
        poll_fn(|cx| Poll::Ready(stop.poll(cx))).await
    }

    #[tokio::test]
    async fn the_channel_is_polled_once_per_waker_and_a_shutdown_wakes_the_waiting_task() {
        let (tx, mut rx) = watch::channel(false);
        let polls = Arc::new(AtomicUsize::new(0));
        let (registered, was_registered) = oneshot::channel();
        let p = polls.clone();
        let task = tokio::spawn(async move {
            let probe = rx.clone();
            let wait = pin!(counted(&mut rx, &p));
            let mut stop = Stop::new(wait, &probe);
            for _ in 0..3 {
                assert!(once(&mut stop).await.is_pending());
            }
            assert_eq!(p.load(Ordering::SeqCst), 1, "registered once");
            // Another waker registers again, and so does the task's after it.
            let noop = Waker::noop();
            assert!(stop.poll(&mut Context::from_waker(noop)).is_pending());
            assert!(once(&mut stop).await.is_pending());
            assert_eq!(p.load(Ordering::SeqCst), 3);
            let _ = registered.send(());
            poll_fn(|cx| stop.poll(cx)).await;
        });
        was_registered.await.unwrap();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the shutdown wakes the task")
            .unwrap();
        assert_eq!(
            polls.load(Ordering::SeqCst),
            3,
            "the wake is read off the version"
        );
    }

    #[test]
    fn a_dropped_sender_ends_the_wait() {
        let (tx, mut rx) = watch::channel(false);
        let probe = rx.clone();
        let polls = AtomicUsize::new(0);
        let wait = pin!(counted(&mut rx, &polls));
        let mut stop = Stop::new(wait, &probe);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(stop.poll(&mut cx).is_pending());
        drop(tx);
        assert!(stop.poll(&mut cx).is_ready());
    }
}
