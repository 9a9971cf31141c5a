//! The blocking half of [`Background`]: waiting for the command (`try_wait`, `wait`,
//! `wait_timeout`, `kill`), ending its session and reaping it, collecting all output over
//! `poll` (`output`), and the blocking [`io::Read`] and [`io::Write`] of its terminal.

use std::{
    io,
    os::fd::AsFd,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::signal::{SIGCONT, SIGKILL, SIGTERM, Signal, killpg},
};

use crate::{
    Error, ExitStatus, Output,
    background::{
        BUF_SIZE, Background, Chunk, Collector, KILL_ROUNDS, KILL_WAIT, READS_PER_TURN, Stop,
        read_master,
    },
    session::{self, Member},
    sys,
};

impl Background {
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
    /// of [`Options::kill_grace`](crate::Options::kill_grace); then reaps the command. Returns its status.
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
    pub(super) fn reap(&mut self) -> Result<ExitStatus, Error> {
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
    pub(super) fn end_session(&mut self, grace: Duration, collector: &mut Collector, drain: bool) {
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
    pub(super) fn send(&self, targets: &[Member], signal: Signal) {
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
    pub(super) fn pidfd_ready(&self) -> bool {
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

    pub(super) fn finish(&self, status: ExitStatus, collector: Collector) -> Output {
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

    pub(super) fn stop_error(&self, stop: Stop, status: ExitStatus, collector: Collector) -> Error {
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
