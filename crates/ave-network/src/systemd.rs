//! Running under systemd (or any service manager that speaks its protocols): readiness
//! and status notifications, the watchdog, socket activation and the descriptor store.
//!
//! - [`Notifier`] sends `sd_notify` datagrams to the socket named by `NOTIFY_SOCKET`:
//!   [`Notifier::ready`] (`READY=1`), [`Notifier::status`] (`STATUS=`), [`Notifier::stopping`]
//!   (`STOPPING=1`), [`Notifier::watchdog`] (`WATCHDOG=1`), [`Notifier::main_pid`]
//!   (`MAINPID=`, for a successor that took over), and [`Notifier::store_fds`]
//!   (`FDSTORE=1` with the descriptors, which the manager hands back on the next start).
//! - [`watchdog_interval`] reads `WATCHDOG_USEC` (and `WATCHDOG_PID`); send `WATCHDOG=1` at
//!   least every half of it ([`supervise`] does).
//! - [`listen_fds`] takes the descriptors passed through `LISTEN_FDS`, `LISTEN_PID` and
//!   `LISTEN_FDNAMES` (socket activation, or descriptors given back from the store);
//!   [`inherited_listener`] picks the listening TCP socket among them, for
//!   [`ControlBuilder::listener`](crate::control::ControlBuilder::listener).
//! - [`supervise`] keeps a `STATUS=` line current (`serving N connections on ADDR`) and
//!   sends `WATCHDOG=1` while a [`Control`] runs.
//! - [`run_notified`] does all of it for one `Control`: `FDSTORE=1` of a listener it bound
//!   itself, `READY=1`, the status and watchdog task, and `STOPPING=1` when it stops.
//!
//! Nothing here needs systemd to be present: without the variables every function does
//! nothing (or returns `None`), so a service can call them unconditionally.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use ave_network::{Control, Service, systemd};
//!
//! # async fn example() -> Result<(), ave_network::Error> {
//! // Before the runtime starts, so the LISTEN_* variables can be unset for children.
//! let mut builder = Control::builder(Service::builder("example").build());
//! builder = match systemd::inherited_listener()? {
//!     Some(inherited) => builder.listener(inherited.listener),
//!     None => builder.bind("127.0.0.1:4000".parse().unwrap()),
//! };
//! let control = builder.build()?;
//! let notifier = systemd::Notifier::from_env()?.map(Arc::new);
//! if let Some(notifier) = &notifier {
//!     notifier.ready()?;
//! }
//! let supervisor = notifier.map(|n| systemd::supervise(n, control.handle()));
//! control.run().await?;
//! # drop(supervisor);
//! # Ok(()) }
//! ```

use std::{
    ffi::OsStr,
    io,
    net::TcpListener,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    sync::Arc,
    time::Duration,
};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, sendmsg, socket,
};

use crate::{
    Error,
    control::{Control, ControlHandle, Stopped},
    sys::systemd as sys,
};

/// The variables of socket activation, unset once the descriptors are taken.
const LISTEN_VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// A connection to the service manager's notification socket (`NOTIFY_SOCKET`).
#[derive(Debug)]
pub struct Notifier {
    socket: OwnedFd,
    addr: UnixAddr,
}

