//! `Background`: a running command, its pty and its session; and the loops that collect
//! its output, blocking (`poll`) and async (tokio `AsyncFd`).

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    pin::pin,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::signal::{SIGCONT, SIGKILL, SIGTERM, Signal, killpg},
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    Argv, Error, ExitStatus, Input, Options, Output, Pid, WindowSize,
    session::{self, Member},
    spawn::Started,
    sys,
};

/// Size of the read buffer. A Linux pty delivers at most 4 KiB per read; a little more
/// serves other kernels, and a small buffer keeps short runs cheap.
const BUF_SIZE: usize = 16 * 1024;

/// Reads per turn of the loop before the deadline and the child are looked at again.
const READS_PER_TURN: usize = 64;

/// How long processes get to die after `SIGKILL` before the runner gives up on them (a
/// process in uninterruptible sleep cannot die until it wakes).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Rounds of scanning the session for processes and killing them (a process may fork
/// while the previous round is being killed).
const KILL_ROUNDS: usize = 8;

/// What the async API waits for on the pty master.
const MASTER_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// A command running in the background, from [`run_bg`](crate::run_bg): its pid, its
/// session and the master side of its pty.
///
/// The command runs in its own session (its pid is the session id) with the pty as its
/// controlling terminal and stdin, stdout and stderr. Read its output with
/// [`io::Read`] or [`Background::read_async`], send it input with [`io::Write`] or
/// [`Background::write_async`], or collect everything with [`Background::output`] /
/// [`Background::output_async`], which is what [`run`](crate::run) does.
///
/// Waiting ([`Background::wait`], [`Background::try_wait`], [`Background::wait_async`])
/// returns once the command has exited; the rest of its session is then ended (`SIGTERM`,
/// then `SIGKILL` after the grace of [`Options::kill_grace`]) and the command reaped. Output
/// still buffered in the pty can be read afterwards until the `Background` is dropped.
///
/// Dropping a `Background` whose command is still running kills its whole session with
/// `SIGKILL` and reaps it (this blocks for the moment the kernel needs), then closes the
/// pty: no zombie and no pty is ever left behind. A daemon that left the session
/// (`setsid`) and closed the terminal survives, as it should.
#[derive(Debug)]
pub struct Background {
    argv: Argv,
    options: Options,
    pid: Pid,
    pidfd: Handle,
    master: Handle,
    started: Instant,
    /// The command's pidfd reported its exit; it may not be reaped yet.
    exited: bool,
    /// The command has been reaped with this status.
    status: Option<ExitStatus>,
    /// The pty reported the end of output (every slave descriptor is closed).
    eof: bool,
    /// Handed over with `into_raw_parts`: the caller reaps the command.
    detached: bool,
}

/// A descriptor, registered with tokio once the async API is first used.
#[derive(Debug)]
enum Handle {
    Plain(OwnedFd),
    Async(AsyncFd<OwnedFd>),
    /// Only while switching from `Plain` to `Async`.
    Moving,
}

impl Handle {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Handle::Plain(fd) => fd.as_fd(),
            Handle::Async(fd) => fd.get_ref().as_fd(),
            Handle::Moving => unreachable!("a handle is only moving inside `make_async`"),
        }
    }

    /// Registers the descriptor with the current tokio runtime (once).
    fn make_async(&mut self, interest: Interest) -> io::Result<&AsyncFd<OwnedFd>> {
        if let Handle::Plain(_) = self {
            let Handle::Plain(fd) = std::mem::replace(self, Handle::Moving) else {
                unreachable!("matched just above")
            };
            match sys::register(fd, interest) {
                Ok(fd) => *self = Handle::Async(fd),
                Err((fd, error)) => {
                    *self = Handle::Plain(fd);
                    return Err(error);
                }
            }
        }
        match self {
            Handle::Async(fd) => Ok(fd),
            Handle::Plain(_) | Handle::Moving => unreachable!("registered just above"),
        }
    }

    fn fd_async(&self) -> Option<&AsyncFd<OwnedFd>> {
        match self {
            Handle::Async(fd) => Some(fd),
            Handle::Plain(_) | Handle::Moving => None,
        }
    }
}

/// What one non-blocking read of the master gave.
enum Chunk {
    Data(usize),
    Again,
    Eof,
}

