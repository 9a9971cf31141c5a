//! The doorbell of a connection task: raised once, by the server's shutdown or by a
//! request to remove the connection, and checked by the task between frames.
//!
//! The task waits for its socket and for this at once. A `tokio::sync::Notify` would take
//! its lock and walk its waiter list every time the task waits and wakes, that is twice per
//! request; this takes no lock at all while the task only checks, and one uncontended lock
//! to leave its waker when it waits.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
};

/// A flag that, once raised, stays raised, and wakes the task waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Wake {
    /// Raises the flag and wakes the waiting task, if any.
    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        let waker = crate::sync::lock(&self.waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the flag is raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Ready once the flag is raised; otherwise leaves the task's waker to be woken by
    /// [`Wake::raise`].
    pub(crate) fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_raised() {
            return Poll::Ready(());
        }
        {
            let mut slot = crate::sync::lock(&self.waker);
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        // `raise` sets the flag before it takes the waker: either it found the waker just
        // left, or the flag is visible now.
        if self.is_raised() { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Waits until the flag is raised.
    pub(crate) async fn raised(&self) {
        std::future::poll_fn(|cx| self.poll_raised(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_raise_from_another_thread_wakes_the_waiter() {
        let wake = Arc::new(Wake::default());
        assert!(!wake.is_raised());
        let waiter = tokio::spawn({
            let wake = wake.clone();
            async move { wake.raised().await }
        });
        let raiser = std::thread::spawn({
            let wake = wake.clone();
            move || wake.raise()
        });
        raiser.join().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the waiter wakes")
            .unwrap();
        assert!(wake.is_raised());
        // Raised stays raised.
        wake.raised().await;
    }
}