impl Notifier {
    /// The notifier of `NOTIFY_SOCKET`, or `None` when the variable is unset or empty (not
    /// running under a service manager that wants notifications).
    ///
    /// The variable stays set: a `--replace` successor started from this process needs it.
    ///
    /// # Errors
    ///
    /// [`Error::BadEnvironment`] if the variable names no usable address; [`Error::Io`] if the
    /// datagram socket cannot be made.
    pub fn from_env() -> Result<Option<Notifier>, Error> {
        match std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(path) => Notifier::connect(&path).map(Some),
        }
    }

    /// A notifier for the datagram socket at `path`: a file system path, or an abstract
    /// name written with a leading `@`.
    ///
    /// # Errors
    ///
    /// [`Error::BadEnvironment`] (for `NOTIFY_SOCKET`) if `path` is neither; [`Error::Io`] if the socket cannot be made.
    pub fn connect(path: impl AsRef<OsStr>) -> Result<Notifier, Error> {
        let bytes = path.as_ref().as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => UnixAddr::new_abstract(&bytes[1..]),
            Some(b'/') => UnixAddr::new(path.as_ref()),
            _ => {
                return Err(bad_notify_socket(
                    path.as_ref(),
                    "neither a path nor an abstract name",
                    None,
                ));
            }
        }
        .map_err(|e| bad_notify_socket(path.as_ref(), "not a socket address", Some(e.into())))?;
        let socket = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| Error::io("make the notification socket", e.into()))?;
        Ok(Notifier { socket, addr })
    }

    /// Sends one datagram of newline-separated `KEY=VALUE` assignments.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the manager's socket cannot be reached.
    pub fn notify(&self, state: &str) -> Result<(), Error> {
        self.notify_with_fds(state, &[])
    }

    /// Sends one datagram with descriptors attached (`SCM_RIGHTS`), as `FDSTORE=1` needs.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the manager's socket cannot be reached.
    pub fn notify_with_fds(&self, state: &str, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        let raw: Vec<_> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let iov = [io::IoSlice::new(state.as_bytes())];
        loop {
            match sendmsg(
                self.socket.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                Some(&self.addr),
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io(format!("notify {state:?}"), e.into())),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// `READY=1`: start-up is finished, connections are accepted.
    ///
    /// # Errors
    ///
    /// As [`Notifier::notify`].
    pub fn ready(&self) -> Result<(), Error> {
        self.notify("READY=1")
    }

    /// `STATUS=<text>`: one line a person reads in `systemctl status` (newlines become
    /// spaces).
    ///
    /// # Errors
    ///
    /// As [`Notifier::notify`].
    pub fn status(&self, text: &str) -> Result<(), Error> {
        self.notify(&format!("STATUS={}", text.replace('\n', " ")))
    }

    /// `STOPPING=1` with a last status line: the service is shutting down.
    ///
    /// # Errors
    ///
    /// As [`Notifier::notify`].
    pub fn stopping(&self, status: &str) -> Result<(), Error> {
        self.notify(&format!("STOPPING=1\nSTATUS={}", status.replace('\n', " ")))
    }

    /// `WATCHDOG=1`: the service is alive.
    ///
    /// # Errors
    ///
    /// As [`Notifier::notify`].
    pub fn watchdog(&self) -> Result<(), Error> {
        self.notify("WATCHDOG=1")
    }

    /// `MAINPID=<this process>` and `READY=1` with a status line: sent by a successor that
    /// took over, so the manager follows the new process (the unit needs
    /// `NotifyAccess=all`, since the successor is not yet its main process).
    ///
    /// # Errors
    ///
    /// As [`Notifier::notify`].
    pub fn main_pid(&self, status: &str) -> Result<(), Error> {
        self.notify(&format!(
            "MAINPID={}\nREADY=1\nSTATUS={}",
            std::process::id(),
            status.replace('\n', " ")
        ))
    }

    /// `FDSTORE=1` + `FDNAME=<name>`: the manager keeps the descriptors (if the unit has
    /// `FileDescriptorStoreMax=`) and passes them back through `LISTEN_FDS` when the
    /// service starts again, after a crash or a restart.
    ///
    /// # Errors
    ///
    /// [`Error::BadArgument`] for a name systemd does not accept (empty, longer than 255
    /// bytes, with `:` or control characters); otherwise as [`Notifier::notify`].
    pub fn store_fds(&self, name: &str, fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        if name.is_empty() || name.len() > 255 || name.chars().any(|c| c == ':' || c.is_control()) {
            return Err(Error::BadArgument {
                what: "FDNAME",
                value: name.to_owned(),
                expected: "1 to 255 bytes without ':' or control characters",
            });
        }
        self.notify_with_fds(&format!("FDSTORE=1\nFDNAME={name}"), fds)
    }
}

/// The error for a `NOTIFY_SOCKET` value that names no datagram socket.
fn bad_notify_socket(value: &OsStr, reason: &'static str, source: Option<io::Error>) -> Error {
    Error::BadEnvironment {
        name: "NOTIFY_SOCKET",
        value: value.to_string_lossy().into_owned(),
        reason,
        source,
    }
}

/// The watchdog interval the manager expects (`WATCHDOG_USEC`), if it is on for this
/// process (`WATCHDOG_PID` unset or equal to our pid). Send `WATCHDOG=1` at least every
/// half of it.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.trim().parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => (usec > 0).then(|| Duration::from_micros(usec)),
    }
}