/// Reads the master once without blocking. `EIO` is the end of output: Linux reports it
/// once every slave descriptor is closed and everything written before was read.
fn read_master(master: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Chunk> {
    loop {
        return match nix::unistd::read(master, buf) {
            Ok(0) | Err(Errno::EIO) => Ok(Chunk::Eof),
            Ok(n) => Ok(Chunk::Data(n)),
            Err(Errno::EAGAIN) => Ok(Chunk::Again),
            Err(Errno::EINTR) => continue,
            Err(errno) => Err(errno.into()),
        };
    }
}

/// Where output goes: memory, the output sink, the debug sink.
struct Collector {
    keep: bool,
    data: Vec<u8>,
    sink: Option<crate::Sink>,
    debug: Option<crate::Sink>,
    sink_error: Option<io::Error>,
}

impl Collector {
    fn new(options: &Options) -> Collector {
        Collector {
            keep: options.keep_output,
            data: Vec::new(),
            sink: options.output.clone(),
            debug: options.debug.clone(),
            sink_error: None,
        }
    }

    /// A collector that drops everything (for ending a session no one reads any more).
    fn discard() -> Collector {
        Collector { keep: false, data: Vec::new(), sink: None, debug: None, sink_error: None }
    }

    fn chunk(&mut self, data: &[u8]) {
        if let Some(debug) = &self.debug {
            let mut line = format!("read {}\n", data.len()).into_bytes();
            line.extend_from_slice(data);
            line.push(b'\n');
            let _ = debug.write_chunk(&line);
        }
        if self.keep {
            self.data.extend_from_slice(data);
        }
        if let Some(sink) = &self.sink
            && self.sink_error.is_none()
            && let Err(error) = sink.write_chunk(data)
        {
            self.sink_error = Some(error);
        }
    }

    fn event(&self, flags: PollFlags) {
        if let Some(debug) = &self.debug {
            let _ = debug.write_chunk(format!("flags: 0x{:x}\n", flags.bits()).as_bytes());
        }
    }
}

/// Why the collecting loop stopped early.
enum Stop {
    Timeout,
    Sink(io::Error),
    Os(&'static str, io::Error),
}

impl Background {
    pub(crate) fn new(argv: Argv, options: Options, started: Started) -> Background {
        Background {
            argv,
            options,
            pid: started.pid,
            pidfd: Handle::Plain(started.pidfd),
            master: Handle::Plain(started.master),
            started: Instant::now(),
            exited: false,
            status: None,
            eof: false,
            detached: false,
        }
    }

    /// The command's pid, which is also its session id and process group id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The command.
    pub fn argv(&self) -> &Argv {
        &self.argv
    }

    /// The master side of the pty (non-blocking, close-on-exec). Reading it directly
    /// bypasses the output sink and the debug trace.
    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.fd()
    }

    /// An owned duplicate of the pty master (close-on-exec, sharing the non-blocking
    /// flag). The pty stays allocated until this duplicate is closed too.
    ///
    /// # Errors
    ///
    /// The `dup` failed (descriptor limit).
    pub fn try_clone_master(&self) -> io::Result<OwnedFd> {
        self.master.fd().try_clone_to_owned()
    }

    /// Leaves the command running and hands over its pid and a duplicate of the pty
    /// master: the original `run_bg`'s `(pid, fd)`. The caller must reap the pid and close
    /// the descriptor; nothing is killed when the `Background` goes.
    ///
    /// # Errors
    ///
    /// The `dup` of the master failed (descriptor limit); the command is then still owned
    /// (and ended) by the `Background`.
    pub fn into_raw_parts(mut self) -> io::Result<(Pid, OwnedFd)> {
        let master = self.try_clone_master()?;
        self.detached = true;
        Ok((self.pid, master))
    }

    /// The exit status, once the command has been reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// The terminal's window size.
    ///
    /// # Errors
    ///
    /// The `ioctl` failed.
    pub fn window_size(&self) -> io::Result<WindowSize> {
        let (rows, cols) = sys::window_size(self.master.fd())?;
        Ok(WindowSize { rows, cols })
    }

    /// Changes the terminal's window size; the command gets `SIGWINCH`.
    ///
    /// # Errors
    ///
    /// The `ioctl` failed.
    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        sys::set_window_size(self.master.fd(), rows, cols)
    }

    /// Sends a signal to the command (not to the rest of its session). Does nothing once
    /// the command has been reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the signal number is invalid.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        if self.status.is_some() {
            return Ok(());
        }
        match sys::pidfd_send_signal(self.pidfd.fd(), signal) {
            Ok(()) => Ok(()),
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(source) => Err(self.os_error("sending a signal", source)),
        }
    }

    fn os_error(&self, operation: &'static str, source: io::Error) -> Error {
        os_error(&self.argv, operation, source)
    }

    // ----- waiting and ending (blocking) -----

    /// Returns the exit status if the command has exited (see the type's documentation
    /// for what happens then), without blocking.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if polling or reaping failed.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.wait_for_exit(Some(Duration::ZERO))
    }

    /// Waits for the command to exit, then ends the rest of its session and reaps it.
    /// Read the output meanwhile (from another thread, or use [`Background::output`]): a
    /// command blocks when the pty's buffer is full.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if polling or reaping failed.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        match self.wait_for_exit(None)? {
            Some(status) => Ok(status),
            None => unreachable!("waiting without a timeout returns a status"),
        }
    }

    /// Like [`Background::wait`], giving up after `timeout` with `None` (the command keeps
    /// running).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if polling or reaping failed.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        self.wait_for_exit(Some(timeout))
    }

    fn wait_for_exit(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>, Error> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        while !self.exited {
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            let mut fds = [PollFd::new(self.pidfd.fd(), PollFlags::POLLIN)];
            match poll(&mut fds, poll_timeout(wait)) {
                Ok(0) if wait.is_zero() => return Ok(None),
                Ok(_) => self.exited = fds[0].any() == Some(true),
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(self.os_error("polling", errno.into())),
            }
        }
        let grace = self.options.kill_grace;
        self.end_session(grace, &mut Collector::discard(), false);
        self.reap().map(Some)
    }

    /// Ends the command's whole session: `SIGTERM` (and `SIGCONT`, so stopped processes
    /// see it) to every process in it, then `SIGKILL` to those still there after the grace
    /// of [`Options::kill_grace`]; then reaps the command. Returns its status.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if reaping failed.
    pub fn kill(&mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let grace = self.options.kill_grace;
        self.end_session(grace, &mut Collector::discard(), false);
        self.reap()
    }

    /// Reaps the command, which has exited (or is about to, after `SIGKILL`).
    fn reap(&mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let raw = sys::waitpid(self.pid.raw(), false)
            .map_err(|e| self.os_error("reaping the command", e))?
            .unwrap_or_default();
        let status = ExitStatus::from_raw(raw);
        self.exited = true;
        self.status = Some(status);
        tracing::debug!(pid = %self.pid, %status, "reaped");
        Ok(status)
    }

    /// Ends every process of the session but the daemons that left it, the command
    /// included if it still runs (blocking). `grace` zero sends `SIGKILL` at once. Output
    /// read meanwhile goes to `collector` if `drain`. Must run before the command is
    /// reaped: until then its pid cannot be reused, so the session and process group ids
    /// are unambiguous.
    fn end_session(&mut self, grace: Duration, collector: &mut Collector, drain: bool) {
        debug_assert!(self.status.is_none());
        let sid = self.pid.raw();
        let mut signal = if grace.is_zero() { SIGKILL } else { SIGTERM };
        for _ in 0..KILL_ROUNDS {
            let mut targets = session::members(sid, sid);
            if !self.exited {
                self.exited = self.pidfd_ready();
            }
            if targets.is_empty() && self.exited {
                return;
            }
            tracing::debug!(
                pid = %self.pid, signal = %signal, count = targets.len() + usize::from(!self.exited),
                "ending the session"
            );
            tracing::trace!(pids = ?targets.iter().map(|t| t.pid).collect::<Vec<_>>(), "session members");
            self.send(&targets, signal);
            let limit = if signal == SIGKILL { KILL_WAIT } else { grace };
            self.wait_gone(&mut targets, Instant::now() + limit, collector, drain);
            signal = SIGKILL;
        }
        tracing::warn!(pid = %self.pid, "processes of the session survived SIGKILL");
    }

    /// Sends `signal` to the command (if it runs), the targets and its process group.
    fn send(&self, targets: &[Member], signal: Signal) {
        let follow = (signal == SIGTERM).then_some(SIGCONT);
        for sig in std::iter::once(signal).chain(follow) {
            // The command first: were one of its children to die first, it could exit on
            // its own before its signal arrived, and its status would depend on the race.
            if !self.exited {
                let _ = sys::pidfd_send_signal(self.pidfd.fd(), sig as i32);
            }
            for target in targets {
                let _ = sys::pidfd_send_signal(target.pidfd.as_fd(), sig as i32);
            }
            // The process group catches what was forked since the scan. The command is
            // not reaped, so its pid still names this group.
            let _ = killpg(nix::unistd::Pid::from_raw(self.pid.raw()), sig);
        }
    }

    /// Whether the command's pidfd reports its exit, without blocking.
    fn pidfd_ready(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Waits until the targets and the command have exited, or `deadline`, reading the
    /// master meanwhile if `drain`.
    fn wait_gone(
        &mut self,
        targets: &mut Vec<Member>,
        deadline: Instant,
        collector: &mut Collector,
        drain: bool,
    ) {
        let mut buf = if drain { vec![0; BUF_SIZE] } else { Vec::new() };
        loop {
            if targets.is_empty() && self.exited {
                return;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return;
            }
            let read = drain && !self.eof;
            let (ready, master_ready, leader_ready) = {
                let mut fds: Vec<PollFd<'_>> = targets
                    .iter()
                    .map(|t| PollFd::new(t.pidfd.as_fd(), PollFlags::POLLIN))
                    .collect();
                if !self.exited {
                    fds.push(PollFd::new(self.pidfd.fd(), PollFlags::POLLIN));
                }
                if read {
                    fds.push(PollFd::new(self.master.fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, poll_timeout(wait)) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => return,
                }
                let mut it = fds.iter().map(|f| f.any() == Some(true));
                let ready: Vec<bool> = it.by_ref().take(targets.len()).collect();
                let leader_ready = if self.exited { false } else { it.next().unwrap_or(false) };
                let master_ready = if read { it.next().unwrap_or(false) } else { false };
                (ready, master_ready, leader_ready)
            };
            let mut ready = ready.into_iter();
            targets.retain(|_| !ready.next().unwrap_or(false));
            if leader_ready {
                self.exited = true;
            }
            if master_ready && self.drain(collector, &mut buf).is_err() {
                // Stop reading a terminal that fails, rather than spin on it.
                self.eof = true;
            }
        }
    }

    /// Reads what the master has (bounded), into the collector.
    fn drain(&mut self, collector: &mut Collector, buf: &mut [u8]) -> io::Result<()> {
        for _ in 0..READS_PER_TURN {
            match read_master(self.master.fd(), buf)? {
                Chunk::Data(n) => collector.chunk(&buf[..n]),
                Chunk::Again => return Ok(()),
                Chunk::Eof => {
                    self.eof = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    // ----- collecting everything (blocking) -----

    /// Reads all output (copying it to the output sink as it comes) until the command
    /// has exited and the pty reports the end of output, then ends whatever is left of
    /// the session and reaps the command. The timeout of the options counts from the
    /// start of the command. This is [`run`](crate::run) after [`run_bg`](crate::run_bg).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (the session has been ended), [`Error::Sink`] (the session has
    /// been ended), [`Error::Os`].
    pub fn output(mut self) -> Result<Output, Error> {
        let mut collector = Collector::new(&self.options);
        match self.collect(&mut collector) {
            Ok(()) => {
                let status = self.reap()?;
                Ok(self.finish(status, collector))
            }
            Err(stop) => Err(self.stopped(stop, collector)),
        }
    }

    fn collect(&mut self, collector: &mut Collector) -> Result<(), Stop> {
        let deadline = self.options.timeout.map(|t| self.started + t);
        let mut linger_until = None;
        let mut buf = vec![0; BUF_SIZE];
        loop {
            if !self.eof {
                self.drain(collector, &mut buf).map_err(|e| Stop::Os("reading the pty", e))?;
            }
            if let Some(error) = collector.sink_error.take() {
                return Err(Stop::Sink(error));
            }
            if self.exited && linger_until.is_none() {
                // The command is gone: so is the rest of its session. Then read on until
                // the end of output, or give up after the linger time if a process
                // outside the session holds the terminal.
                let grace = self.options.kill_grace;
                self.end_session(grace, collector, true);
                linger_until = Some(Instant::now() + self.options.linger);
                continue;
            }
            if self.eof && self.exited {
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Err(Stop::Timeout);
            }
            if linger_until.is_some_and(|l| l <= now) {
                tracing::warn!(pid = %self.pid, "the terminal is still open after the session ended; not reading further");
                return Ok(());
            }
            let until = [deadline, linger_until].into_iter().flatten().min();
            let wait = until.map_or(Duration::MAX, |u| u.saturating_duration_since(now));
            let mut fds = Vec::with_capacity(2);
            if !self.eof {
                fds.push(PollFd::new(self.master.fd(), PollFlags::POLLIN));
            }
            if !self.exited {
                fds.push(PollFd::new(self.pidfd.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, poll_timeout(wait)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Stop::Os("polling", errno.into())),
            }
            let mut revents = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty()));
            if !self.eof
                && let Some(flags) = revents.next()
                && !flags.is_empty()
            {
                collector.event(flags);
            }
            if !self.exited && revents.next().is_some_and(|f| !f.is_empty()) {
                self.exited = true;
            }
        }
    }

    fn finish(&self, status: ExitStatus, collector: Collector) -> Output {
        tracing::debug!(pid = %self.pid, %status, bytes = collector.data.len(), "finished");
        Output { status, output: collector.data, duration: self.started.elapsed() }
    }

    /// Ends the session after an early stop and builds the error.
    fn stopped(&mut self, stop: Stop, mut collector: Collector) -> Error {
        let grace = self.options.kill_grace;
        self.end_session(grace, &mut collector, true);
        let status = match self.reap() {
            Ok(status) => status,
            Err(error) => return error,
        };
        self.stop_error(stop, status, collector)
    }

    fn stop_error(&self, stop: Stop, status: ExitStatus, collector: Collector) -> Error {
        let cmd = self.argv.as_slice().to_vec();
        match stop {
            Stop::Timeout => {
                tracing::debug!(pid = %self.pid, %status, "timed out");
                Error::Timeout { cmd, output: collector.data, status }
            }
            Stop::Sink(source) => Error::Sink { cmd, output: collector.data, source },
            Stop::Os(operation, source) => Error::Os { cmd, operation, source },
        }
    }

    // ----- async -----

    /// Reads output into `buf` without blocking the runtime; `Ok(0)` is the end of
    /// output. Bypasses the output sink and the debug trace. Cancel-safe.
    ///
    /// # Errors
    ///
    /// The read failed, or there is no tokio runtime with IO enabled.
    pub async fn read_async(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let master = self.master.make_async(MASTER_INTEREST)?;
        match read_async(master, buf).await? {
            Chunk::Data(n) => Ok(n),
            Chunk::Again | Chunk::Eof => {
                self.eof = true;
                Ok(0)
            }
        }
    }

    /// Writes input to the command's terminal without blocking the runtime. Cancel-safe.
    ///
    /// # Errors
    ///
    /// The write failed, or there is no tokio runtime with IO enabled.
    pub async fn write_async(&mut self, data: &[u8]) -> io::Result<usize> {
        let master = self.master.make_async(MASTER_INTEREST)?;
        loop {
            let mut guard = master.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }

    /// [`Background::wait`] without blocking the runtime. Cancel-safe (dropping the
    /// future leaves the command running, owned by this `Background`).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the pidfd cannot be registered (no tokio runtime) or reaping
    /// failed.
    pub async fn wait_async(&mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        if !self.exited {
            let argv = &self.argv;
            let pidfd = self
                .pidfd
                .make_async(Interest::READABLE)
                .map_err(|e| os_error(argv, "registering the pidfd", e))?;
            pidfd.readable().await.map_err(|e| os_error(argv, "polling", e))?.retain_ready();
            self.exited = true;
        }
        let grace = self.options.kill_grace;
        self.end_session_async(grace, &mut Collector::discard(), false).await;
        self.reap()
    }

    /// [`Background::kill`] without blocking the runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if reaping failed.
    pub async fn kill_async(&mut self) -> Result<ExitStatus, Error> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let grace = self.options.kill_grace;
        self.end_session_async(grace, &mut Collector::discard(), false).await;
        self.reap()
    }

    /// [`Background::output`] without blocking the runtime: this is
    /// [`run_async`](crate::run_async) after [`run_bg`](crate::run_bg). Dropping the
    /// future before it completes kills the session (see the type's documentation).
    ///
    /// # Errors
    ///
    /// As [`Background::output`], and [`Error::Os`] if there is no tokio runtime with IO
    /// and time enabled.
    pub async fn output_async(self) -> Result<Output, Error> {
        self.output_async_inner(None).await
    }

    /// [`Background::output_async`], forwarding `input` to the command's terminal while
    /// it runs: data as it comes (never more than one read ahead, so memory stays bounded
    /// whatever the command does with it), then, at the end of the input, the terminal's
    /// end-of-file character (see [`Input`]). When the input is a terminal, changes of its
    /// window size (`SIGWINCH`) are passed on to the command's terminal; this installs a
    /// process-wide `SIGWINCH` handler (tokio's), which stays.
    ///
    /// The input's own terminal settings are not touched here: see [`Input::raw_mode`].
    /// Forwarding stops when the command exits.
    ///
    /// # Errors
    ///
    /// As [`Background::output_async`], and [`Error::Os`] if the input cannot be
    /// registered with the runtime or the `SIGWINCH` handler cannot be installed. A
    /// failing read of the input ends the input; a failing write to the terminal stops
    /// the forwarding; neither ends the run.
    pub async fn output_async_with_input(self, mut input: Input) -> Result<Output, Error> {
        let argv = &self.argv;
        input.register().map_err(|e| os_error(argv, "registering the input", e))?;
        let winch = if input.is_terminal() {
            let kind = tokio::signal::unix::SignalKind::window_change();
            let winch = tokio::signal::unix::signal(kind)
                .map_err(|e| os_error(argv, "handling SIGWINCH", e))?;
            Some(winch)
        } else {
            None
        };
        let mut forward = Forward {
            input,
            winch,
            read_buf: vec![0; INPUT_BUF_SIZE],
            pending: Vec::new(),
            written: 0,
            last: None,
            input_ended: false,
            stopped: false,
        };
        self.output_async_inner(Some(&mut forward)).await
    }

    async fn output_async_inner(mut self, forward: Option<&mut Forward>) -> Result<Output, Error> {
        let mut collector = Collector::new(&self.options);
        match self.collect_async(&mut collector, forward).await {
            Ok(()) => {
                let status = self.reap()?;
                Ok(self.finish(status, collector))
            }
            Err(Ok(stop)) => {
                let grace = self.options.kill_grace;
                self.end_session_async(grace, &mut collector, true).await;
                let status = self.reap()?;
                Err(self.stop_error(stop, status, collector))
            }
            Err(Err(error)) => Err(error),
        }
    }

    async fn collect_async(
        &mut self,
        collector: &mut Collector,
        mut forward: Option<&mut Forward>,
    ) -> Result<(), Result<Stop, Error>> {
        let argv = &self.argv;
        self.master
            .make_async(MASTER_INTEREST)
            .map_err(|e| Err(os_error(argv, "registering the pty", e)))?;
        self.pidfd
            .make_async(Interest::READABLE)
            .map_err(|e| Err(os_error(argv, "registering the pidfd", e)))?;
        let deadline =
            self.options.timeout.map(|t| tokio::time::Instant::from_std(self.started + t));
        let mut linger_until: Option<tokio::time::Instant> = None;
        let mut buf = vec![0; BUF_SIZE];
        let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
        let mut sleep = pin!(tokio::time::sleep_until(deadline.unwrap_or(far)));
        loop {
            if let Some(error) = collector.sink_error.take() {
                return Err(Ok(Stop::Sink(error)));
            }
            if self.exited && linger_until.is_none() {
                let grace = self.options.kill_grace;
                self.end_session_async(grace, collector, true).await;
                let until = tokio::time::Instant::now() + self.options.linger;
                linger_until = Some(until);
                let next = deadline.map_or(until, |d| d.min(until));
                sleep.as_mut().reset(next);
                continue;
            }
            if self.eof && self.exited {
                return Ok(());
            }
            // Checked on every turn, not only when the timer wins the `select!`: a command
            // that floods the terminal keeps the read branch ready all the time.
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Err(Ok(Stop::Timeout));
            }
            if linger_until.is_some_and(|l| l <= now) {
                tracing::warn!(pid = %self.pid, "the terminal is still open after the session ended; not reading further");
                return Ok(());
            }
            enum Event {
                Read(io::Result<Chunk>),
                Exited,
                Timer,
                Input(io::Result<usize>),
                Wrote(io::Result<usize>),
                Resize,
            }
            let (Handle::Async(master), Handle::Async(pidfd)) = (&self.master, &self.pidfd) else {
                unreachable!("registered above")
            };
            let forwarding = !self.exited && forward.as_ref().is_some_and(|f| !f.stopped);
            let (want_input, want_write, want_resize) = match &forward {
                Some(f) if forwarding => (
                    !f.input_ended && f.pending.is_empty(),
                    !f.pending.is_empty(),
                    f.winch.is_some(),
                ),
                _ => (false, false, false),
            };
            let (input_read, pending, winch) = match forward.as_deref_mut() {
                Some(f) => {
                    (Some((&f.input, &mut f.read_buf)), &f.pending[f.written..], f.winch.as_mut())
                }
                None => (None, &[][..], None),
            };
            // Unbiased: tokio polls the branches in a random order, so the child's exit is
            // noticed even while the terminal is always readable.
            let event = tokio::select! {
                read = read_async(master, &mut buf), if !self.eof => Event::Read(read),
                ready = pidfd.readable(), if !self.exited => {
                    if let Ok(mut guard) = ready {
                        guard.retain_ready();
                    }
                    Event::Exited
                }
                () = sleep.as_mut() => Event::Timer,
                read = read_input(input_read), if want_input => Event::Input(read),
                wrote = write_async(master, pending), if want_write => Event::Wrote(wrote),
                () = recv_winch(winch), if want_resize => Event::Resize,
            };
            if let Some(f) = forward.as_deref_mut() {
                match event {
                    Event::Input(read) => {
                        f.input_read(read, master.get_ref().as_fd());
                        continue;
                    }
                    Event::Wrote(wrote) => {
                        f.wrote(wrote);
                        continue;
                    }
                    Event::Resize => {
                        if let Err(error) = f.input.copy_window_size(master.get_ref().as_fd()) {
                            tracing::debug!(%error, "cannot pass the window size on");
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            match event {
                Event::Input(_) | Event::Wrote(_) | Event::Resize => {}
                Event::Read(Ok(Chunk::Data(n))) => collector.chunk(&buf[..n]),
                Event::Read(Ok(Chunk::Again | Chunk::Eof)) => self.eof = true,
                Event::Read(Err(error)) => return Err(Ok(Stop::Os("reading the pty", error))),
                Event::Exited => self.exited = true,
                Event::Timer => {
                    // The deadline or the linger time: acted on at the top of the loop.
                    let now = tokio::time::Instant::now();
                    let due = |at: Option<tokio::time::Instant>| at.is_some_and(|at| at <= now);
                    if !due(deadline) && !due(linger_until) {
                        sleep.as_mut().reset(far);
                    }
                }
            }
        }
    }

    /// [`Background::end_session`] without blocking the runtime.
    async fn end_session_async(&mut self, grace: Duration, collector: &mut Collector, drain: bool) {
        debug_assert!(self.status.is_none());
        let sid = self.pid.raw();
        let mut signal = if grace.is_zero() { SIGKILL } else { SIGTERM };
        for _ in 0..KILL_ROUNDS {
            let targets = session::members(sid, sid);
            if !self.exited {
                self.exited = self.pidfd_ready();
            }
            if targets.is_empty() && self.exited {
                return;
            }
            self.send(&targets, signal);
            let limit = if signal == SIGKILL { KILL_WAIT } else { grace };
            let mut registered = Vec::with_capacity(targets.len());
            for target in targets {
                match sys::register(target.pidfd, Interest::READABLE) {
                    Ok(fd) => registered.push(fd),
                    // Not registrable (no runtime, or out of resources): wait blocking.
                    Err(_) => return self.end_session(grace, collector, drain),
                }
            }
            if !self.exited && self.pidfd.make_async(Interest::READABLE).is_err() {
                return self.end_session(grace, collector, drain);
            }
            if drain && self.master.make_async(MASTER_INTEREST).is_err() {
                return self.end_session(grace, collector, drain);
            }
            let leader = if self.exited { None } else { self.pidfd.fd_async() };
            let master = if drain && !self.eof { self.master.fd_async() } else { None };
            let eof = wait_gone_async(&registered, leader, master, limit, collector).await;
            self.eof |= eof;
            if !self.exited {
                self.exited = self.pidfd_ready();
            }
            signal = SIGKILL;
        }
        tracing::warn!(pid = %self.pid, "processes of the session survived SIGKILL");
    }
}

/// Waits until every pidfd (and the leader's) is readable, or `limit`, reading the master
/// into the collector meanwhile if there is one. Returns whether the output ended.
async fn wait_gone_async(
    targets: &[AsyncFd<OwnedFd>],
    leader: Option<&AsyncFd<OwnedFd>>,
    master: Option<&AsyncFd<OwnedFd>>,
    limit: Duration,
    collector: &mut Collector,
) -> bool {
    let all_gone = async {
        for fd in targets.iter().chain(leader) {
            if let Ok(mut guard) = fd.readable().await {
                guard.retain_ready();
            }
        }
    };
    let mut all_gone = pin!(all_gone);
    let mut timer = pin!(tokio::time::sleep(limit));
    let mut buf = if master.is_some() { vec![0; BUF_SIZE] } else { Vec::new() };
    let mut eof = false;
    loop {
        let read = tokio::select! {
            biased;
            () = &mut all_gone => return eof,
            () = &mut timer => return eof,
            read = read_opt(master, &mut buf), if !eof => read,
        };
        match read {
            Ok(Chunk::Data(n)) => collector.chunk(&buf[..n]),
            Ok(Chunk::Again | Chunk::Eof) | Err(_) => eof = true,
        }
    }
}

fn os_error(argv: &Argv, operation: &'static str, source: io::Error) -> Error {
    Error::Os { cmd: argv.as_slice().to_vec(), operation, source }
}

/// Size of the buffer input is read into: one read ahead of the command at most.
const INPUT_BUF_SIZE: usize = 4096;

/// The state of forwarding an [`Input`] to the pty.
#[derive(Debug)]
struct Forward {
    input: Input,
    winch: Option<tokio::signal::unix::Signal>,
    read_buf: Vec<u8>,
    /// Read but not yet written to the pty (from `written` on).
    pending: Vec<u8>,
    written: usize,
    /// The last byte forwarded, to end an unfinished line before the end of input.
    last: Option<u8>,
    input_ended: bool,
    /// The pty refused input (the command is gone); nothing more is forwarded.
    stopped: bool,
}

impl Forward {
    fn input_read(&mut self, read: io::Result<usize>, master: BorrowedFd<'_>) {
        match read {
            Ok(n) if n > 0 => {
                self.pending.extend_from_slice(&self.read_buf[..n]);
                self.last = Some(self.read_buf[n - 1]);
            }
            other => {
                if let Err(error) = other {
                    tracing::debug!(%error, "reading the input failed; treating it as its end");
                }
                self.input_ended = true;
                self.pending = crate::input::end_of_input(master, self.last);
                tracing::trace!(eof_chars = self.pending.len(), "end of input");
            }
        }
    }

    fn wrote(&mut self, wrote: io::Result<usize>) {
        match wrote {
            Ok(n) => {
                self.written += n;
                if self.written >= self.pending.len() {
                    self.pending.clear();
                    self.written = 0;
                }
            }
            Err(error) => {
                tracing::debug!(%error, "the terminal takes no more input");
                self.stopped = true;
                self.pending.clear();
                self.written = 0;
            }
        }
    }
}

/// Reads the input if there is one, otherwise never ready.
async fn read_input(input: Option<(&Input, &mut Vec<u8>)>) -> io::Result<usize> {
    match input {
        Some((input, buf)) => input.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Waits for a `SIGWINCH` if there is a stream for it, otherwise never ready.
async fn recv_winch(winch: Option<&mut tokio::signal::unix::Signal>) {
    match winch {
        Some(winch) => {
            if winch.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Writes to the master once it is writable; cancel-safe.
async fn write_async(master: &AsyncFd<OwnedFd>, data: &[u8]) -> io::Result<usize> {
    loop {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| {
            loop {
                match nix::unistd::write(fd.get_ref(), data) {
                    Err(Errno::EINTR) => {}
                    other => return other.map_err(io::Error::from),
                }
            }
        }) {
            Ok(result) => return result,
            Err(_would_block) => {}
        }
    }
}

/// [`read_async`] if there is a master, otherwise never ready.
async fn read_opt(master: Option<&AsyncFd<OwnedFd>>, buf: &mut [u8]) -> io::Result<Chunk> {
    match master {
        Some(master) => read_async(master, buf).await,
        None => std::future::pending().await,
    }
}

/// Waits until the master is readable and reads it once.
async fn read_async(master: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<Chunk> {
    loop {
        let mut guard = master.readable().await?;
        match guard.try_io(|fd| match read_master(fd.get_ref().as_fd(), buf) {
            Ok(Chunk::Again) => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        }) {
            Ok(result) => return result,
            Err(_would_block) => {}
        }
    }
}

fn poll_timeout(wait: Duration) -> PollTimeout {
    if wait == Duration::MAX {
        return PollTimeout::NONE;
    }
    // Round up so a wait never ends just before its deadline.
    let millis = wait.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(millis.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}

impl io::Read for Background {
    /// Reads output, blocking until there is some; `Ok(0)` is the end of output. Bypasses
    /// the output sink and the debug trace.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        loop {
            match read_master(self.master.fd(), buf)? {
                Chunk::Data(n) => return Ok(n),
                Chunk::Eof => {
                    self.eof = true;
                    return Ok(0);
                }
                Chunk::Again => {
                    let mut fds = [PollFd::new(self.master.fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                }
            }
        }
    }
}

impl io::Write for Background {
    /// Writes input to the command's terminal, blocking while its buffer is full.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::write(self.master.fd(), data) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(self.master.fd(), PollFlags::POLLOUT)];
                    match poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                }
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Background {
    /// The pty master.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.master.fd()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.status.is_some() || self.detached {
            return;
        }
        self.end_session(Duration::ZERO, &mut Collector::discard(), false);
        if let Err(error) = self.reap() {
            tracing::error!(pid = %self.pid, %error, "cannot reap the command");
        }
    }
}
