//! The signals a `Control` handles, outside signal context: SIGTERM and SIGHUP (a clean
//! shutdown) and SIGUSR1 (a hickup dump).
//!
//! Two sources, one stream of [`ControlSignal`]s:
//! - in the process that started the program, tokio's signal handling (a handler that
//!   only writes to a pipe the runtime watches), which works whatever the threads;
//! - in a child started by `Process::start`, a `signalfd`: tokio's signal handling is
//!   process-global state inherited from the parent and cannot be set up again there.
//!   The signals are blocked in the thread that installs it, before the runtime's threads
//!   exist (a `Control` started with `into_process` runs a current-thread runtime).

use std::io;

use nix::sys::{
    signal::{SigSet, Signal},
    signalfd::{SfdFlags, SignalFd},
};
use tokio::io::unix::AsyncFd;

/// What a signal asks a `Control` to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlSignal {
    /// SIGTERM or SIGHUP (this number): shut down cleanly.
    Terminate(i32),
    /// SIGUSR1: write a hickup dump and forward the signal to `ave-` children.
    Hickup,
}

/// The signal handling of a running `Control`.
#[derive(Debug)]
pub(crate) struct ControlSignals(Source);

#[derive(Debug)]
enum Source {
    Tokio {
        terminate: tokio::signal::unix::Signal,
        hangup: tokio::signal::unix::Signal,
        hickup: tokio::signal::unix::Signal,
    },
    Fd(AsyncFd<SignalFd>),
}

impl ControlSignals {
    /// Installs the handling that suits this process: a signalfd in a forked child,
    /// tokio's handlers otherwise. Must be called inside a runtime.
    pub(crate) fn install() -> io::Result<ControlSignals> {
        if crate::process::is_forked_child() {
            ControlSignals::signalfd()
        } else {
            ControlSignals::tokio()
        }
    }

    /// tokio's handlers (process-wide; the first call installs them for good).
    pub(crate) fn tokio() -> io::Result<ControlSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ControlSignals(Source::Tokio {
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            hickup: signal(SignalKind::user_defined1())?,
        }))
    }

    /// A signalfd; SIGTERM, SIGHUP and SIGUSR1 are blocked in the calling thread (and the threads
    /// it starts later), so they are only ever read from it.
    pub(crate) fn signalfd() -> io::Result<ControlSignals> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGHUP);
        set.add(Signal::SIGUSR1);
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(ControlSignals(Source::Fd(crate::sys::process::register_signalfd(fd)?)))
    }

    /// The next signal; `None` if the source is gone.
    pub(crate) async fn next(&mut self) -> Option<ControlSignal> {
        match &mut self.0 {
            Source::Tokio { terminate, hangup, hickup } => tokio::select! {
                got = terminate.recv() => got.map(|()| ControlSignal::Terminate(nix::libc::SIGTERM)),
                got = hangup.recv() => got.map(|()| ControlSignal::Terminate(nix::libc::SIGHUP)),
                got = hickup.recv() => got.map(|()| ControlSignal::Hickup),
            },
            Source::Fd(fd) => loop {
                let mut ready = fd.readable().await.ok()?;
                match ready.get_inner().read_signal() {
                    Ok(Some(info)) => {
                        let number = i32::try_from(info.ssi_signo).unwrap_or(0);
                        if number == nix::libc::SIGTERM || number == nix::libc::SIGHUP {
                            return Some(ControlSignal::Terminate(number));
                        }
                        if number == nix::libc::SIGUSR1 {
                            return Some(ControlSignal::Hickup);
                        }
                    }
                    Ok(None) => ready.clear_ready(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the signalfd");
                        return None;
                    }
                }
            },
        }
    }
}

/// The next signal of an optional source (pending forever without one).
pub(crate) async fn next(signals: &mut Option<ControlSignals>) -> Option<ControlSignal> {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
