//! The child's side of a start: the clean slate after the fork, the daemon's second fork,
//! the original's steps in its order, the default signal handling (a thread that waits
//! for the signals, so nothing runs in signal context), and the log format.
//!
//! Everything here ends in `_exit`: no path returns into the code that called
//! `Process::start`.

use std::{
    ffi::CString,
    fmt,
    fs::File,
    io::{self, Write},
    os::fd::{AsFd, OwnedFd},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, atomic::Ordering},
    time::{Duration, Instant},
};

use nix::sys::signal::{SigSet, Signal as NixSignal};

use crate::{
    process::Pipe,
    process::log::log_line,
    process::{
        fork::{FORKED, ForkState, fork_lock},
        settings::{FdSet, Settings, kernel_name},
        status::{Pid, Signal},
    },
    sys::process as sys,
};

/// What a [`Target`] step returns when it fails: any error (`anyhow::Error`, `io::Error`,
/// a string, ...). A failure of `run` is logged as `Exception in target():` and the child
/// exits 1, as the original does for an exception.
pub type TargetError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a child runs, step by step: the original's `Process` methods that subclasses
/// override. Only [`Target::run`] is required; the other steps have the original's
/// defaults.
///
/// The steps run in the child, in this order: `close_fds`, `redirect`, `initialize`,
/// (the synchronization message), `run`, `exit`. A step that fails or panics ends the
/// child (it never returns into the caller's code).
pub trait Target: Send {
    /// The child's work. `Ok` exits 0 (or the code given to
    /// [`ChildContext::set_exit_code`]); `Err` is logged as `Exception in target():` and
    /// exits 1.
    ///
    /// # Errors
    ///
    /// Whatever the work fails with.
    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError>;

    /// Closes inherited descriptors, except 0, 1, 2 and `exclude` (which holds the
    /// synchronization pipe and the descriptors given to [`Process::keep_fd`](crate::process::Process::keep_fd)). Override it
    /// to keep more: add them to a copy of `exclude` and call
    /// [`ChildContext::close_fds`].
    ///
    /// # Errors
    ///
    /// The system error; the child then ends.
    fn close_fds(&mut self, child: &mut ChildContext, exclude: &FdSet) -> io::Result<()> {
        child.close_fds(exclude)
    }

    /// Redirects descriptors, e.g. stdout and stderr to a log file. Does nothing by
    /// default.
    ///
    /// # Errors
    ///
    /// The system error; the child then ends.
    fn redirect(&mut self, child: &mut ChildContext) -> io::Result<()> {
        let _ = child;
        Ok(())
    }

    /// Initializes the child: by default [`ChildContext::initialize`] (signal handling,
    /// the parent-death signal, the kernel name).
    ///
    /// # Errors
    ///
    /// Whatever fails; the parent's `start` reports it when it synchronizes.
    fn initialize(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        child.initialize()
    }

    /// The last step before `_exit`, with the exit code; returns the code to exit with.
    /// An error is logged as `Exception in exit():` and the child exits 2.
    ///
    /// # Errors
    ///
    /// Whatever fails.
    fn exit(&mut self, child: &mut ChildContext, code: i32) -> Result<i32, TargetError> {
        let _ = child;
        Ok(code)
    }
}

/// A closure as a target.
pub(crate) struct FnTarget<F>(pub(crate) Option<F>);

impl<F> Target for FnTarget<F>
where
    F: FnOnce(&mut ChildContext) -> Result<(), TargetError> + Send,
{
    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        match self.0.take() {
            Some(f) => f(child),
            None => Err("the target already ran".into()),
        }
    }
}

