//! The async half of [`Background`], on tokio's `AsyncFd`: reading and writing the
//! terminal, waiting for and killing the command, and collecting all output
//! (`output_async`, optionally forwarding an [`Input`]) without blocking the runtime.

use std::{
    io,
    os::fd::{AsFd, OwnedFd},
    pin::pin,
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::signal::{SIGKILL, SIGTERM},
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    Error, ExitStatus, Input, Output,
    background::{
        BUF_SIZE, Background, Chunk, Collector, Handle, KILL_ROUNDS, KILL_WAIT, Stop,
        forward::{Forward, read_input, recv_winch},
        os_error, read_master,
    },
    session, sys,
};

/// What the async API waits for on the pty master.
const MASTER_INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

impl Background {
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
        let mut forward = Forward::new(input, winch);
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
