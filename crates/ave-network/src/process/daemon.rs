//! `Daemon`: a daemonized [`Process`] with a pid file, as the original's
//! `ave.network.daemon.Daemon`, without its infinite loops and races.
//!
//! - [`Daemon::start`] refuses when the pid file names a live process, starts the target
//!   daemonized and synchronized, and returns its pid. The daemon writes the pid file
//!   itself (atomically, mode 0644) before it reports that it is initialized, so the file
//!   names it before `start` returns and cannot be written after the daemon already ended.
//! - [`Daemon::restart`] starts a new daemon while the old one keeps running; the pid file
//!   then names the new one.
//! - [`Daemon::stop`] sends SIGTERM, waits a bounded time (on a pidfd, no polling), then
//!   SIGKILL, and removes the pid file.
//! - When the daemon ends by itself, it removes the pid file only if the file still holds
//!   its own pid (an overlapping restart keeps it).
//! - stdin, stdout and stderr are `/dev/null` unless given; log lines go to the log file.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    Error,
    process::{ChildContext, FdSet, Pid, Process, Signal, Target, TargetError},
    process::{kernel_name, wait_readable},
    sys::process as sys,
};

/// The default bound on [`Daemon::stop`]'s wait after SIGTERM, before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A daemon with a pid file.
///
/// ```no_run
/// use std::fs::File;
/// use ave_network::process::Daemon;
///
/// let log = File::options().create(true).append(true).open("/var/tmp/ave-example.log")?;
/// let daemon = Daemon::new("/var/tmp/ave-example.pid", log)?.name("ave-example");
/// let pid = daemon.start_fn(|child| {
///     let stop = child.termination();
///     while !stop.wait(Some(std::time::Duration::from_secs(1))) {
///         child.log("still here");
///     }
///     Ok(())
/// })?;
/// assert_eq!(daemon.get_pid(), Some(pid));
/// daemon.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Daemon {
    pid_path: PathBuf,
    log: File,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    name: Option<String>,
    stop_timeout: Duration,
}

impl Daemon {
    /// A daemon whose pid file is `pid_path` (made absolute: the daemon runs in `/`) and
    /// whose log lines go to `log_file`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the current directory is needed and cannot be read.
    pub fn new(pid_path: impl AsRef<Path>, log_file: File) -> Result<Daemon, Error> {
        let pid_path = std::path::absolute(pid_path.as_ref())
            .map_err(|e| Error::io("make the pid file's path absolute", e))?;
        Ok(Daemon {
            pid_path,
            log: log_file,
            stdin: None,
            stdout: None,
            stderr: None,
            name: None,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
        })
    }

    /// The daemon's stdin (default `/dev/null`).
    #[must_use]
    pub fn stdin(mut self, file: File) -> Daemon {
        self.stdin = Some(file);
        self
    }

    /// The daemon's stdout (default `/dev/null`).
    #[must_use]
    pub fn stdout(mut self, file: File) -> Daemon {
        self.stdout = Some(file);
        self
    }

    /// The daemon's stderr (default `/dev/null`).
    #[must_use]
    pub fn stderr(mut self, file: File) -> Daemon {
        self.stderr = Some(file);
        self
    }

