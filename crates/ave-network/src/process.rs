//! Processes: a function run in a forked child, optionally daemonized and synchronized,
//! as the original's `ave.network.process.Process`, made safe.
//!
//! A [`Process`] holds a [`Target`] (or a closure, [`Process::from_fn`]) and starts it in
//! a child with [`Process::start`]. The child runs the original's steps in its order:
//! [`Target::close_fds`], [`Target::redirect`], a `start PID=<pid>` log line,
//! [`Target::initialize`] (signal handling, parent-death signal, kernel name), the
//! synchronization message, [`Target::run`], [`Target::exit`], then `_exit`.
//!
//! Guarantees beyond the original:
//! - the child never returns into the caller's code: every step runs under
//!   `catch_unwind`, and the child always ends with `_exit`;
//! - `start(_, synchronize = true)` cannot hang: the parent closes its copy of the pipe's
//!   write end, so a child that dies early is an error (with its exit status), and the
//!   wait is bounded ([`Process::sync_timeout`]); a child that fails to initialize sends
//!   the reason;
//! - a process with other threads is not forked unless the caller opts in
//!   ([`Process::allow_threads`]): `fork` copies only the calling thread, so a lock held by
//!   another thread stays locked forever in the child;
//! - the child starts with the default action for every signal its parent caught and an
//!   empty signal mask; the parent-death signal is checked against the parent recorded
//!   before the fork, so a parent that died first cannot be missed;
//! - joins wait on a pidfd (no sleep loop), return an [`ExitStatus`] (exited or killed by
//!   a signal, the raw status at hand), and [`Process::is_alive`] does not reap, so a
//!   later join still works;
//! - a daemon gets a sane umask (022), and its pid is known even without `synchronize`.
//!
//! # Example
//!
//! Forking is only sound in a single-threaded process, so this example is not run as a test
//! (the tests fork from fixture binaries instead).
//!
//! ```no_run
//! use std::{fs::File, time::Duration};
//!
//! use ave_network::process::{Daemon, ExitStatus, Pipe, Process};
//!
//! // A child that reports back over a pipe.
//! let (mut reader, writer) = Pipe::new()?.split();
//! let mut child = Process::from_fn(move |_| {
//!     writer.put(&"ready")?;
//!     Ok(())
//! });
//! child.start(false, false)?;
//! assert_eq!(reader.get(Some(Duration::from_secs(5)))?, "ready");
//! assert_eq!(child.join(Some(Duration::from_secs(5)))?, ExitStatus::Exited(0));
//!
//! // A daemon with a pid file.
//! let log = File::create("/var/tmp/ave-example.log")?;
//! let daemon = Daemon::new("/var/tmp/ave-example.pid", log)?;
//! daemon.start_fn(|child| {
//!     child.termination().wait(None);
//!     Ok(())
//! })?;
//! daemon.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod child;
mod daemon;
pub(crate) mod fork;
pub(crate) mod log;
mod pipe;
mod settings;
mod status;

use std::{
    fmt,
    io::{self, Write},
    os::fd::{AsFd, OwnedFd},
    time::{Duration, Instant},
};

use ave_exceptions::ProcessError;
use nix::libc;
use serde_json::Value;

pub(crate) use crate::process::fork::{fork_lock, is_forked_child, running_threads};
pub use crate::process::{
    child::{ChildContext, Target, TargetError, Termination},
    daemon::{DEFAULT_STOP_TIMEOUT, Daemon},
    pipe::Pipe,
    settings::{FdSet, MAX_KERNEL_NAME},
    status::{ExitStatus, Pid, Signal},
};
pub(crate) use crate::process::{
    child::{FnTarget, wait_readable},
    settings::{Settings, kernel_name},
};
use crate::{Error, sys::process as sys};

/// The default bound on waiting for a synchronized child to report that it is initialized.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

enum State {
    Unstarted,
    Started(Started),
}

struct Started {
    pid: Pid,
    /// Names the process for good (kills and waits cannot hit a reused pid).
    pidfd: Option<OwnedFd>,
    /// Whether this process is its parent (false for a daemon).
    is_child: bool,
    /// How it ended, once reaped.
    status: Option<ExitStatus>,
}

