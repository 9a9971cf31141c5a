//! Ctrl-C and friends for `ave demo`: SIGINT, SIGTERM and SIGHUP are blocked before the
//! demo starts anything and are waited for on a thread of their own once it may have
//! threads, so a signal at any moment ends in the demo's cleanup, never in a sudden exit.
//!
//! Blocking comes first because the demo forks its server while it still has one thread:
//! no handler thread may exist then. A signal that arrives before the waiting thread
//! starts stays pending and is taken as soon as it does. Children start with an empty
//! signal mask (`Process` and `ave::cmd` reset it), so they see these signals as usual.

use nix::sys::signal::{SigSet, Signal};
use tokio::sync::watch;

/// A signal that interrupts the demo.
pub(super) type Caught = Signal;

/// The signals that interrupt the demo, blocked in the calling thread (and so in every
/// thread it starts). Call it first, while the process has one thread.
///
/// # Errors
///
/// If the signal mask cannot be changed.
pub(super) fn block() -> nix::Result<SigSet> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block()?;
    Ok(set)
}

/// Starts the thread that waits for the blocked signals; the receiver holds the first one
/// that arrived (later ones are taken and ignored: the cleanup is already under way).
///
/// # Errors
///
/// If the thread cannot start.
pub(super) fn watch(set: SigSet) -> std::io::Result<watch::Receiver<Option<Signal>>> {
    let (tx, rx) = watch::channel(None);
    std::thread::Builder::new().name("ave-demo-signals".to_owned()).spawn(move || {
        loop {
            let Ok(signal) = set.wait() else { continue };
            tracing::debug!(signal = signal.as_str(), "signal");
            tx.send_if_modified(|first| {
                let unset = first.is_none();
                if unset {
                    *first = Some(signal);
                }
                unset
            });
        }
    })?;
    Ok(rx)
}

/// The first signal, once one has arrived (never, if the waiting thread is gone).
pub(super) async fn first(rx: &mut watch::Receiver<Option<Signal>>) -> Signal {
    match rx.wait_for(Option::is_some).await {
        Ok(signal) => signal.unwrap_or(Signal::SIGINT),
        Err(_) => std::future::pending().await,
    }
}
