//! Independent Python 3 peers (stdlib only): finding the interpreter, and [`Peer`], a
//! running peer whose output is read line by line with a timeout and which is killed when
//! it is dropped.
//!
//! The peers themselves (the scripts) stay beside the tests that use them: they are the
//! independent implementations the tests prove interoperability against. This module is
//! only the plumbing every such test used to write for itself.
//!
//! Two policies for a machine without `python3`, chosen by the caller:
//! - [`python3`]: the test needs it and fails, saying so (CI installs it: an
//!   interoperability test that silently does not run proves nothing there);
//! - [`python3_or_skip`]: the test prints why it skips and returns.

use std::{
    ffi::OsStr,
    io::{self, BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        mpsc::{self, RecvTimeoutError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// The interpreter the peers run with. Python 2 is never used.
pub const PYTHON3: &str = "python3";

/// Whether `python3 --version` runs and succeeds (asked once per process).
pub fn available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        Command::new(PYTHON3)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A command for `python3`, for a test that needs it.
///
/// # Panics
///
/// If `python3` does not run: the message says that the interoperability tests need it.
#[track_caller]
pub fn python3() -> Command {
    assert!(available(), "python3 is needed for the interoperability tests (the CI installs it)");
    Command::new(PYTHON3)
}

/// A command for `python3`, or `None` after printing why the calling test skips.
// A skipped test says why on its output, as the workspace's other skips do.
#[allow(clippy::print_stdout)]
pub fn python3_or_skip() -> Option<Command> {
    if available() {
        Some(Command::new(PYTHON3))
    } else {
        println!("skipped: python3 is not available");
        None
    }
}

/// A running peer. Its stdout is read on a thread of its own, so every wait for a line is
/// bounded by a timeout; its stdin is kept when the command asked for a pipe; it is killed
/// and reaped when dropped (a failing test leaves no peer behind). Its panics name the
/// caller's line.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use ave_test_support::python::{Peer, python3_or_skip};
///
/// let Some(mut command) = python3_or_skip() else { return };
/// command.args(["-c", "print('ready', flush=True); print(input().upper())"]);
/// command.stdin(std::process::Stdio::piped());
/// let mut peer = Peer::start(&mut command);
/// assert_eq!(peer.line(Duration::from_secs(10)), "ready");
/// peer.feed(b"hello\n".to_vec());
/// let end = peer.finish(Duration::from_secs(10));
/// assert!(end.status.success());
/// assert_eq!(end.stdout, "HELLO\n");
/// ```
#[derive(Debug)]
pub struct Peer {
    /// `None` once [`Peer::finish`] took it.
    child: Option<Child>,
    pid: u32,
    stdin: Option<ChildStdin>,
    feeder: Option<JoinHandle<io::Result<()>>>,
    lines: mpsc::Receiver<Vec<u8>>,
    what: String,
}

/// How a peer ended: its exit status and what it printed that no [`Peer::line`] read.
#[derive(Debug)]
pub struct Finished {
    /// The peer's exit status.
    pub status: ExitStatus,
    /// Its remaining stdout, as (lossy) UTF-8.
    pub stdout: String,
}

impl Peer {
    /// Starts `command` with its stdout piped (stdin and stderr as the command says).
    ///
    /// # Panics
    ///
    /// If the program cannot be started.
    pub fn start(command: &mut Command) -> Peer {
        let what = describe(command);
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the peer {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if tx.send(line).is_err() => break,
                    Ok(_) => {}
                }
            }
        });
        Peer {
            pid: child.id(),
            stdin: child.stdin.take(),
            child: Some(child),
            feeder: None,
            lines,
            what,
        }
    }

    /// The peer's next line of stdout, without its line end.
    ///
    /// # Panics
    ///
    /// If no line comes within `timeout`, or the output ends first.
    #[track_caller]
    pub fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                let line = String::from_utf8_lossy(&line);
                line.strip_suffix('\n').unwrap_or(&line).to_owned()
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("the peer {} printed no line within {timeout:?}", self.what)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the peer {} ended its output before the line awaited", self.what)
            }
        }
    }

    /// The port a server peer announces as its next line (the line is only a number).
    ///
    /// # Panics
    ///
    /// As [`Peer::line`], or if the line is not a port number.
    #[track_caller]
    pub fn port(&mut self, timeout: Duration) -> u16 {
        let line = self.line(timeout);
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port from the peer {}: {line:?}", self.what))
    }

    /// The peer's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// The peer's stdin.
    ///
    /// # Panics
    ///
    /// If the command did not ask for `Stdio::piped()` on stdin, or it was closed or fed.
    #[track_caller]
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("the peer's stdin is a pipe that is still open")
    }

    /// Writes `data` to the peer's stdin on a thread of its own, then closes it: a peer
    /// that prints before it has read everything cannot block the test.
    ///
    /// # Panics
    ///
    /// As [`Peer::stdin`]; the write's own failure is reported by [`Peer::finish`].
    #[track_caller]
    pub fn feed(&mut self, data: Vec<u8>) {
        let mut stdin = self.stdin.take().expect("the peer's stdin is a pipe that is still open");
        self.feeder = Some(thread::spawn(move || stdin.write_all(&data)));
    }

    /// Closes the peer's stdin (a peer reading to its end then goes on).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes the peer's stdin, reads the rest of its output and waits for its exit.
    ///
    /// # Panics
    ///
    /// If the peer does not end within `limit` (it is killed first), or writing what
    /// [`Peer::feed`] gave it failed.
    #[track_caller]
    pub fn finish(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        self.stdin = None;
        let mut stdout = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => stdout.extend(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.timed_out(limit),
            }
        }
        let mut child = self.child.take().expect("a peer is finished once");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(status) => status.expect("wait for the peer"),
            Err(_) => self.timed_out(limit),
        };
        if let Some(feeder) = self.feeder.take() {
            let written = feeder.join().expect("the thread feeding the peer");
            written.unwrap_or_else(|e| panic!("cannot write to the peer {}: {e}", self.what));
        }
        Finished { status, stdout: String::from_utf8_lossy(&stdout).into_owned() }
    }

    /// Kills the peer (by its pid: its `Child` may be on a waiting thread) and fails.
    #[track_caller]
    fn timed_out(&self, limit: Duration) -> ! {
        let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        panic!("the peer {} did not end within {limit:?} (killed)", self.what)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // Already gone is fine; anything else cannot be helped in a drop.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The program and its arguments, for messages (`python3 peer.py provider`).
fn describe(command: &Command) -> String {
    let words: Vec<&OsStr> =
        std::iter::once(command.get_program()).chain(command.get_args()).collect();
    let text: Vec<String> = words.iter().map(|w| w.to_string_lossy().into_owned()).collect();
    let text = text.join(" ");
    // A `-c` script can be long: its first line is enough to tell which peer it is.
    match text.split_once('\n') {
        Some((first, _)) => format!("`{first} ...`"),
        None => format!("`{text}`"),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        os::unix::process::ExitStatusExt,
        process::{Command, Stdio},
        time::{Duration, Instant},
    };

    use crate::python::{Peer, describe, python3_or_skip};

    const T: Duration = Duration::from_secs(10);

    /// A `sh` peer: the plumbing is the same for any program, and `sh` is always there.
    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn lines_ports_and_the_rest_of_the_output() {
        let mut peer = Peer::start(&mut sh("echo 4070; echo 'second line'; printf 'a\\nb'"));
        assert_eq!(peer.port(T), 4070);
        assert_eq!(peer.line(T), "second line");
        let end = peer.finish(T);
        assert!(end.status.success());
        assert_eq!(end.stdout, "a\nb");
    }

    #[test]
    fn stdin_is_fed_and_closed() {
        let mut command = sh("echo ready; cat; echo done");
        command.stdin(Stdio::piped());
        let mut peer = Peer::start(&mut command);
        assert_eq!(peer.line(T), "ready");
        // More than a pipe holds: the feeding thread keeps the test from blocking.
        let data = "x".repeat(200_000) + "\n";
        peer.feed(data.clone().into_bytes());
        let end = peer.finish(T);
        assert_eq!(end.stdout, data + "done\n");
    }

    #[test]
    fn stdin_can_be_written_then_closed() {
        let mut command = sh("read a; echo \"got $a\"; cat >/dev/null; echo eof");
        command.stdin(Stdio::piped());
        let mut peer = Peer::start(&mut command);
        writeln!(peer.stdin(), "one").unwrap();
        assert_eq!(peer.line(T), "got one");
        peer.close_stdin();
        assert_eq!(peer.line(T), "eof");
    }

    #[test]
    fn a_dropped_peer_is_killed_and_reaped() {
        let mut peer = Peer::start(&mut sh("echo up; exec sleep 60"));
        assert_eq!(peer.line(T), "up");
        let pid = peer.id();
        drop(peer);
        // Reaped: not even a zombie is left under this pid.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn a_peer_that_does_not_end_is_killed_at_the_limit() {
        let mut command = sh("echo up; exec sleep 60");
        let mut peer = Peer::start(&mut command);
        assert_eq!(peer.line(T), "up");
        let pid = peer.id();
        let started = Instant::now();
        let failed = std::thread::spawn(move || peer.finish(Duration::from_millis(300))).join();
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("did not end within 300ms (killed)"), "{message}");
        assert!(started.elapsed() < T);
        // The waiting thread reaps it once killed.
        let gone = Instant::now() + T;
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < gone, "the killed peer is still there");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_silent_peer_fails_the_wait_for_a_line() {
        let peer = Peer::start(&mut sh("exec sleep 60"));
        let failed = std::thread::spawn(move || {
            let mut peer = peer;
            peer.line(Duration::from_millis(100))
        })
        .join();
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("printed no line within 100ms"), "{message}");
        let ended = Peer::start(&mut sh("true"));
        let failed = std::thread::spawn(move || {
            let mut peer = ended;
            peer.line(T)
        })
        .join();
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("ended its output"), "{message}");
    }

    #[test]
    fn exit_statuses_and_signals_are_reported() {
        assert_eq!(Peer::start(&mut sh("exit 3")).finish(T).status.code(), Some(3));
        let end = Peer::start(&mut sh("kill -TERM $$")).finish(T);
        assert_eq!(end.status.signal(), Some(15));
    }

    #[test]
    fn a_script_is_described_by_its_first_line() {
        assert_eq!(describe(&sh("echo 1\necho 2")), "`sh -c echo 1 ...`");
        assert_eq!(describe(Command::new("python3").arg("peer.py")), "`python3 peer.py`");
    }

    #[test]
    fn python3_runs_when_it_is_there() {
        let Some(mut command) = python3_or_skip() else { return };
        let mut peer = Peer::start(command.args(["-c", "import sys; print(sys.version_info[0])"]));
        assert_eq!(peer.line(T), "3");
    }
}
