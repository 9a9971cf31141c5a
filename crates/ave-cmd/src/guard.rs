//! `Guard`: a helper process that ends the sessions of commands this process started when
//! this process dies without ending them (`SIGKILL`, a fault, an abort), and puts the
//! terminal back the way it was.

use std::{
    fs, io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::{
        signal::{SIGKILL, Signal, killpg},
        termios::{self, SetArg, Termios},
    },
    unistd::{Pid as NixPid, setpgid},
};

use crate::{Pid, session, sys};

/// A helper process that ends the sessions it watches if this process dies while they
/// run, including by `SIGKILL`, which no handler sees.
///
/// [`Background`](crate::Background) ends a command's session on every way its owner
/// leaves it (return, error, panic, a dropped future, and so a signal the owner handles).
/// Only the death of the whole process escapes that; a process that ignores `SIGHUP` then
/// survives the terminal's hangup. A `Guard` covers that case: [`Guard::start`] forks a
/// small process that waits on a pipe. [`Guard::watch`] tells it a session; when the pipe
/// reports its end without a goodbye, which happens exactly when this process is gone,
/// the guard:
///
/// 1. restores the settings of this process's stdin as they were when the guard started,
///    if it is a terminal and this process was not a background job of it (so a terminal
///    left raw by [`RawMode`](crate::RawMode) is usable again);
/// 2. sends `SIGKILL` to every process of each watched session (found by their session
///    id, with pidfds, round after round, so forks in between are caught) and to its
///    process group;
/// 3. exits.
///
/// Dropping the `Guard` says goodbye: the helper exits without touching anything, and is
/// reaped.
///
/// What can still escape: processes that left the session (`setsid`, as daemons do, on
/// purpose); a session that forks faster than eight rounds of `SIGKILL`; everything, if
/// the guard itself is killed (it ignores the keyboard's signals and `SIGHUP`, and sits
/// in a process group of its own, but `kill -9` of it, the OOM killer, or a stop of the
/// whole control group takes it along). Between this process's death and the guard's
/// scan, the session id could in theory be reused by a new session: only after every
/// process of the old session is gone and the kernel's pid counter has wrapped around.
///
/// ```no_run
/// use ave_cmd::{Guard, Options, run_bg};
///
/// // First thing in `main`, while the process has a single thread.
/// let mut guard = Guard::start()?;
/// let background = run_bg(["sleep", "10"], &Options::new())?;
/// guard.watch(background.pid())?;
/// let output = background.output()?;
/// drop(guard);
/// # let _ = output;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Guard {
    pid: Pid,
    pipe: Option<OwnedFd>,
}

/// Messages on the pipe: a session to watch or to forget (followed by its id as 4
/// little-endian bytes), or goodbye.
const WATCH: u8 = b'w';
const FORGET: u8 = b'f';
const GOODBYE: u8 = b'g';

/// Rounds of killing a session (a process may fork while the previous round is killed).
const KILL_ROUNDS: usize = 8;

/// How long each round waits for the processes to die.
const KILL_WAIT: Duration = Duration::from_secs(2);

impl Guard {
    /// Starts the guard process (a `fork` of this one).
    ///
    /// # Errors
    ///
    /// The process has more than one thread (a `fork` would then be unsound: start the
    /// guard first thing in `main`, before any runtime or thread), or the pipe or the
    /// `fork` failed.
    pub fn start() -> io::Result<Guard> {
        let threads = thread_count()?;
        if threads != 1 {
            return Err(io::Error::other(format!(
                "a guard must be started while the process has one thread (it has {threads})"
            )));
        }
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // Read now: the guard puts the terminal back as it is before anyone changes it. A
        // terminal of which this process is a background job belongs to another job: the
        // guard leaves it alone.
        let stdin = io::stdin();
        let stdin_settings = if crate::input::is_background(stdin.as_fd()) {
            None
        } else {
            termios::tcgetattr(&stdin).ok()
        };
        match sys::fork_single_threaded()? {
            None => {
                drop(write);
                guard_main(read, stdin_settings)
            }
            Some(pid) => {
                drop(read);
                tracing::debug!(pid, "guard started");
                Ok(Guard { pid: Pid::from_raw(pid), pipe: Some(write) })
            }
        }
    }

    /// The guard process's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Watches the session `session` (a command's pid, from
    /// [`Background::pid`](crate::Background::pid)): it is ended if this process dies
    /// before [`Guard::forget`] or the drop of the guard.
    ///
    /// # Errors
    ///
    /// The guard is gone (the pipe is broken).
    pub fn watch(&mut self, session: Pid) -> io::Result<()> {
        self.send(WATCH, Some(session))
    }

