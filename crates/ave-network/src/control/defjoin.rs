//! Deferred joins: a `Control` reaps the children handed to it with
//! [`ControlHandle::join_later`] from its event loop, as they end, and tells the service
//! through its `joined_process` hook.
//!
//! Each deferred child is watched through a pidfd (readable once the child has ended),
//! so nothing polls and a child is reaped as soon as it ends, whatever the traffic (the
//! original only reaped after a poll round, so zombies lingered on an idle server).

use std::{os::fd::OwnedFd, sync::Mutex, time::Duration};

use tokio::{io::Interest, sync::mpsc, task::JoinSet};

use crate::{
    Error,
    control::ControlHandle,
    process::{ExitStatus, Pid, Process},
    process::{not_a_child, wait_error},
    sys::process as sys,
};

/// A child to reap.
struct Deferred {
    pid: Pid,
    pidfd: OwnedFd,
}

/// What a `Control` keeps of its deferred joins.
pub(crate) struct Reaper {
    tx: mpsc::UnboundedSender<Deferred>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Deferred>>>,
    pending: Mutex<Vec<Pid>>,
}

use crate::sync::lock;

impl Reaper {
    pub(crate) fn new() -> Reaper {
        let (tx, rx) = mpsc::unbounded_channel();
        Reaper { tx, rx: Mutex::new(Some(rx)), pending: Mutex::new(Vec::new()) }
    }

    fn defer(&self, pid: Pid, pidfd: OwnedFd) {
        lock(&self.pending).push(pid);
        // The receiver lives as long as the event loop; after it, nothing is reaped.
        let _ = self.tx.send(Deferred { pid, pidfd });
    }

    /// The event loop's side; `None` after the first call.
    pub(crate) fn driver(&self) -> Option<ReaperDriver> {
        lock(&self.rx).take().map(|rx| ReaperDriver { rx, waits: JoinSet::new() })
    }

    fn done(&self, pid: Pid) {
        let mut pending = lock(&self.pending);
        if let Some(i) = pending.iter().position(|p| *p == pid) {
            pending.remove(i);
        }
    }
}

/// The event loop's side of the deferred joins: one small task per child, waiting on its
/// pidfd.
pub(crate) struct ReaperDriver {
    rx: mpsc::UnboundedReceiver<Deferred>,
    waits: JoinSet<(Pid, Result<ExitStatus, Error>)>,
}

impl ReaperDriver {
    /// The next child that ended (or could not be joined).
    pub(crate) async fn next(&mut self) -> (Pid, Result<ExitStatus, Error>) {
        loop {
            tokio::select! {
                Some(deferred) = self.rx.recv() => {
                    self.waits.spawn(wait_for(deferred));
                }
                Some(joined) = self.waits.join_next(), if !self.waits.is_empty() => match joined {
                    Ok(joined) => return joined,
                    Err(e) => tracing::error!(error = %e, "a deferred join task failed"),
                },
                else => std::future::pending::<()>().await,
            }
        }
    }
}

/// The next joined child of an optional driver (pending forever without one).
pub(crate) async fn next(driver: &mut Option<ReaperDriver>) -> (Pid, Result<ExitStatus, Error>) {
    match driver {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}

async fn wait_for(deferred: Deferred) -> (Pid, Result<ExitStatus, Error>) {
    let pid = deferred.pid;
    let fd = match sys::register(deferred.pidfd, Interest::READABLE) {
        Ok(fd) => fd,
        Err(e) => return (pid, Err(Error::io("watch a pidfd", e))),
    };
    if let Err(e) = fd.readable().await {
        return (pid, Err(Error::io("watch a pidfd", e)));
    }
    // The pidfd is readable once the whole process has ended, so the first wait reaps it;
    // should it not (yet), look again shortly rather than wait for an edge that was used.
    loop {
        match sys::waitpid(pid.get(), true) {
            Ok(Some(raw)) => {
                if let Some(status) = ExitStatus::from_raw(raw) {
                    return (pid, Ok(status));
                }
            }
            Ok(None) => {}
            Err(e) => return (pid, Err(wait_error(e))),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reports a deferred join: the `joined_process` hook, or the original's error line.
pub(crate) fn joined(handle: &ControlHandle, pid: Pid, joined: Result<ExitStatus, Error>) {
    handle.shared.reaper.done(pid);
    match joined {
        Ok(status) => {
            tracing::debug!(%pid, %status, "joined a deferred process");
            if let Some(hook) = &handle.shared.service.hooks().joined_process {
                let call = std::panic::AssertUnwindSafe(|| hook(handle, pid, status));
                if std::panic::catch_unwind(call).is_err() {
                    tracing::error!("the joined_process hook panicked");
                }
            }
        }
        Err(e) => {
            let (kind, message) = match &e {
                Error::Process(p) => (p.type_name().to_owned(), p.message().to_owned()),
                other => ("Exception".to_owned(), ave_exceptions::error_chain(other)),
            };
            tracing::error!("ERROR: {kind}({message}) when joining {pid}");
        }
    }
}

impl ControlHandle {
    /// Reaps `process` from the event loop once it ends, then calls the service's
    /// `joined_process` hook with its pid and status (the original's `join_later`). The
    /// same process may be deferred twice: it is reaped once, the other entry is dropped
    /// with an error line.
    ///
    /// # Errors
    ///
    /// [`Error::Process`]: `Unstarted` for a process never started, `Unwaitable` for one
    /// that is not a child (a daemon) or already joined; [`Error::ShuttingDown`] if the
    /// server is shutting down.
    pub fn join_later(&self, process: &Process) -> Result<(), Error> {
        let (pid, pidfd) = process.deferrable()?;
        self.defer(pid, pidfd)
    }

    /// As [`ControlHandle::join_later`], for a child known by its pid (e.g. one spawned
    /// with `std::process::Command`, whose `Child` must then not be waited for).
    ///
    /// # Errors
    ///
    /// [`Error::JoinSelf`] (`cannot defer join of self`) for this process's own pid;
    /// [`Error::Process`]: `Unwaitable` (`target process is not a child`), `Unknown`
    /// (`cannot join unknown process`); [`Error::ShuttingDown`] if the server is shutting
    /// down.
    pub fn join_later_pid(&self, pid: Pid) -> Result<(), Error> {
        if pid == Pid::this() {
            return Err(Error::JoinSelf);
        }
        sys::has_terminated(pid.get()).map_err(wait_error)?;
        let pidfd = sys::pidfd_open(pid.get()).map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ESRCH) { not_a_child() } else { wait_error(e) }
        })?;
        self.defer(pid, pidfd)
    }

    /// The pids deferred and not joined yet, once per deferral (the original test
    /// servers' `list_orphans`).
    pub fn deferred_joins(&self) -> Vec<Pid> {
        lock(&self.shared.reaper.pending).clone()
    }

    fn defer(&self, pid: Pid, pidfd: OwnedFd) -> Result<(), Error> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        self.shared.reaper.defer(pid, pidfd);
        Ok(())
    }
}