    /// The process name (default `ave-<target type>`, or `ave-Daemon` for a closure).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Daemon {
        self.name = Some(name.into());
        self
    }

    /// How long [`Daemon::stop`] waits after SIGTERM before SIGKILL (default 5 s).
    #[must_use]
    pub fn stop_timeout(mut self, timeout: Duration) -> Daemon {
        self.stop_timeout = timeout;
        self
    }

    /// The pid file.
    pub fn pid_path(&self) -> &Path {
        &self.pid_path
    }

    /// The pid the pid file holds; `None` if it is missing, empty or not a pid.
    pub fn get_pid(&self) -> Option<Pid> {
        read_pid(&self.pid_path)
    }

    /// Starts `target` as a daemon and returns its pid, which the pid file then holds.
    ///
    /// # Errors
    ///
    /// [`Error::PidFileExists`] (`pid file <path> exist`) if the pid file names a live
    /// process; what [`Process::start`] reports otherwise.
    pub fn start<T: Target + 'static>(&self, target: T) -> Result<Pid, Error> {
        if let Some(pid) = self.get_pid() {
            if is_running(pid) {
                return Err(Error::PidFileExists { path: self.pid_path.clone() });
            }
            tracing::warn!(path = %self.pid_path.display(), %pid, "replacing a stale pid file");
        }
        self.launch(Box::new(target), default_name::<T>())
    }

    /// [`Daemon::start`] with a closure.
    ///
    /// # Errors
    ///
    /// As [`Daemon::start`].
    pub fn start_fn<F>(&self, f: F) -> Result<Pid, Error>
    where
        F: FnOnce(&mut ChildContext) -> Result<(), TargetError> + Send + 'static,
    {
        self.start(Closure(Some(f)))
    }

    /// Starts a new daemon running `target` while the one the pid file names keeps
    /// running; the pid file then names the new one.
    ///
    /// # Errors
    ///
    /// [`Error::NoPidFile`] (`pid file <path> does not exist`) without a pid file; what
    /// [`Process::start`] reports otherwise.
    pub fn restart<T: Target + 'static>(&self, target: T) -> Result<Pid, Error> {
        if !self.pid_path.exists() {
            return Err(self.no_pid_file());
        }
        self.launch(Box::new(target), default_name::<T>())
    }

    /// [`Daemon::restart`] with a closure.
    ///
    /// # Errors
    ///
    /// As [`Daemon::restart`].
    pub fn restart_fn<F>(&self, f: F) -> Result<Pid, Error>
    where
        F: FnOnce(&mut ChildContext) -> Result<(), TargetError> + Send + 'static,
    {
        self.restart(Closure(Some(f)))
    }

    /// Stops the daemon the pid file names: SIGTERM, a wait of at most the stop timeout,
    /// then SIGKILL and a last wait; then removes the pid file if it still names it.
    ///
    /// # Errors
    ///
    /// [`Error::NoPidFile`] (`pid file <path> does not exist`); [`Error::BadPidFile`] for
    /// a pid file without a pid; [`Error::Unkillable`] for a process that survived
    /// SIGKILL; [`Error::Io`] if a signal cannot be sent.
    pub fn stop(&self) -> Result<(), Error> {
        if !self.pid_path.exists() {
            return Err(self.no_pid_file());
        }
        let Some(pid) = self.get_pid() else {
            return Err(Error::BadPidFile { path: self.pid_path.clone() });
        };
        match sys::pidfd_open(pid.get()) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => {}
            Err(e) => return Err(Error::io(format!("watch process {pid}"), e)),
            Ok(pidfd) => {
                let mut gone = false;
                for (signal, wait) in
                    [(Signal::TERM, self.stop_timeout), (Signal::KILL, Duration::from_secs(5))]
                {
                    match sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&pidfd), signal.number())
                    {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => {
                            gone = true;
                            break;
                        }
                        Err(e) => {
                            return Err(Error::io(format!("send signal {signal} to {pid}"), e));
                        }
                    }
                    if wait_readable(&pidfd, Some(wait)) {
                        gone = true;
                        break;
                    }
                }
                if !gone {
                    return Err(Error::Unkillable { pid: pid.get() });
                }
            }
        }
        remove_if_holds(&self.pid_path, pid);
        Ok(())
    }

    fn no_pid_file(&self) -> Error {
        Error::NoPidFile { path: self.pid_path.clone() }
    }

    fn launch(&self, inner: Box<dyn Target>, default: String) -> Result<Pid, Error> {
        let clone = |f: &File| f.try_clone().map_err(|e| Error::io("duplicate a daemon stream", e));
        let null = |append: bool| {
            OpenOptions::new()
                .read(!append)
                .append(append)
                .open("/dev/null")
                .map_err(|e| Error::io("open /dev/null", e))
        };
        let target = DaemonTarget {
            inner,
            pid_path: self.pid_path.clone(),
            log: clone(&self.log)?,
            stdin: match &self.stdin {
                Some(f) => clone(f)?,
                None => null(false)?,
            },
            stdout: match &self.stdout {
                Some(f) => clone(f)?,
                None => null(true)?,
            },
            stderr: match &self.stderr {
                Some(f) => clone(f)?,
                None => null(true)?,
            },
        };
        let name = self.name.clone().unwrap_or(default);
        let mut process = Process::new(target).name(name).logging(true);
        let pid = process.start(true, true)?;
        if self.get_pid() != Some(pid) {
            tracing::warn!(path = %self.pid_path.display(), %pid, "the pid file does not name the new daemon");
        }
        Ok(pid)
    }
}