    /// Stops watching `session` (once its command has been reaped, its id may be reused).
    ///
    /// # Errors
    ///
    /// The guard is gone (the pipe is broken).
    pub fn forget(&mut self, session: Pid) -> io::Result<()> {
        self.send(FORGET, Some(session))
    }

    fn send(&mut self, kind: u8, session: Option<Pid>) -> io::Result<()> {
        let Some(pipe) = &self.pipe else { return Err(io::ErrorKind::BrokenPipe.into()) };
        let mut message = vec![kind];
        if let Some(session) = session {
            message.extend_from_slice(&session.raw().to_le_bytes());
        }
        // Messages are 5 bytes at most: a pipe write that small is atomic and whole.
        let written = nix::unistd::write(pipe, &message)?;
        if written == message.len() { Ok(()) } else { Err(io::ErrorKind::WriteZero.into()) }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.send(GOODBYE, None);
        self.pipe = None;
        if let Err(error) = sys::waitpid(self.pid.raw(), false) {
            tracing::warn!(pid = %self.pid, %error, "cannot reap the guard");
        }
    }
}

/// The number of threads of this process.
fn thread_count() -> io::Result<usize> {
    Ok(fs::read_dir("/proc/self/task")?.count())
}

/// The guard process: never returns. It was forked from a single-threaded process, so it
/// may allocate and read `/proc` like any program.
fn guard_main(pipe: OwnedFd, stdin_settings: Option<Termios>) -> ! {
    // Out of the way of the keyboard's signals and of the terminal's hangup: only the
    // pipe ends the guard.
    let _ = setpgid(NixPid::from_raw(0), NixPid::from_raw(0));
    // Restoring the terminal from a background process group must not stop it (SIGTTOU).
    for ignored in
        [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTSTP, Signal::SIGHUP, Signal::SIGTTOU]
    {
        let _ = sys::ignore_signal(ignored);
    }
    let keep_stdin = stdin_settings.is_some();
    close_others(&pipe, keep_stdin);

    let mut sessions: Vec<i32> = Vec::new();
    let mut buf = [0u8; 5];
    let mut len = 0;
    loop {
        match nix::unistd::read(&pipe, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
        match buf[0] {
            GOODBYE => sys::exit_now(0),
            WATCH | FORGET if len == 5 => {
                let sid = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
                if buf[0] == WATCH {
                    sessions.push(sid);
                } else {
                    sessions.retain(|&s| s != sid);
                }
                len = 0;
            }
            WATCH | FORGET => {}
            _ => len = 0,
        }
    }
    // The other end is closed without a goodbye: the process that started us is gone.
    if let Some(settings) = stdin_settings {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &settings);
    }
    for sid in sessions {
        kill_session(sid);
    }
    sys::exit_now(0)
}

/// Closes every descriptor but the pipe (and stdin if it is kept); stdout and stderr
/// become `/dev/null`, so the guard holds no pipe a reader waits on.
fn close_others(pipe: &OwnedFd, keep_stdin: bool) {
    let null = fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    if let Ok(null) = &null {
        let first = if keep_stdin { 1 } else { 0 };
        for target in first..=2 {
            let _ = sys::dup_onto(null.as_fd(), target);
        }
    }
    let keep = [pipe.as_raw_fd(), 0, 1, 2];
    let Ok(entries) = fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    let null_fd = null.as_ref().map(AsRawFd::as_raw_fd).ok();
    for fd in fds {
        if !keep.contains(&fd) && Some(fd) != null_fd {
            sys::close_raw(fd);
        }
    }
}

/// `SIGKILL` to every process of session `sid` and its process group, in rounds, each
/// waiting (bounded) for the processes to die.
fn kill_session(sid: i32) {
    for round in 0..KILL_ROUNDS {
        let members = session::members(sid, 0);
        if members.is_empty() && round > 0 {
            return;
        }
        for member in &members {
            let _ = sys::pidfd_send_signal(member.pidfd.as_fd(), SIGKILL as i32);
        }
        let _ = killpg(NixPid::from_raw(sid), SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        for member in &members {
            let wait = deadline.saturating_duration_since(Instant::now());
            let millis = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(member.pidfd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::try_from(millis).unwrap_or(PollTimeout::ZERO));
        }
    }
}
