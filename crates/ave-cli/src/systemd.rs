//! `ave serve` under systemd: the listener it inherits (socket activation or the
//! descriptor store) and what it tells the manager (`READY=1`, `STATUS=`, `WATCHDOG=1`,
//! `MAINPID=` after a replace, `STOPPING=1`, `FDSTORE=1`), through
//! `ave::network::systemd`. Without `LISTEN_FDS` and `NOTIFY_SOCKET` none of this does
//! anything.

use std::{net::TcpListener, os::fd::AsFd as _, sync::Arc};

use ave::network::{
    Control,
    control::Stopped,
    systemd::{self, InheritedListener, Notifier},
};

use crate::logging::LIFECYCLE;

/// The name the listener is stored under in the manager's descriptor store.
pub(crate) const LISTENER_NAME: &str = "ave-serve-listener";

/// The listening TCP socket passed through `LISTEN_FDS`, if any. Call it before the
/// runtime starts, so the variables can be unset for the children.
///
/// # Errors
///
/// Malformed `LISTEN_*` variables, or announced descriptors that are not open.
pub(crate) fn inherited_listener() -> anyhow::Result<Option<InheritedListener>> {
    let inherited = systemd::inherited_listener()?;
    if let Some(l) = &inherited {
        if l.ignored > 0 {
            tracing::warn!(count = l.ignored, "other descriptors in LISTEN_FDS closed unused");
        }
    }
    Ok(inherited)
}

/// How this instance came to serve, for what it tells the manager.
#[derive(Debug)]
pub(crate) enum Start<'a> {
    /// It bound its listener: store a copy with the manager, so a restart gets it back.
    Bound(&'a TcpListener),
    /// It inherited its listener from the manager (socket unit or descriptor store).
    Inherited,
    /// It took over `count` connections from `pid` (`--replace`): it is the main process now.
    TookOver { count: usize, pid: u32 },
}

/// The link to the service manager while the server runs.
#[derive(Debug)]
pub(crate) struct Manager {
    notifier: Arc<Notifier>,
    task: tokio::task::JoinHandle<()>,
}

impl Manager {
    /// Tells the manager the server accepts connections, if `NOTIFY_SOCKET` is set, and
    /// keeps it informed (status, watchdog) until [`Manager::stopped`]. Needs the runtime.
    pub(crate) fn ready(control: &Control, start: Start<'_>) -> Option<Manager> {
        let notifier = match Notifier::from_env() {
            Ok(Some(n)) => Arc::new(n),
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET ignored: {e}");
                return None;
            }
        };
        let handle = control.handle();
        let sent = match start {
            Start::TookOver { count, pid } => {
                let plural = if count == 1 { "" } else { "s" };
                notifier.main_pid(&format!("took over {count} connection{plural} from pid {pid}"))
            }
            Start::Bound(listener) => {
                if let Err(e) = notifier.store_fds(LISTENER_NAME, &[listener.as_fd()]) {
                    tracing::warn!("cannot store the listener with the service manager: {e}");
                }
                notifier.notify(&format!("READY=1\nSTATUS={}", systemd::serving_status(&handle)))
            }
            Start::Inherited => {
                notifier.notify(&format!("READY=1\nSTATUS={}", systemd::serving_status(&handle)))
            }
        };
        if let Err(e) = sent {
            tracing::warn!("cannot tell the service manager we are ready: {e}");
        }
        if let Some(every) = systemd::watchdog_interval() {
            tracing::info!(
                target: LIFECYCLE,
                "watchdog: WATCHDOG=1 every {:.1} s",
                every.as_secs_f64() / 2.0
            );
        }
        let task = systemd::supervise(notifier.clone(), handle);
        Some(Manager { notifier, task })
    }

    /// The server stopped: `STOPPING=1` with the reason, unless a successor replaced it
    /// (the successor is the main process now; nothing more to say).
    pub(crate) fn stopped(self, stopped: &Stopped, why: &str) {
        self.task.abort();
        if matches!(stopped, Stopped::Replaced) {
            return;
        }
        if let Err(e) = self.notifier.stopping(&format!("stopped: {why}")) {
            tracing::warn!("cannot tell the service manager we stop: {e}");
        }
    }
}
