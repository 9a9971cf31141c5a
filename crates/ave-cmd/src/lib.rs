//! Run external programs on a fresh pseudoterminal, in a new session, with a timeout
//! that ends the whole process tree.
//!
//! This is the Rust rebuild of AVE's `ave.cmd`. A command runs in its own session with a
//! new pty as its controlling terminal and as its stdin, stdout and stderr, so its output
//! arrives merged in the order it was written and unbuffered (programs see a terminal).
//! Most users reach this crate through the facade, as `ave::cmd`.
//!
//! - [`run`] runs a command to its end and returns its [`Output`]: the bytes, and a typed
//!   [`ExitStatus`] (`Exited(code)` or `Signaled(signal)`; the original's signed-byte code
//!   is [`ExitStatus::legacy_code`]).
//! - [`run_async`] does the same inside a tokio runtime without blocking it.
//! - [`run_bg`] starts a command and returns a [`Background`] at once: its pid, its pty
//!   master, reads, writes, waits (blocking and async) and kills. Dropping it never leaves
//!   a zombie or an open pty.
//! - [`Options`] sets the timeout, working directory, an output [`Sink`] that gets every
//!   chunk as it arrives, debug tracing, environment changes and the window size.
//! - [`Input`] is input for a command's terminal: [`Background::output_async_with_input`]
//!   forwards it (usually stdin) as if typed, turns its end into the terminal's
//!   end-of-file character, and passes window-size changes on; [`RawMode`] keeps a
//!   terminal raw for the run.
//! - [`Guard`] is a helper process that ends the watched sessions (and restores the
//!   terminal) if this process dies without doing it, e.g. by `SIGKILL`.
//! - [`Error`] says why a command did not run to its end, and converts into the
//!   original's wire exceptions (`Timeout`, `RunError`) as an
//!   [`AveException`](ave_exceptions::AveException).
//!
//! A command is an [`Argv`]: a list of arguments, or a string split on whitespace (there
//! is no shell).
//!
//! # Behaviour
//!
//! - **Timeout**: the whole session is ended, `SIGTERM` (and `SIGCONT`) first, `SIGKILL`
//!   after [`Options::kill_grace`]; processes that ignore `SIGHUP` and `SIGTERM` included.
//!   The error is [`Error::Timeout`] with the output so far.
//! - **End of a run**: once the command has exited, whatever is left of its session is
//!   ended the same way, then everything written to the pty is read: all output is
//!   drained before the end of output is declared, and the exit status is the real one
//!   however the exit and the end of output are ordered. A daemon that left the session
//!   (`setsid`) and closed the terminal survives.
//! - **Exec failure** is reported by the parent ([`Error::Exec`], with the operating
//!   system's text, e.g. "No such file or directory"); the child never runs any code of
//!   the caller: it is started with `posix_spawn`.
//! - **No waiting by sleeping**: the runner blocks on the pty and on a pidfd of the child
//!   (`poll`, or tokio's reactor in the async API).
//! - **Clean children**: no descriptor of the caller leaks into the child (close-on-exec
//!   descriptors, and `close_range` in the child for the ones others opened without it);
//!   the child's signal dispositions and mask are reset to the defaults.
//! - The terminal is as the kernel makes it: 38400 baud, echo on, `\n` written as `\r\n`,
//!   with a window of 24 rows of 80 columns unless [`Options::window_size`] says otherwise.
//!   The environment is the caller's, changed as the options say.
//!
//! Requires Linux 5.3 or later (pidfds) and glibc 2.34 or later.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use ave_cmd::{Error, ExitStatus, Options, run};
//!
//! let out = run(["sh", "-c", "echo out; echo err >&2; exit 3"], &Options::new())?;
//! assert_eq!(out.status, ExitStatus::Exited(3));
//! assert_eq!(out.text(), "out\r\nerr\r\n");
//!
//! let slow = run("sleep 10", &Options::new().timeout(Duration::from_millis(100)));
//! assert!(matches!(slow, Err(Error::Timeout { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod argv;
mod background;
mod error;
mod guard;
mod input;
mod options;
mod output;
mod session;
mod spawn;
mod sys;

use std::future::Future;

pub use crate::{
    argv::Argv,
    background::Background,
    error::Error,
    guard::Guard,
    input::{Input, RawMode},
    options::{Options, Sink, WindowSize},
    output::{ExitStatus, Output, Pid},
};

/// The live processes (zombies left out) of the session whose id is `session`, such as
/// the session of a command started by [`run_bg`] (its pid): empty once every process of
/// it is gone.
///
/// ```
/// use ave_cmd::{Options, run_bg, session_members};
///
/// let mut command = run_bg(["sh", "-c", "sleep 0.1 & wait"], &Options::new())?;
/// let session = command.pid();
/// assert!(session_members(session).contains(&session));
/// command.wait()?;
/// assert!(session_members(session).is_empty());
/// # Ok::<(), ave_cmd::Error>(())
/// ```
pub fn session_members(session: Pid) -> Vec<Pid> {
    session::members(session.raw(), 0).into_iter().map(|m| Pid::from_raw(m.pid)).collect()
}

/// Runs a command on a fresh pty and returns its output once it has exited and its output
/// has ended.
///
/// Blocks the calling thread; inside an async runtime use [`run_async`].
///
/// # Errors
///
/// [`Error::EmptyCommand`], [`Error::Cwd`] and [`Error::Exec`] if it could not start;
/// [`Error::Timeout`] if it ran longer than the options' timeout; [`Error::Sink`] if the
/// output sink failed; [`Error::Os`] if a system call of the runner failed. In every case
/// the command's session has been ended and the command reaped.
pub fn run(cmd: impl Into<Argv>, options: &Options) -> Result<Output, Error> {
    run_bg(cmd, options)?.output()
}

/// Starts a command on a fresh pty and returns at once.
///
/// The options' timeout applies to [`Background::output`] (counted from now); the output
/// sink and debug trace apply to what `output` and `output_async` read.
///
/// # Errors
///
/// [`Error::EmptyCommand`], [`Error::Cwd`], [`Error::Exec`], or [`Error::Os`] if no pty
/// could be allocated.
pub fn run_bg(cmd: impl Into<Argv>, options: &Options) -> Result<Background, Error> {
    let argv = cmd.into();
    let started = spawn::start(&argv, options)?;
    Ok(Background::new(argv, options.clone(), started))
}

/// [`run`] for async code: a future that runs the command when first polled, without
/// blocking the runtime. It needs a tokio runtime with IO and time enabled, is `Send` and
/// `'static` (so it can be spawned), and dropping it before it completes kills the
/// command's whole session.
///
/// ```no_run
/// # async fn example() -> Result<(), ave_cmd::Error> {
/// let out = ave_cmd::run_async("uname -a", &ave_cmd::Options::new()).await?;
/// println!("{}", out.text());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// As [`run`].
pub fn run_async(
    cmd: impl Into<Argv>,
    options: &Options,
) -> impl Future<Output = Result<Output, Error>> + Send + 'static {
    let argv = cmd.into();
    let options = options.clone();
    async move { run_bg(argv, &options)?.output_async().await }
}