/// Waits until a descriptor is readable (a pidfd: its process ended), at most `timeout`.
pub(crate) fn wait_readable(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let millis = match left {
            None => PollTimeout::NONE,
            Some(l) => {
                PollTimeout::try_from(l.min(Duration::from_secs(60))).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, millis) {
            Ok(0) if left.is_some_and(|l| l.as_millis() <= 60_000) => return false,
            Ok(0) => continue,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// The child's view of itself, given to every [`Target`] step: its name, logging, the
/// default steps, and the default signal handling.
pub struct ChildContext {
    name: String,
    logging: bool,
    log_file: Option<Arc<File>>,
    death_signal: Option<Signal>,
    keep: FdSet,
    parent: Pid,
    exit_code: i32,
    termination: Arc<TerminationState>,
    signal_thread: bool,
}

impl fmt::Debug for ChildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildContext")
            .field("name", &self.name)
            .field("pid", &Pid::this())
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

impl ChildContext {
    fn new(settings: &Settings, parent: Pid) -> ChildContext {
        ChildContext {
            name: settings.name.clone(),
            logging: settings.logging,
            log_file: None,
            death_signal: settings.death_signal,
            keep: settings.keep.clone(),
            parent,
            exit_code: 0,
            termination: Arc::new(TerminationState::default()),
            signal_thread: false,
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        Pid::this()
    }

    /// The parent this child was started by (for a daemon: init or the subreaper it was
    /// re-parented to).
    pub fn parent(&self) -> Pid {
        self.parent
    }

    /// The process name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signal to get when the parent dies, as configured
    /// ([`Process::death_signal`](crate::process::Process::death_signal)); the default
    /// initialization sets it.
    pub fn death_signal(&self) -> Option<Signal> {
        self.death_signal
    }

    /// The descriptors given to [`Process::keep_fd`](crate::process::Process::keep_fd).
    pub fn kept_fds(&self) -> &FdSet {
        &self.keep
    }

    /// Whether log lines are written.
    pub fn logging(&self) -> bool {
        self.logging
    }

    /// Turns log lines on or off.
    pub fn set_logging(&mut self, on: bool) {
        self.logging = on;
    }

    /// Writes log lines to `file` instead of stderr (a daemon's log file).
    pub fn log_to(&mut self, file: File) {
        self.log_file = Some(Arc::new(file));
    }

    /// Writes a log line in the original's format, `<ctime> <name> <pid> -- <message>`,
    /// if logging is on.
    pub fn log(&self, message: impl fmt::Display) {
        if self.logging {
            write_log(self.log_file.as_deref(), &log_line(&self.name, &message));
        }
    }

    /// Ends the child with this code when the target returns `Ok`.
    pub fn set_exit_code(&mut self, code: i32) {
        self.exit_code = code;
    }

    /// The default `close_fds`: closes every descriptor but 0, 1, 2 and `exclude`
    /// (`close_range`). Unix-domain sockets are replaced with a placeholder rather than
    /// closed, which keeps the numbers of libraries' global descriptors (tokio's signal
    /// pipe) valid and private to the child.
    ///
    /// Values of the target that own descriptors must have them in `exclude`.
    ///
    /// # Errors
    ///
    /// The system error.
    pub fn close_fds(&mut self, exclude: &FdSet) -> io::Result<()> {
        sys::close_inherited(exclude.numbers())
    }

    /// The default initialization: [`ChildContext::set_signal_handlers`] and
    /// [`ChildContext::set_process_name`].
    ///
    /// # Errors
    ///
    /// If a step fails.
    pub fn initialize(&mut self) -> Result<(), TargetError> {
        self.set_signal_handlers()?;
        self.set_process_name()?;
        Ok(())
    }

    /// The default signal handling, done outside signal context by a thread that waits
    /// for the signals: SIGTERM logs `SIGTERM exit PID=<pid>` and exits 15 (unless
    /// [`ChildContext::termination`] made it a request), SIGUSR1 logs the thread list.
    /// Then [`ChildContext::perform_prctl`] with the process's death signal.
    ///
    /// # Errors
    ///
    /// If the signals cannot be blocked or the thread cannot start.
    pub fn set_signal_handlers(&mut self) -> Result<(), TargetError> {
        if !self.signal_thread {
            self.start_signal_thread()?;
            self.signal_thread = true;
        }
        self.perform_prctl(self.death_signal)?;
        Ok(())
    }

    /// Sets the signal sent to this process when its parent dies (`None`: none). With a
    /// signal, if the parent has already died (the race the original left open), the
    /// signal is raised at once.
    ///
    /// # Errors
    ///
    /// The system error.
    pub fn perform_prctl(&mut self, death_signal: Option<Signal>) -> io::Result<()> {
        let nix_signal = death_signal.map(Signal::to_nix).transpose()?;
        nix::sys::prctl::set_pdeathsig(nix_signal)?;
        if let Some(signal) = death_signal {
            if nix::unistd::getppid().as_raw() != self.parent.get() {
                self.log(format!(
                    "parent PID={} died before the death signal was set",
                    self.parent
                ));
                sys::kill(Pid::this().get(), signal.number())?;
            }
        }
        Ok(())
    }

    /// Gives the process its kernel name (at most 15 bytes, `/proc/<pid>/comm`).
    ///
    /// # Errors
    ///
    /// The system error.
    pub fn set_process_name(&mut self) -> io::Result<()> {
        let kernel = kernel_name(&self.name);
        let name = CString::new(kernel).map_err(io::Error::other)?;
        nix::sys::prctl::set_name(&name)?;
        if nix::unistd::gettid() != nix::unistd::getpid() {
            // PR_SET_NAME names the calling thread; the process's name is its first
            // thread's.
            std::fs::write("/proc/self/comm", kernel)?;
        }
        Ok(())
    }

    /// Makes SIGTERM a request rather than an exit: the default signal handling then
    /// records it, and the target asks with the returned [`Termination`] and ends in its
    /// own time.
    pub fn termination(&mut self) -> Termination {
        self.termination.graceful.store(true, Ordering::Release);
        Termination(self.termination.clone())
    }

    fn start_signal_thread(&mut self) -> io::Result<()> {
        let mut set = SigSet::empty();
        set.add(NixSignal::SIGTERM);
        set.add(NixSignal::SIGUSR1);
        // Blocked in this thread and every thread it starts, so they are only ever
        // delivered to the signal thread's wait.
        set.thread_block()?;
        let name = self.name.clone();
        let logging = self.logging;
        let log_file = self.log_file.clone();
        let termination = self.termination.clone();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("ave-signals".to_owned()).spawn(move || {
            fork_lock().park(nix::unistd::gettid().as_raw());
            let _ = tid_tx.send(());
            signal_loop(&set, &name, logging, log_file.as_deref(), &termination);
        })?;
        // Parked before the target can fork.
        tid_rx.recv().map_err(io::Error::other)
    }
}

fn signal_loop(
    set: &SigSet,
    name: &str,
    logging: bool,
    log_file: Option<&File>,
    termination: &TerminationState,
) {
    let log = |message: String| {
        if logging {
            write_log(log_file, &log_line(name, &message));
        }
    };
    loop {
        let Ok(signal) = set.wait() else { continue };
        // Whatever this thread does happens under the fork lock: when a fork happens,
        // this thread is waiting and holds nothing.
        let _guard = fork_lock();
        let pid = Pid::this();
        match signal {
            NixSignal::SIGTERM if termination.graceful.load(Ordering::Acquire) => {
                log(format!("SIGTERM PID={pid}: termination requested"));
                termination.request();
            }
            NixSignal::SIGTERM => {
                log(format!("SIGTERM exit PID={pid}"));
                let _ = io::stdout().flush();
                sys::exit_now(15);
            }
            _ => log(format!("SIGUSR1 trace PID={pid}:\n{}", crate::process::log::thread_list())),
        }
    }
}

#[derive(Debug, Default)]
struct TerminationState {
    graceful: std::sync::atomic::AtomicBool,
    requested: Mutex<bool>,
    changed: Condvar,
}

impl TerminationState {
    fn request(&self) {
        *crate::sync::lock(&self.requested) = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        crate::sync::lock(&self.requested)
    }
}

/// Whether SIGTERM asked this child to end ([`ChildContext::termination`]).
#[derive(Debug, Clone)]
pub struct Termination(Arc<TerminationState>);

impl Termination {
    /// Whether SIGTERM has arrived.
    pub fn requested(&self) -> bool {
        *self.0.lock()
    }

    /// Waits for SIGTERM, at most `timeout` (`None`: as long as it takes). Returns whether
    /// it arrived.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut requested = self.0.lock();
        while !*requested {
            match deadline {
                None => {
                    requested =
                        self.0.changed.wait(requested).unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    requested = self
                        .0
                        .changed
                        .wait_timeout(requested, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }
}

/// The child's path after the fork. Never returns.
pub(super) fn enter(
    guard: MutexGuard<'static, ForkState>,
    target: Option<Box<dyn Target>>,
    settings: &Settings,
    pipe: Option<Pipe>,
    daemonize: bool,
    synchronize: bool,
    parent: Pid,
) -> ! {
    FORKED.store(true, Ordering::Relaxed);
    sys::reset_signals();
    // The parked threads of the parent do not exist here.
    drop(guard);
    *fork_lock() = ForkState::default();
    let code = catch_unwind(AssertUnwindSafe(move || {
        let code = child_main(target, settings, pipe, daemonize, synchronize, parent);
        let _ = io::stdout().flush();
        code
    }));
    let code = code.unwrap_or_else(|panic| {
        // Dropping a panic payload may panic again: never drop it here.
        std::mem::forget(panic);
        1
    });
    sys::exit_now(code)
}

fn child_main(
    target: Option<Box<dyn Target>>,
    settings: &Settings,
    mut pipe: Option<Pipe>,
    daemonize: bool,
    synchronize: bool,
    parent: Pid,
) -> i32 {
    if let Some(pipe) = &mut pipe {
        pipe.close_reader();
    }
    let parent = if daemonize { become_daemon(&mut pipe) } else { parent };
    // Without synchronization the pipe only carried the daemon's pid.
    let sync = if synchronize { pipe } else { None };
    let Some(target) = target else { return 1 };
    let context = ChildContext::new(settings, parent);
    if tokio::runtime::Handle::try_current().is_ok() {
        // Started from inside a runtime: this thread is marked as running it, so a new
        // runtime could not be started here. Run the steps on a new thread.
        run_on_new_thread(target, context, sync)
    } else {
        run_steps(target, context, sync)
    }
}

/// The intermediate child of a daemonization: a new session, `/`, umask 022, the second
/// fork. Returns in the daemon (with its new parent), never in the intermediate child.
fn become_daemon(pipe: &mut Option<Pipe>) -> Pid {
    let report = |pipe: &Option<Pipe>, value: serde_json::Value| {
        if let Some(pipe) = pipe {
            let _ = pipe.put(&value);
        }
    };
    if let Err(e) = nix::unistd::setsid() {
        report(pipe, format!("setsid failed: {e}").into());
        sys::exit_now(1);
    }
    let _ = nix::unistd::chdir("/");
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // The daemon waits on this to know it has been re-parented.
    let intermediate_pid = nix::unistd::getpid();
    let intermediate = sys::pidfd_open(intermediate_pid.as_raw()).ok();
    match sys::fork() {
        Err(e) => {
            report(pipe, format!("fork #2 failed: {e}").into());
            sys::exit_now(1)
        }
        Ok(sys::Forked::Parent(daemon)) => {
            report(pipe, daemon.into());
            sys::exit_now(0)
        }
        Ok(sys::Forked::Child) => {
            if let Some(fd) = &intermediate {
                wait_readable(fd, Some(Duration::from_secs(5)));
            }
            drop(intermediate);
            // The pidfd is readable once the intermediate child has exited, which is after
            // its children were re-parented; check anyway, briefly.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut parent = nix::unistd::getppid();
            while parent == intermediate_pid && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
                parent = nix::unistd::getppid();
            }
            Pid(parent.as_raw())
        }
    }
}

/// Runs the steps on a new thread while this one waits with every signal blocked, so that
/// signals go to the steps' thread.
fn run_on_new_thread(target: Box<dyn Target>, context: ChildContext, sync: Option<Pipe>) -> i32 {
    let _ = SigSet::all().thread_block();
    let mut guard = fork_lock();
    let worker = std::thread::Builder::new().name("ave-child".to_owned()).spawn(move || {
        let _ = SigSet::all().thread_unblock();
        run_steps(target, context, sync)
    });
    match worker {
        Ok(worker) => {
            // This thread only waits from now on, holding nothing: a fork by the worker
            // is sound.
            guard.park(nix::unistd::gettid().as_raw());
            drop(guard);
            worker.join().unwrap_or(1)
        }
        Err(e) => {
            drop(guard);
            write_log(
                None,
                &log_line("ave-child", &format!("cannot start the child's thread: {e}")),
            );
            1
        }
    }
}

/// The original's steps, in its order. Returns the exit code.
fn run_steps(mut target: Box<dyn Target>, mut context: ChildContext, sync: Option<Pipe>) -> i32 {
    let pid = Pid::this();
    let prepared = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let mut exclude = context.keep.clone();
        if let Some(writer) = sync.as_ref().and_then(Pipe::writer_fd) {
            exclude.insert(writer);
        }
        target.close_fds(&mut context, &exclude).map_err(|e| format!("close_fds() failed: {e}"))?;
        target.redirect(&mut context).map_err(|e| format!("redirect() failed: {e}"))?;
        context.log(format!("start PID={pid}"));
        target
            .initialize(&mut context)
            .map_err(|e| format!("initialize() failed: {}", ave_exceptions::error_chain(&*e)))
    }));
    let failure = match prepared {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(panic) => Some(format!("a step before the target panicked: {}", panic_text(panic))),
    };
    if let Some(failure) = failure {
        context.log(format!("Exception in initialize():\n{failure}"));
        if let Some(pipe) = &sync {
            let _ = pipe.put(&failure);
        }
        return 1;
    }
    if let Some(pipe) = sync {
        if let Err(e) = pipe.put(&pid.get()) {
            context.log(format!("cannot tell the parent that this process is initialized: {e}"));
        }
        drop(pipe);
    }
    let code = match catch_unwind(AssertUnwindSafe(|| target.run(&mut context))) {
        Ok(Ok(())) => context.exit_code,
        Ok(Err(e)) => {
            context.log(format!("Exception in target():\n{}", ave_exceptions::error_chain(&*e)));
            1
        }
        Err(panic) => {
            context.log(format!("Exception in target():\npanicked: {}", panic_text(panic)));
            1
        }
    };
    let code = match catch_unwind(AssertUnwindSafe(|| target.exit(&mut context, code))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            context.log(format!("Exception in exit():\n{}", ave_exceptions::error_chain(&*e)));
            2
        }
        Err(panic) => {
            context.log(format!("Exception in exit():\npanicked: {}", panic_text(panic)));
            2
        }
    };
    context.log(format!("exit PID={pid} code={code}"));
    code
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a payload that is not text".to_owned());
    // Dropping the payload may panic again: never drop it.
    std::mem::forget(panic);
    text
}

/// Writes one line with one `write` call where possible, to `file` or stderr.
fn write_log(file: Option<&File>, line: &str) {
    let _ = match file {
        Some(mut file) => file.write_all(line.as_bytes()),
        None => io::stderr().write_all(line.as_bytes()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_waits_are_bounded() {
        let state = Arc::new(TerminationState::default());
        let t = Termination(state.clone());
        assert!(!t.wait(Some(Duration::from_millis(10))));
        state.request();
        assert!(t.requested());
        assert!(t.wait(None));
    }
}
