//! `Input`: a descriptor whose data is forwarded to a command's terminal, whose end
//! becomes the terminal's end-of-file character, and which, when it is a terminal itself,
//! can be put in raw mode and lends its window size; `RawMode` restores it.

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios},
};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{WindowSize, sys};

/// Input for a command's terminal, forwarded by
/// [`Background::output_async_with_input`](crate::Background::output_async_with_input):
/// what is read from the descriptor is written to the pty as if typed, and the end of the
/// input becomes the terminal's end-of-file character (`VEOF`, normally Ctrl-D), as
/// util-linux `script` does, so `echo piped | cmd` and `cmd </dev/null` see their input
/// end.
///
/// The descriptor can be anything readable: a pipe, a terminal, a socket, a regular file
/// or `/dev/null`. It is never switched to non-blocking mode (that flag is shared with
/// every process holding the same open file, such as the shell that started us); it is
/// read only when `poll` says a read will not block, or, for files that cannot be polled,
/// read directly (such reads do not block).
///
/// When the input is a terminal ([`Input::is_terminal`]), the caller usually puts it in
/// raw mode for the run ([`Input::raw_mode`]) so keys reach the command unchanged (Ctrl-C
/// included), and starts the command with its window size ([`Input::window_size`]);
/// the forwarding loop then passes on window-size changes (`SIGWINCH`).
///
/// ```no_run
/// use ave_cmd::{Input, Options, run_bg};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let input = Input::stdin()?;
/// let mut options = Options::new();
/// if let Some(size) = input.window_size() {
///     options = options.window_size(size.rows, size.cols);
/// }
/// // Raw for the run, restored when `_raw` is dropped (also when the future is dropped).
/// let _raw = if input.is_terminal() { Some(input.raw_mode()?) } else { None };
/// let output = run_bg(["cat"], &options)?.output_async_with_input(input).await?;
/// # let _ = output;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Input {
    source: Source,
    terminal: bool,
}

#[derive(Debug)]
enum Source {
    /// A descriptor epoll can watch (pipe, terminal, socket).
    Async(AsyncFd<OwnedFd>),
    /// One it cannot (regular file, `/dev/null`): reads never block.
    Plain(OwnedFd),
    /// Not yet registered with the runtime (registration needs one).
    Unregistered(OwnedFd),
    /// Only while registering.
    Moving,
}

impl Input {
    /// Input from this descriptor (see the type's documentation for what it may be).
    pub fn new(fd: OwnedFd) -> Input {
        let terminal = termios::tcgetattr(&fd).is_ok();
        Input { source: Source::Unregistered(fd), terminal }
    }

    /// Input from a duplicate of this process's standard input (close-on-exec).
    ///
    /// # Errors
    ///
    /// The `dup` failed (no standard input, or the descriptor limit).
    pub fn stdin() -> io::Result<Input> {
        Ok(Input::new(io::stdin().as_fd().try_clone_to_owned()?))
    }

    /// Whether the input is a terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Whether the input is this process's controlling terminal while this process is in
    /// a background process group of it (`ave run ... &` in an interactive shell). Then
    /// reading the input or changing its mode would stop the process (`SIGTTIN`,
    /// `SIGTTOU`): leave it alone, and run without input.
    pub fn is_background(&self) -> bool {
        self.terminal && is_background(self.fd())
    }

    /// The input terminal's window size; `None` if it is not a terminal or reports no
    /// size (0 by 0).
    pub fn window_size(&self) -> Option<WindowSize> {
        if !self.terminal {
            return None;
        }
        let (rows, cols) = sys::window_size(self.fd()).ok()?;
        (rows > 0 && cols > 0).then_some(WindowSize { rows, cols })
    }