/// A function run in a forked child: the original's `Process`.
///
/// Dropping a `Process` neither kills nor reaps its child: join it, or hand it to a
/// `Control` with [`ControlHandle::join_later`](crate::control::ControlHandle::join_later), or it
/// stays a zombie until this process ends. Targets are `Send` so that a `Process` can be
/// kept in a service's state.
///
/// ```no_run
/// use std::time::Duration;
/// use ave_network::process::{ExitStatus, Process};
///
/// let mut worker = Process::from_fn(|child| {
///     child.log("working");
///     Ok(())
/// })
/// .name("ave-worker")
/// .logging(true);
/// // Returns once the child has its signal handling and name in place.
/// let pid = worker.start(false, true)?;
/// assert_eq!(worker.join(Some(Duration::from_secs(5)))?, ExitStatus::Exited(0));
/// # let _ = pid;
/// # Ok::<(), ave_network::Error>(())
/// ```
pub struct Process {
    target: Option<Box<dyn Target>>,
    settings: Settings,
    state: State,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = match &self.state {
            State::Unstarted => None,
            State::Started(s) => Some(s.pid),
        };
        f.debug_struct("Process")
            .field("name", &self.settings.name)
            .field("pid", &pid)
            .finish_non_exhaustive()
    }
}

impl Process {
    /// A process that runs `target`. Its default name is `ave-<type name>`, as the
    /// original's `ave-<ClassName>`.
    pub fn new<T: Target + 'static>(target: T) -> Process {
        let type_name = std::any::type_name::<T>();
        let short = type_name.rsplit("::").next().unwrap_or(type_name);
        let short = short.split('<').next().unwrap_or(short);
        Process::with_target(Box::new(target), format!("ave-{short}"))
    }

    /// A process that runs a closure (default name `ave-Process`).
    pub fn from_fn<F>(f: F) -> Process
    where
        F: FnOnce(&mut ChildContext) -> Result<(), TargetError> + Send + 'static,
    {
        Process::with_target(Box::new(FnTarget(Some(f))), "ave-Process".to_owned())
    }

    fn with_target(target: Box<dyn Target>, name: String) -> Process {
        Process {
            target: Some(target),
            settings: Settings {
                name,
                logging: false,
                death_signal: Some(Signal::TERM),
                keep: FdSet::new(),
                sync_timeout: DEFAULT_SYNC_TIMEOUT,
                allow_threads: false,
            },
            state: State::Unstarted,
        }
    }

    /// The process name: the kernel name of the child (cut to 15 bytes, which is logged as
    /// a warning), and the name in log lines and hickup files (in full).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Process {
        let name = name.into();
        let kernel = kernel_name(&name);
        if kernel.len() < name.len() {
            tracing::warn!(
                name = %name,
                kernel = %kernel,
                "a process name is longer than {MAX_KERNEL_NAME} bytes: the kernel shows it cut"
            );
        }
        self.settings.name = name;
        self
    }

    /// Writes the original's log lines (`<ctime> <name> <pid> -- <message>`) to stderr
    /// (default: off).
    #[must_use]
    pub fn logging(mut self, on: bool) -> Process {
        self.settings.logging = on;
        self
    }

    /// The signal the child gets when its parent dies (default SIGTERM; `None`: none),
    /// set by the default initialization.
    #[must_use]
    pub fn death_signal(mut self, signal: Option<Signal>) -> Process {
        self.settings.death_signal = signal;
        self
    }

    /// Keeps a descriptor open in the child (the default `close_fds` closes all others
    /// but 0, 1 and 2). The value that owns it must live on in the child, typically
    /// captured by the target.
    #[must_use]
    pub fn keep_fd(mut self, fd: impl AsFd) -> Process {
        self.settings.keep.insert(fd);
        self
    }

    /// Keeps every descriptor of `fds` open in the child (see [`Process::keep_fd`]).
    #[must_use]
    pub fn keep_fds(mut self, fds: &FdSet) -> Process {
        self.settings.keep.extend(fds);
        self
    }

    /// How long `start` waits for a synchronized child (default 30 s).
    #[must_use]
    pub fn sync_timeout(mut self, timeout: Duration) -> Process {
        self.settings.sync_timeout = timeout;
        self
    }

    /// Forks even if this process runs other threads (default: refuse, with an error).
    ///
    /// `fork` copies only the calling thread. A lock another thread holds at that moment
    /// (the allocator's, stdout's, a runtime's) stays locked forever in the child, which
    /// then hangs when it takes it. Opt in only when the other threads are known to hold
    /// no lock the child may take, e.g. they are parked. Threads this crate parks itself
    /// (a child's signal thread) are not counted.
    #[must_use]
    pub fn allow_threads(mut self, allow: bool) -> Process {
        self.settings.allow_threads = allow;
        self
    }

    /// The process name.
    pub fn proc_name(&self) -> &str {
        &self.settings.name
    }

    /// Starts the child. With `daemonize`, a double fork: the child is re-parented to
    /// init (or the nearest subreaper) in a new session, with `/` as its directory and
    /// umask 022; the intermediate child is reaped here. With `synchronize`, returns only
    /// once the child has run its `initialize` step. Returns the child's pid.
    ///
    /// Must be called when this process runs no other thread (see
    /// [`Process::allow_threads`]): before a multi-threaded runtime is built, or from a
    /// current-thread runtime. A child started from inside a runtime runs its steps on a
    /// new thread of its own, since the runtime it inherits is not usable.
    ///
    /// # Errors
    ///
    /// - [`Error::AlreadyStarted`] if it was started before;
    /// - [`Error::BadArgument`] for a name with a NUL byte;
    /// - [`Error::Threaded`] if other threads run (and [`Process::allow_threads`] was
    ///   not given);
    /// - [`Error::Io`]: the pipe or the fork failed;
    /// - [`Error::Start`]: a synchronized child ended, failed or timed out before
    ///   reporting that it was initialized (a daemon: also the second fork failed). The
    ///   pid is still known then, so the child can be joined or killed.
    pub fn start(&mut self, daemonize: bool, synchronize: bool) -> Result<Pid, Error> {
        if self.target.is_none() || !matches!(self.state, State::Unstarted) {
            return Err(Error::AlreadyStarted { name: self.settings.name.clone() });
        }
        if self.settings.name.contains('\0') {
            return Err(Error::BadArgument {
                what: "process name",
                value: self.settings.name.clone(),
                expected: "a name without a NUL byte",
            });
        }
        let mut pipe = if daemonize || synchronize { Some(Pipe::new()?) } else { None };
        // What the child would flush at its end must not be printed twice.
        let _ = io::stdout().flush();
        let parent = Pid::this();
        let guard = fork_lock();
        let others = if self.settings.allow_threads {
            Vec::new()
        } else {
            running_threads(&guard)
                .map_err(|e| Error::io("count the threads of this process", e))?
        };
        if !others.is_empty() {
            return Err(Error::Threaded {
                name: self.settings.name.clone(),
                threads: others.len(),
            });
        }
        let forked =
            sys::fork().map_err(|e| Error::io(if daemonize { "fork #1" } else { "fork" }, e))?;
        let pid = match forked {
            sys::Forked::Child => child::enter(
                guard,
                self.target.take(),
                &self.settings,
                pipe.take(),
                daemonize,
                synchronize,
                parent,
            ),
            sys::Forked::Parent(pid) => {
                drop(guard);
                Pid(pid)
            }
        };
        // The child has its own copy of the target; the parent's is dropped, which
        // closes what it owns (e.g. a Control's listening socket).
        self.target = None;
        if let Some(pipe) = &mut pipe {
            pipe.close_writer();
        }
        if daemonize {
            self.start_daemon(pid, pipe.expect("a pipe for a daemon"), synchronize)
        } else {
            self.state = State::Started(Started {
                pid,
                pidfd: sys::pidfd_open(pid.0).ok(),
                is_child: true,
                status: None,
            });
            if let Some(pipe) = pipe {
                self.synchronize(pipe, pid, "child process")?;
            }
            Ok(pid)
        }
    }

    fn start_daemon(
        &mut self,
        intermediate: Pid,
        mut pipe: Pipe,
        synchronize: bool,
    ) -> Result<Pid, Error> {
        let timeout = self.settings.sync_timeout;
        let first = pipe.get(Some(timeout));
        let reaped = match &first {
            Err(e) if e.is_timeout() => None,
            _ => sys::waitpid(intermediate.0, false).ok().flatten().and_then(ExitStatus::from_raw),
        };
        let status = reaped.map_or_else(String::new, |s| format!(" ({s})"));
        let pid = match first {
            Ok(value) => match value_pid(&value) {
                Some(pid) => pid,
                None => {
                    let why = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                    return Err(Error::Start(format!("cannot daemonize: {why}{status}")));
                }
            },
            Err(e) if e.is_closed() => {
                return Err(Error::Start(format!(
                    "cannot daemonize: the intermediate child {intermediate} ended without \
                     reporting the daemon's pid{status}"
                )));
            }
            Err(e) if e.is_timeout() => {
                return Err(Error::Start(format!(
                    "cannot daemonize: the intermediate child {intermediate} did not report \
                     the daemon's pid within {timeout:?}"
                )));
            }
            Err(e) => return Err(e),
        };
        self.state = State::Started(Started {
            pid,
            pidfd: sys::pidfd_open(pid.0).ok(),
            is_child: false,
            status: None,
        });
        if synchronize {
            self.synchronize(pipe, pid, "daemon")?;
        }
        Ok(pid)
    }

    /// Waits for the child's "initialized" message: its pid as a JSON number, or the
    /// reason it failed as a string.
    fn synchronize(&mut self, mut pipe: Pipe, pid: Pid, what: &str) -> Result<(), Error> {
        let timeout = self.settings.sync_timeout;
        match pipe.get(Some(timeout)) {
            Ok(value) if value_pid(&value) == Some(pid) => Ok(()),
            Ok(Value::String(failure)) => Err(Error::Start(format!(
                "the {what} {pid} failed to initialize: {failure}{}",
                self.status_within(Duration::from_secs(1))
            ))),
            Ok(other) => Err(Error::Start(format!(
                "the {what} {pid} sent an unexpected synchronization message: {other}"
            ))),
            Err(e) if e.is_closed() => Err(Error::Start(format!(
                "the {what} {pid} ended before it was initialized{}",
                self.status_within(Duration::from_secs(1))
            ))),
            Err(e) if e.is_timeout() => Err(Error::Start(format!(
                "the {what} {pid} did not report that it was initialized within {timeout:?}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// ` (exited 1)` once a child that is ending has ended, for error messages.
    fn status_within(&mut self, within: Duration) -> String {
        match self.join(Some(within)) {
            Ok(status) => format!(" ({status})"),
            Err(_) => String::new(),
        }
    }

    fn started(&self) -> Result<&Started, Error> {
        match &self.state {
            State::Started(s) => Ok(s),
            State::Unstarted => {
                Err(ProcessError::Unstarted("process PID is not known".into()).into())
            }
        }
    }

    /// The child's pid.
    ///
    /// # Errors
    ///
    /// [`Error::Process`] (`Unstarted`, `process PID is not known`) before a start.
    pub fn pid(&self) -> Result<Pid, Error> {
        Ok(self.started()?.pid)
    }

    /// How the child ended, once joined.
    pub fn status(&self) -> Option<ExitStatus> {
        match &self.state {
            State::Started(s) => s.status,
            State::Unstarted => None,
        }
    }

    /// Waits for the child to end and reaps it; `None` waits as long as it takes. A
    /// process already joined returns the same status again.
    ///
    /// # Errors
    ///
    /// - [`Error::Process`]: `Unstarted` (`cannot join unstarted process`), `Unwaitable`
    ///   (`target process is not a child`: a daemon, or a process reaped elsewhere),
    ///   `Unknown` (`cannot join unknown process`);
    /// - [`Error::Timeout`] (`timed out`) if it is still running after `timeout`.
    pub fn join(&mut self, timeout: Option<Duration>) -> Result<ExitStatus, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(status) = self.join_nohang()? {
                self.log(format!("join by PID={}", Pid::this()));
                return Ok(status);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(Error::Timeout("timed out".to_owned()));
            }
            let started = self.started()?;
            match &started.pidfd {
                Some(pidfd) => {
                    wait_readable(pidfd, left);
                }
                // Without pidfds (Linux before 5.3), poll.
                None => std::thread::sleep(
                    left.map_or(Duration::from_millis(10), |l| l.min(Duration::from_millis(10))),
                ),
            }
        }
    }

    /// Reaps the child if it has ended: its status, or `None` while it runs.
    ///
    /// # Errors
    ///
    /// As [`Process::join`], without the timeout.
    pub fn join_nohang(&mut self) -> Result<Option<ExitStatus>, Error> {
        let State::Started(started) = &mut self.state else {
            return Err(ProcessError::Unstarted("cannot join unstarted process".into()).into());
        };
        if let Some(status) = started.status {
            return Ok(Some(status));
        }
        if !started.is_child {
            return Err(not_a_child());
        }
        match sys::waitpid(started.pid.0, true) {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => match ExitStatus::from_raw(raw) {
                Some(status) => {
                    started.status = Some(status);
                    started.pidfd = None;
                    Ok(Some(status))
                }
                None => Ok(None),
            },
            Err(e) => Err(wait_error(e)),
        }
    }

    /// Whether the child is still running, without reaping it: a later `join` still
    /// returns its status.
    ///
    /// # Errors
    ///
    /// [`Error::Process`]: `Unstarted`, `Unwaitable` (not our child, e.g. a daemon),
    /// `Unknown`.
    pub fn is_alive(&self) -> Result<bool, Error> {
        let started = match &self.state {
            State::Started(s) => s,
            State::Unstarted => {
                return Err(ProcessError::Unstarted("cannot join unstarted process".into()).into());
            }
        };
        if started.status.is_some() {
            return Ok(false);
        }
        if !started.is_child {
            return Err(not_a_child());
        }
        sys::has_terminated(started.pid.0).map(|ended| !ended).map_err(wait_error)
    }

    /// Asks the child to end: logs `terminate by PID=<caller>` and sends SIGTERM.
    ///
    /// # Errors
    ///
    /// As [`Process::kill`].
    pub fn terminate(&self) -> Result<(), Error> {
        self.log(format!("terminate by PID={}", Pid::this()));
        self.kill(Signal::TERM)
    }

    /// Sends a signal to the child (through its pidfd, so never to a reused pid). A child
    /// that is already gone is logged and ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Process`] (`Unstarted`, `cannot terminate unstarted process`) before a
    /// start; [`Error::Io`] if the signal cannot be sent.
    pub fn kill(&self, signal: Signal) -> Result<(), Error> {
        let started = match &self.state {
            State::Started(s) => s,
            State::Unstarted => {
                return Err(
                    ProcessError::Unstarted("cannot terminate unstarted process".into()).into()
                );
            }
        };
        let sent = match (&started.pidfd, started.status) {
            (_, Some(_)) => Err(io::Error::from_raw_os_error(libc::ESRCH)),
            (Some(pidfd), None) => sys::pidfd_send_signal(pidfd.as_fd(), signal.0),
            (None, None) => sys::kill(started.pid.0, signal.0),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                self.log(format!("no process to kill with PID={}\n", started.pid));
                Ok(())
            }
            Err(e) => Err(Error::io(format!("send signal {signal} to {}", started.pid), e)),
        }
    }

    /// Writes a log line in the original's format (`<ctime> <name> <pid> -- <message>`)
    /// to stderr, if logging is on.
    pub fn log(&self, message: impl fmt::Display) {
        if self.settings.logging {
            let _ = io::stderr().write_all(log::log_line(&self.settings.name, &message).as_bytes());
        }
    }

    /// The pid and a pidfd of a started child, for a deferred join.
    pub(crate) fn deferrable(&self) -> Result<(Pid, OwnedFd), Error> {
        let started = match &self.state {
            State::Started(s) => s,
            State::Unstarted => {
                return Err(ProcessError::Unstarted("cannot join unstarted process".into()).into());
            }
        };
        if !started.is_child || started.status.is_some() {
            return Err(not_a_child());
        }
        let pidfd = match &started.pidfd {
            Some(fd) => fd.try_clone().map_err(|e| Error::io("duplicate a pidfd", e))?,
            None => sys::pidfd_open(started.pid.0).map_err(wait_error)?,
        };
        Ok((started.pid, pidfd))
    }
}

fn value_pid(value: &Value) -> Option<Pid> {
    value.as_i64().and_then(|n| i32::try_from(n).ok()).and_then(Pid::from_raw)
}

pub(crate) fn not_a_child() -> Error {
    ProcessError::Unwaitable("target process is not a child".into()).into()
}

/// The original's errors for a failed wait.
pub(crate) fn wait_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ECHILD) => not_a_child(),
        Some(libc::ESRCH) => ProcessError::Unknown("cannot join unknown process".into()).into(),
        _ => Error::io("wait for a child", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_cut_at_15_bytes_on_a_character() {
        assert_eq!(kernel_name("ave-broker"), "ave-broker");
        assert_eq!(kernel_name("ave-broker-session"), "ave-broker-sess");
        // 14 ASCII bytes and a 2-byte character: the character does not fit.
        assert_eq!(kernel_name("ave-0123456789é"), "ave-0123456789");
    }

    #[test]
    fn default_names_follow_the_type() {
        struct Sleeper;
        impl Target for Sleeper {
            fn run(&mut self, _: &mut ChildContext) -> Result<(), TargetError> {
                Ok(())
            }
        }
        assert_eq!(Process::new(Sleeper).proc_name(), "ave-Sleeper");
        assert_eq!(Process::from_fn(|_| Ok(())).proc_name(), "ave-Process");
        assert_eq!(Process::from_fn(|_| Ok(())).name("x").proc_name(), "x");
    }
}