/// A descriptor passed by the service manager, with its name (`LISTEN_FDNAMES`, or the
/// `FDNAME=` it was stored under).
#[derive(Debug)]
pub struct InheritedFd {
    /// The descriptor, close-on-exec.
    pub fd: OwnedFd,
    /// Its name, if the manager gave one.
    pub name: Option<String>,
}

/// Takes the descriptors passed to this process through `LISTEN_FDS` (from descriptor 3
/// on), if `LISTEN_PID` names this process; an empty list otherwise. Each is made
/// close-on-exec. The variables are unset when the process is still single-threaded (call
/// this before starting a runtime), so children do not see them.
///
/// The descriptors can be taken once per process; later calls return an empty list.
///
/// # Errors
///
/// [`Error::BadEnvironment`] if `LISTEN_FDS` or `LISTEN_PID` is malformed; [`Error::Io`] if a
/// descriptor it announces is not open.
pub fn listen_fds() -> Result<Vec<InheritedFd>, Error> {
    let Some(pid) = std::env::var_os("LISTEN_PID") else {
        return Ok(Vec::new());
    };
    let pid: u32 =
        pid.to_str().and_then(|p| p.trim().parse().ok()).ok_or_else(|| Error::BadEnvironment {
            name: "LISTEN_PID",
            value: pid.to_string_lossy().into_owned(),
            reason: "not a pid",
            source: None,
        })?;
    if pid != std::process::id() {
        // Meant for another process (we inherited the environment of our parent).
        return Ok(Vec::new());
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    let count: usize = count.trim().parse().map_err(|_| Error::BadEnvironment {
        name: "LISTEN_FDS",
        value: count.clone(),
        reason: "not a number",
        source: None,
    })?;
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let fds = match sys::take_inherited(count) {
        None => return Ok(Vec::new()),
        Some(result) => result.map_err(|e| Error::io("take the LISTEN_FDS descriptors", e))?,
    };
    if !sys::unset_env(&LISTEN_VARS) {
        tracing::debug!("LISTEN_FDS left in the environment: the process has threads");
    }
    Ok(fds
        .into_iter()
        .enumerate()
        .map(|(i, fd)| InheritedFd { fd, name: names.get(i).filter(|n| !n.is_empty()).cloned() })
        .collect())
}

/// A listening TCP socket passed by the service manager.
#[derive(Debug)]
pub struct InheritedListener {
    /// The listener, ready for [`ControlBuilder::listener`](crate::control::ControlBuilder::listener).
    pub listener: TcpListener,
    /// Its name (`LISTEN_FDNAMES`), if any.
    pub name: Option<String>,
    /// How many other descriptors were passed (and closed, unused).
    pub ignored: usize,
}

/// The first listening TCP socket among the descriptors of [`listen_fds`], if any; the
/// other descriptors are closed.
///
/// # Errors
///
/// As [`listen_fds`].
pub fn inherited_listener() -> Result<Option<InheritedListener>, Error> {
    let mut fds = listen_fds()?;
    let Some(at) =
        fds.iter().position(|f| sys::is_listening_stream(f.fd.as_fd()) && is_inet(&f.fd))
    else {
        if !fds.is_empty() {
            tracing::warn!(count = fds.len(), "no listening TCP socket among LISTEN_FDS");
        }
        return Ok(None);
    };
    let chosen = fds.remove(at);
    Ok(Some(InheritedListener {
        listener: TcpListener::from(chosen.fd),
        name: chosen.name,
        ignored: fds.len(),
    }))
}

fn is_inet(fd: &OwnedFd) -> bool {
    use nix::sys::socket::{SockaddrLike as _, SockaddrStorage, getsockname};
    getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .is_ok_and(|a| matches!(a.family(), Some(AddressFamily::Inet | AddressFamily::Inet6)))
}

/// The text of the `STATUS=` line [`supervise`] keeps current.
pub fn serving_status(handle: &ControlHandle) -> String {
    let count = handle.connections().len();
    let plural = if count == 1 { "" } else { "s" };
    match handle.local_addr() {
        Some(addr) => format!("serving {count} connection{plural} on {addr}"),
        None => format!("serving {count} connection{plural}"),
    }
}

/// A task that keeps the manager informed while a `Control` runs: `STATUS=` whenever the
/// [`serving_status`] line changes (checked every second) and `WATCHDOG=1` every half of
/// [`watchdog_interval`]. Ends when the control shuts down; abort it to end it earlier.
/// Needs a tokio runtime.
pub fn supervise(notifier: Arc<Notifier>, handle: ControlHandle) -> tokio::task::JoinHandle<()> {
    let watchdog = watchdog_interval().map(|d| d / 2);
    let status_every = Duration::from_secs(1);
    let tick = watchdog.map_or(status_every, |w| w.min(status_every));
    tokio::spawn(async move {
        let mut last_status = String::new();
        let mut last_ping = tokio::time::Instant::now();
        let mut interval = tokio::time::interval(tick);
        loop {
            interval.tick().await;
            if handle.is_shutting_down() {
                return;
            }
            if let Some(every) = watchdog {
                if last_ping.elapsed() + tick / 2 >= every || last_ping.elapsed() == Duration::ZERO
                {
                    if let Err(e) = notifier.watchdog() {
                        tracing::warn!(error = %e, "cannot send WATCHDOG=1");
                    }
                    last_ping = tokio::time::Instant::now();
                }
            }
            let status = serving_status(&handle);
            if status != last_status {
                if let Err(e) = notifier.status(&status) {
                    tracing::warn!(error = %e, "cannot send STATUS=");
                }
                last_status = status;
            }
        }
    })
}

/// Runs `control` to its end, keeping the service manager informed through `notifier`:
/// stores the listener with `FDSTORE=1` (`FDNAME=<store_name>`) unless `store_name` is
/// `None` (pass `None` for a listener from [`inherited_listener`], which the manager already
/// holds), sends `READY=1` with the first status line, runs [`supervise`] meanwhile, and
/// sends `STOPPING=1` with the reason when the control stops (nothing after
/// [`Stopped::Replaced`]: the successor speaks for the unit). Without a notifier it only
/// runs the control. Notification failures are logged, never fatal.
///
/// # Errors
///
/// As [`Control::run`].
pub async fn run_notified(
    control: Control,
    notifier: Option<Arc<Notifier>>,
    store_name: Option<&str>,
) -> Result<Stopped, Error> {
    let Some(notifier) = notifier else {
        return control.run().await;
    };
    if let (Some(name), Some(fd)) = (store_name, control.listener_fd()) {
        if let Err(e) = notifier.store_fds(name, &[fd]) {
            tracing::warn!(error = %e, "cannot store the listener with the service manager");
        }
    }
    let handle = control.handle();
    if let Err(e) = notifier.notify(&format!("READY=1\nSTATUS={}", serving_status(&handle))) {
        tracing::warn!(error = %e, "cannot send READY=1");
    }
    let task = supervise(notifier.clone(), handle);
    let stopped = control.run().await;
    task.abort();
    let why = match &stopped {
        Ok(Stopped::Replaced) => return stopped,
        Ok(Stopped::Stop) => "stop() was called".to_owned(),
        Ok(Stopped::Signal(n)) => format!("signal {n}"),
        Ok(Stopped::Exit(_)) => "a call raised Exit".to_owned(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("error: {e}"),
    };
    if let Err(e) = notifier.stopping(&format!("stopped: {why}")) {
        tracing::warn!(error = %e, "cannot send STOPPING=1");
    }
    stopped
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use ave_test_support::TempDir;

    use super::*;

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = TempDir::new("notify");
        let path = dir.join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::connect(&path).unwrap();
        notifier.ready().unwrap();
        notifier.status("serving 2 connections\non x").unwrap();
        notifier.stopping("stopped: SIGTERM").unwrap();
        notifier.main_pid("took over").unwrap();
        let mut buf = [0u8; 256];
        let mut next = || {
            let n = manager.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        assert_eq!(next(), "READY=1");
        assert_eq!(next(), "STATUS=serving 2 connections on x");
        assert_eq!(next(), "STOPPING=1\nSTATUS=stopped: SIGTERM");
        assert_eq!(next(), format!("MAINPID={}\nREADY=1\nSTATUS=took over", std::process::id()));
    }

    #[test]
    fn datagrams_reach_an_abstract_socket() {
        let name = format!("ave-notify-test-{}", std::process::id());
        let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::connect(format!("@{name}")).unwrap().watchdog().unwrap();
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn bad_addresses_and_names_are_refused() {
        let err = Notifier::connect("relative/path").unwrap_err();
        assert!(
            matches!(&err, Error::BadEnvironment { name: "NOTIFY_SOCKET", value, source: None, .. }
                if value == "relative/path"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "NOTIFY_SOCKET \"relative/path\": neither a path nor an abstract name"
        );
        assert!(matches!(Notifier::connect(""), Err(Error::BadEnvironment { .. })));
        // A path too long for a socket address: the system's reason is the source.
        let long = format!("/{}", "n".repeat(200));
        let err = Notifier::connect(&long).unwrap_err();
        assert!(matches!(&err, Error::BadEnvironment { source: Some(_), .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
        // Nobody listens there: the send fails, with what was sent.
        let notifier = Notifier::connect("@ave-nobody-listens-here").unwrap();
        let error = notifier.ready().unwrap_err();
        assert!(error.to_string().contains("READY=1"), "{error}");
        let fd = std::fs::File::open("/dev/null").unwrap();
        for bad in ["", "a:b", "new\nline"] {
            assert!(
                matches!(notifier.store_fds(bad, &[fd.as_fd()]),
                    Err(Error::BadArgument { what: "FDNAME", value, .. }) if value == bad),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stored_descriptors_travel_with_the_datagram() {
        use std::io::{Read as _, Write as _};
        let dir = TempDir::new("fdstore");
        let path = dir.join("notify");
        // The manager's end: a datagram socket, read with fdtx's recvmsg.
        let manager = crate::fdtx::FdTx::from_stream(std::os::unix::net::UnixStream::from(
            OwnedFd::from(UnixDatagram::bind(&path).unwrap()),
        ));
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        Notifier::connect(&path).unwrap().store_fds("listener", &[b.as_fd()]).unwrap();
        drop(b);
        let received = manager.get(256, 4).unwrap();
        assert_eq!(received.bytes, b"FDSTORE=1\nFDNAME=listener");
        let [fd]: [OwnedFd; 1] = received.fds.try_into().unwrap();
        std::os::unix::net::UnixStream::from(fd).write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
    }

    // The manager's reads block: the control runs on another worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_notified_stores_readies_and_stops() {
        let dir = TempDir::new("run-notified");
        let path = dir.join("notify");
        let manager = crate::fdtx::FdTx::from_stream(std::os::unix::net::UnixStream::from(
            OwnedFd::from(UnixDatagram::bind(&path).unwrap()),
        ));
        manager.set_timeout(Some(Duration::from_secs(20))).unwrap();
        let control = Control::builder(crate::control::Service::builder("t").build())
            .bind("127.0.0.1:0".parse().unwrap())
            .build()
            .unwrap();
        let (addr, handle) = (control.local_addr().unwrap(), control.handle());
        let notifier = Arc::new(Notifier::connect(&path).unwrap());
        let run = tokio::spawn(run_notified(control, Some(notifier), Some("listener")));
        let stored = manager.get(256, 4).unwrap();
        assert_eq!(stored.bytes, b"FDSTORE=1\nFDNAME=listener");
        let [fd]: [OwnedFd; 1] = stored.fds.try_into().unwrap();
        // The stored descriptor is the listener itself.
        assert_eq!(TcpListener::from(fd).local_addr().unwrap(), addr);
        let ready = manager.get(256, 0).unwrap();
        assert_eq!(
            String::from_utf8(ready.bytes).unwrap(),
            format!("READY=1\nSTATUS=serving 0 connections on {addr}")
        );
        handle.stop();
        assert_eq!(run.await.unwrap().unwrap(), Stopped::Stop);
        let mut last = String::new();
        while !last.starts_with("STOPPING=1") {
            last = String::from_utf8(manager.get(256, 0).unwrap().bytes).unwrap();
        }
        assert_eq!(last, "STOPPING=1\nSTATUS=stopped: stop() was called");
    }

    #[test]
    fn the_watchdog_is_ours_only_when_the_pid_matches() {
        // The variables are read from the environment this test process was given, which
        // has none of them (nextest runs each test in its own process).
        if std::env::var_os("WATCHDOG_USEC").is_none() {
            assert_eq!(watchdog_interval(), None);
        }
        if std::env::var_os("LISTEN_PID").is_none() {
            assert!(listen_fds().unwrap().is_empty());
        }
    }
}
