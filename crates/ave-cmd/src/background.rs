//! `Background`: a running command, its pty and its session; and the loops that collect
//! its output, blocking (`poll`) and async (tokio `AsyncFd`).
//!
//! This file holds the handle and what both loops share (the descriptors, the collector of
//! output); `blocking.rs` the blocking API and its `poll` loop, `asynchronous.rs` the async
//! API and its tokio loop, `forward.rs` the forwarding of an input to the pty.

mod asynchronous;
mod blocking;
mod forward;

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    time::{Duration, Instant},
};

use nix::{errno::Errno, poll::PollFlags};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{Argv, Error, ExitStatus, Options, Pid, WindowSize, spawn::Started, sys};

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
}

fn os_error(argv: &Argv, operation: &'static str, source: io::Error) -> Error {
    Error::Os { cmd: argv.as_slice().to_vec(), operation, source }
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