    /// Puts the input terminal in raw mode (no echo, no line editing, no signals from
    /// keys, no output processing: `cfmakeraw`) until the returned guard is dropped, which
    /// restores the settings it had. Restoring also happens when a future holding the
    /// guard is dropped; only a process that dies without unwinding (`SIGKILL`, a fault)
    /// leaves the terminal raw, which a [`Guard`](crate::Guard) started before repairs.
    ///
    /// # Errors
    ///
    /// The input is not a terminal, or its settings cannot be read or changed.
    pub fn raw_mode(&self) -> io::Result<RawMode> {
        RawMode::enable(self.fd())
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::Async(fd) => fd.get_ref().as_fd(),
            Source::Plain(fd) | Source::Unregistered(fd) => fd.as_fd(),
            Source::Moving => unreachable!("only moving inside `register`"),
        }
    }

    /// Registers the descriptor with the current runtime, or keeps it plain if epoll
    /// cannot watch it (`EPERM` for regular files and `/dev/null`).
    pub(crate) fn register(&mut self) -> io::Result<()> {
        if !matches!(self.source, Source::Unregistered(_)) {
            return Ok(());
        }
        let Source::Unregistered(fd) = std::mem::replace(&mut self.source, Source::Moving) else {
            unreachable!("matched just above")
        };
        match sys::register(fd, Interest::READABLE) {
            Ok(fd) => self.source = Source::Async(fd),
            Err((fd, error)) if error.raw_os_error() == Some(libc::EPERM) => {
                self.source = Source::Plain(fd);
            }
            Err((fd, error)) => {
                self.source = Source::Unregistered(fd);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Reads what is there (waiting until there is something); `Ok(0)` is the end of the
    /// input. A hung-up terminal (`EIO`) is an end too. Cancel-safe.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.source {
            Source::Plain(fd) | Source::Unregistered(fd) => read_now(fd.as_fd(), buf),
            Source::Async(fd) => loop {
                let mut guard = fd.readable().await?;
                let result = guard.try_io(|fd| {
                    // The descriptor is blocking: read only what `poll` promises.
                    let mut fds = [PollFd::new(fd.get_ref().as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::ZERO) {
                        Ok(0) | Err(Errno::EINTR) => Err(io::ErrorKind::WouldBlock.into()),
                        Ok(_) => read_now(fd.get_ref().as_fd(), buf),
                        Err(errno) => Err(errno.into()),
                    }
                });
                if let Ok(result) = result {
                    return result;
                }
            },
            Source::Moving => unreachable!("only moving inside `register`"),
        }
    }

    /// Copies the input terminal's window size to `terminal` (after `SIGWINCH`).
    pub(crate) fn copy_window_size(&self, terminal: BorrowedFd<'_>) -> io::Result<()> {
        let (rows, cols) = sys::window_size(self.fd())?;
        sys::set_window_size(terminal, rows, cols)
    }
}

/// Whether `fd` is this process's controlling terminal and this process is not in its
/// foreground process group. A terminal that is not the controlling one (`tcgetpgrp`
/// fails) sends no job-control signals, so it is never "background".
pub(crate) fn is_background(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::tcgetpgrp(fd).is_ok_and(|group| group != nix::unistd::getpgrp())
}

/// One read that does not block (the caller checked), retried on `EINTR`.
fn read_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        return match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            Err(Errno::EIO) => Ok(0),
            other => other.map_err(io::Error::from),
        };
    }
}

/// What a pty needs to see its input end: the terminal's end-of-file character if the
/// terminal is in canonical mode, twice if the last line was not ended (the first one
/// only hands the partial line to the reader). Nothing in non-canonical (raw) mode, where
/// no character means "end of file": a program that set raw mode sees no end, as under
/// `script`.
pub(crate) fn end_of_input(terminal: BorrowedFd<'_>, last: Option<u8>) -> Vec<u8> {
    // On Linux the master reports the slave's settings.
    let Ok(settings) = termios::tcgetattr(terminal) else { return Vec::new() };
    if !settings.local_flags.contains(LocalFlags::ICANON) {
        return Vec::new();
    }
    let eof = settings.control_chars[SpecialCharacterIndices::VEOF as usize];
    let line_ended = matches!(last, None | Some(b'\n' | b'\r'));
    if line_ended { vec![eof] } else { vec![eof, eof] }
}

/// A terminal in raw mode, restored to its former settings on drop. From
/// [`Input::raw_mode`].
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    fn enable(fd: BorrowedFd<'_>) -> io::Result<RawMode> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let fd = fd.try_clone_to_owned()?;
        termios::tcsetattr(&fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Let the output written so far reach the screen in the mode it was written for.
        if let Err(error) = termios::tcsetattr(&self.fd, SetArg::TCSADRAIN, &self.saved) {
            tracing::warn!(%error, "cannot restore the terminal's settings");
        }
    }
}