fn default_name<T>() -> String {
    let type_name = std::any::type_name::<T>();
    if type_name.contains("Closure") || type_name.contains("{{closure}}") {
        return "ave-Daemon".to_owned();
    }
    let short = type_name.split('<').next().unwrap_or(type_name);
    let short = short.rsplit("::").next().unwrap_or(short);
    let name = format!("ave-{short}");
    kernel_name(&name).to_owned()
}

/// A closure as a daemon's target.
struct Closure<F>(Option<F>);

impl<F> Target for Closure<F>
where
    F: FnOnce(&mut ChildContext) -> Result<(), TargetError> + Send,
{
    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        self.0.take().ok_or("the target already ran")?(child)
    }
}

/// The daemon's side: the user's target with the streams, the log and the pid file.
struct DaemonTarget {
    inner: Box<dyn Target>,
    pid_path: PathBuf,
    log: File,
    stdin: File,
    stdout: File,
    stderr: File,
}

impl Target for DaemonTarget {
    fn close_fds(&mut self, child: &mut ChildContext, exclude: &FdSet) -> io::Result<()> {
        let mut exclude = exclude.clone();
        exclude.insert(&self.log);
        exclude.insert(&self.stdin);
        exclude.insert(&self.stdout);
        exclude.insert(&self.stderr);
        self.inner.close_fds(child, &exclude)
    }

    fn redirect(&mut self, child: &mut ChildContext) -> io::Result<()> {
        nix::unistd::dup2_stdin(&self.stdin)?;
        nix::unistd::dup2_stdout(&self.stdout)?;
        nix::unistd::dup2_stderr(&self.stderr)?;
        child.log_to(self.log.try_clone()?);
        self.inner.redirect(child)
    }

    fn initialize(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        write_pid(&self.pid_path, child.pid())?;
        self.inner.initialize(child)
    }

    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        self.inner.run(child)
    }

    fn exit(&mut self, child: &mut ChildContext, code: i32) -> Result<i32, TargetError> {
        let code = self.inner.exit(child, code);
        remove_if_holds(&self.pid_path, child.pid());
        code
    }
}

fn read_pid(path: &Path) -> Option<Pid> {
    fs::read_to_string(path).ok()?.trim().parse().ok().and_then(Pid::from_raw)
}

/// Writes the pid file so that readers see the old content or the new, never a part.
fn write_pid(path: &Path, pid: Pid) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::other("the pid file has no name"))?;
    let temp = path.with_file_name(format!(".{}.{pid}.tmp", name.to_string_lossy()));
    {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&temp)?;
        io::Write::write_all(&mut file, pid.to_string().as_bytes())?;
    }
    fs::rename(&temp, path)
}

fn remove_if_holds(path: &Path, pid: Pid) {
    if read_pid(path) == Some(pid) {
        let _ = fs::remove_file(path);
    }
}

/// Whether a process exists and has not ended (a zombie waiting to be reaped has).
fn is_running(pid: Pid) -> bool {
    let exists = match sys::kill(pid.get(), 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(nix::libc::EPERM),
    };
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).is_some_and(|state| state == "Z")
    });
    exists && !zombie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        struct MockDaemon;
        assert_eq!(default_name::<MockDaemon>(), "ave-MockDaemon");
        assert_eq!(default_name::<Closure<fn()>>(), "ave-Daemon");
    }
}
