//! `ave run`: streaming, exit codes (124, 126, 127, 128+N), `--json`, `--output`,
//! `--cwd`, `--debug`, and signals to `ave run` itself.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::PathBuf,
    process::{Command, Stdio},
};

use ave_test_support::TempDir;
use serde_json::Value;

use crate::ave;

/// Starts `ave run` (`command`, whose script prints its session id and keeps two processes
/// in the session), checks that both run (`running` names the check), sends `ave run` the
/// signal, and returns its exit status and the session id.
fn signal_a_running_session(
    mut command: Command,
    signal: &str,
    running: &str,
) -> (std::process::ExitStatus, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let sid = line.trim().to_owned();
    assert_eq!(live_in_session(&sid).len(), 2, "{running}");
    let kill =
        Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    (child.wait().unwrap(), sid)
}

/// The live (not zombie) processes of session `sid`, from `/proc`.
fn live_in_session(sid: &str) -> Vec<String> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{name}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(3) == Some(&sid) && !matches!(fields.first(), Some(&("Z" | "X"))) {
            pids.push(name);
        }
    }
    pids
}

fn json(args: &[&str]) -> (Value, Option<i32>) {
    let out = ave(args);
    let text = String::from_utf8(out.stdout).unwrap();
    let value: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (value, out.status.code())
}

#[test]
fn output_is_merged_and_the_exit_code_is_the_commands() {
    let out = ave(&["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\r\nerr\r\n");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn exit_codes_follow_the_contract() {
    let cases: &[(&[&str], i32)] = &[
        (&["run", "true"], 0),
        (&["run", "sh", "-c", "exit 255"], 255),
        (&["run", "ls", "/this/does/not/exist"], 2),
        (&["run", "sh", "-c", "kill -9 $$"], 128 + 9),
        (&["run", "sh", "-c", "kill -TERM $$"], 128 + 15),
        (&["run", "--timeout", "0.2", "sleep", "10"], 124),
        (&["run", "this-program-does-not-exist"], 127),
        (&["run", "--cwd", "/nonexistent", "true"], 125),
    ];
    for (args, code) in cases {
        let out = ave(args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {out:?}");
    }
}

#[test]
fn a_program_that_cannot_be_executed_exits_126() {
    let dir = TempDir::new("cli-run");
    let file = dir.path().join("script");
    fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let out = ave(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot execute") && stderr.contains("Permission denied"), "{stderr}");
    assert!(stderr.starts_with("ave run: error: "), "{stderr}");
    let out = ave(&["run", "this-program-does-not-exist"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn a_timeout_ends_the_whole_session() {
    let out =
        ave(&["run", "--timeout", "0.3", "--", "sh", "-c", "echo $$; sleep 1000 & sleep 1000"]);
    assert_eq!(out.status.code(), Some(124));
    let sid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!sid.is_empty());
    assert_eq!(live_in_session(&sid), Vec::<String>::new());
    assert!(String::from_utf8(out.stderr).unwrap().contains("timed out"));
}

#[test]
fn json_reports_output_exit_timeout_and_duration() {
    let (value, code) = json(&["run", "--json", "--", "sh", "-c", "echo hi; exit 4"]);
    assert_eq!(code, Some(4));
    assert_eq!(value["output"], "hi\r\n");
    assert_eq!(value["exit"], serde_json::json!({ "code": 4 }));
    assert_eq!(value["timed_out"], false);
    assert!(value["duration_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(value.as_object().unwrap().len(), 4, "{value}");

    let (value, code) = json(&["run", "--json", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(code, Some(137));
    assert_eq!(value["exit"], serde_json::json!({ "signal": 9 }));

    let (value, code) =
        json(&["run", "--json", "--timeout", "1", "--", "sh", "-c", "echo so far; exec sleep 10"]);
    assert_eq!(code, Some(124));
    assert_eq!(value["timed_out"], true);
    assert_eq!(value["output"], "so far\r\n");
    assert_eq!(value["exit"], serde_json::json!({ "signal": 15 }));
    assert!(value["duration_s"].as_f64().unwrap() >= 1.0);

    let (value, code) = json(&["run", "--json", "this-program-does-not-exist"]);
    assert_eq!(code, Some(127));
    assert_eq!(value["exit"], serde_json::json!({ "code": 127 }));
    assert!(value["error"].as_str().unwrap().contains("No such file or directory"));
}

#[test]
fn output_goes_to_the_file_too() {
    let dir = TempDir::new("cli-run");
    let file = dir.path().join("out.log");
    let out =
        ave(&["run", "--output", file.to_str().unwrap(), "--", "sh", "-c", "echo one; echo two"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"one\r\ntwo\r\n");
    assert_eq!(fs::read(&file).unwrap(), b"one\r\ntwo\r\n");

    let (value, _) = json(&["run", "--json", "--output", file.to_str().unwrap(), "echo", "three"]);
    assert_eq!(value["output"], "three\r\n");
    assert_eq!(fs::read(&file).unwrap(), b"three\r\n");

    let out = ave(&["run", "--output", "/nonexistent/dir/file", "true"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn cwd_sets_the_working_directory() {
    let dir = TempDir::new("cli-run");
    let out = ave(&["run", "--cwd", dir.path().to_str().unwrap(), "pwd"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), dir.path().to_str().unwrap());
}

#[test]
fn debug_traces_on_stderr_and_is_silent_otherwise() {
    let out = ave(&["run", "--debug", "echo", "-n", "hello"]);
    assert_eq!(out.stdout, b"hello");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("echo -n hello") && stderr.contains("hello"), "{stderr}");

    let out = ave(&["run", "echo", "-n", "hello"]);
    assert_eq!(out.stdout, b"hello");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn arguments_after_the_command_are_its_own() {
    let out = ave(&["run", "echo", "--json", "-n", "--timeout"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"--json -n --timeout\r\n");
}

/// Output is streamed while the command runs; a signal to `ave run` ends the command's
/// session and exits 128+N.
#[test]
fn output_streams_and_signals_end_the_session() {
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
        command.args(["run", "--", "sh", "-c", "sleep 1000 & echo $$; exec sleep 1000"]);
        let (status, sid) =
            signal_a_running_session(command, signal, "the command runs while its output streams");
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert_eq!(live_in_session(&sid), Vec::<String>::new(), "SIG{signal}");
    }
}

/// `--timeout` takes the CLI's durations: seconds or a number with a unit; junk, negatives
/// and NaN are usage errors (exit 2) that say why.
#[test]
fn timeout_takes_durations_with_units() {
    let out = ave(&["run", "--timeout", "200ms", "sleep", "10"]);
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    for ok in ["0", "2m", "1h", "1.5"] {
        let out = ave(&["run", "--timeout", ok, "true"]);
        assert_eq!(out.status.code(), Some(0), "{ok}: {out:?}");
    }
    for (bad, reason) in [
        ("-1", "cannot be negative"),
        ("nan", "is not a duration"),
        ("inf", "is not a duration"),
        ("10x", "unknown unit `x`"),
        ("99999999999999999999h", "too long a duration"),
    ] {
        let out = ave(&["run", "--timeout", bad, "true"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(reason) && stderr.contains("--timeout"), "{bad}: {stderr}");
    }
}

/// Options are options until `--` or the command: a misspelt option before the command is
/// a usage error with clap's suggestion, not a program that cannot be found.
#[test]
fn an_unknown_option_before_the_command_is_a_usage_error() {
    let out = ave(&["run", "--timout", "3", "true"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--timout") && stderr.contains("--timeout"), "{stderr}");
    assert!(!stderr.contains("cannot execute"), "{stderr}");

    // After `--`, a hyphenated word is the command.
    let out = ave(&["run", "--", "--timout"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    // After the command, options are the command's.
    let out = ave(&["run", "--timeout", "5s", "echo", "--timout", "-x"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"--timout -x\r\n");
}

/// The exit codes are in `ave run --help`.
#[test]
fn help_lists_the_exit_codes() {
    let out = ave(&["run", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for code in ["124", "125", "126", "127", "128+N", "141"] {
        assert!(text.contains(code), "`ave run --help` lacks {code}:\n{text}");
    }
    assert!(text.contains("held in memory"), "--json says it holds the output:\n{text}");
}

/// Every catchable signal that would end `ave run` ends the command's whole session first,
/// including a process that ignores SIGHUP, and `ave run` exits 128+N.
#[test]
fn terminating_signals_end_the_whole_session() {
    let signals = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("USR1", 10),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("IO", 29),
        ("PWR", 30),
        // The first and last real-time signals (procps `kill` takes them by number).
        ("34", 34),
        ("64", 64),
    ];
    for (signal, number) in signals {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
        command
            .args(["run", "--", "sh", "-c", "trap '' HUP; sleep 1000 & echo $$; exec sleep 1000"])
            .stdin(Stdio::null());
        let (status, sid) =
            signal_a_running_session(command, signal, &format!("SIG{signal}: the command runs"));
        assert_eq!(status.code(), Some(128 + number), "SIG{signal}: {status:?}");
        assert_eq!(live_in_session(&sid), Vec::<String>::new(), "SIG{signal}");
    }
}

/// `ave run` wrapped in coreutils `timeout`, so a run that would hang fails instead.
fn bounded_run(args: &[&str]) -> Command {
    let mut command = Command::new("timeout");
    command.args(["-s", "KILL", "30", env!("CARGO_BIN_EXE_ave"), "run"]).args(args);
    command
}

/// Piped stdin reaches the command, and its end becomes the terminal's end of file, so
/// `echo piped | ave run -- cat` finishes (the terminal echoes the input, as under
/// `script`). An unfinished last line ends too.
#[test]
fn piped_input_is_forwarded_and_its_end_ends_the_command() {
    for (input, expected) in
        [(&b"piped\n"[..], &b"piped\r\npiped\r\n"[..]), (b"abc", b"abcabc"), (b"", b"")]
    {
        let mut child = bounded_run(&["--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{input:?}: {out:?}");
        assert_eq!(out.stdout, expected, "{input:?}");
    }
}

/// More input than any buffer, to a command that reads it all: nothing is lost or
/// reordered, and the run ends.
#[test]
fn large_piped_input_arrives_whole() {
    let dir = TempDir::new("cli-run");
    let file = dir.path().join("input");
    let line = "0123456789".repeat(10);
    let text: String = (0..3000).map(|i| format!("{i} {line}\n")).collect();
    fs::write(&file, &text).unwrap();
    let out = bounded_run(&["--", "sh", "-c", "stty -echo; cksum"])
        .stdin(fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let expected = Command::new("cksum").stdin(fs::File::open(&file).unwrap()).output().unwrap();
    let ours = String::from_utf8(out.stdout).unwrap();
    let theirs = String::from_utf8(expected.stdout).unwrap();
    assert!(ours.ends_with(&theirs.replace('\n', "\r\n")), "{ours:?} vs {theirs:?}");
}

/// `ave run -- cat </dev/null` finishes: the end of an empty input is an end of file too.
#[test]
fn dev_null_input_ends_the_command() {
    let out = bounded_run(&["--", "cat"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"");
    let out = bounded_run(&["--", "sh", "-c", "read line; echo \"read: $?\""])
        .stdin(fs::File::open("/dev/null").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"read: 1\r\n", "{out:?}");
}

/// A terminal to stand for the user's: a pty this test opens, whose slave is `ave run`'s
/// stdin.
struct Terminal {
    master: std::fs::File,
    slave: std::os::fd::OwnedFd,
    path: PathBuf,
}

impl Terminal {
    fn open(rows: u16, cols: u16) -> Terminal {
        let size = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let path = nix::unistd::ttyname(&pty.slave).unwrap();
        Terminal { master: std::fs::File::from(pty.master), slave: pty.slave, path }
    }

    fn settings(&self) -> nix::sys::termios::Termios {
        nix::sys::termios::tcgetattr(&self.slave).unwrap()
    }

    /// `ave run ARGS` with this terminal as stdin and stdout piped.
    fn spawn(&self, args: &[&str]) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ave"))
            .arg("run")
            .args(args)
            .stdin(self.slave.try_clone().unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        (child, stdout)
    }
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

fn same_mode(a: &nix::sys::termios::Termios, b: &nix::sys::termios::Termios) -> bool {
    a.local_flags == b.local_flags
        && a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.control_flags == b.control_flags
}

/// With a terminal as stdin: it is raw while the command runs (keys reach the command
/// unchanged), the command's terminal starts with its window size and follows its changes
/// (SIGWINCH), and its settings are restored when `ave run` ends, normally or by a signal.
#[test]
fn a_terminal_stdin_is_raw_for_the_run_follows_the_window_and_is_restored() {
    use nix::sys::termios::LocalFlags;

    let mut terminal = Terminal::open(30, 100);
    let cooked = terminal.settings();
    assert!(cooked.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO));
    let script = "import os, signal\n\
        signal.alarm(20)\n\
        size = lambda: print('size', *os.get_terminal_size(0), flush=True)\n\
        signal.signal(signal.SIGWINCH, lambda *_: size())\n\
        size()\n\
        print('read', repr(os.read(0, 10)), flush=True)\n";
    let (mut child, mut stdout) =
        terminal.spawn(&["--timeout", "30", "--", "python3", "-c", script]);
    assert_eq!(read_line(&mut stdout), "size 100 30\r\n");

    let raw = terminal.settings();
    for flag in [LocalFlags::ICANON, LocalFlags::ECHO, LocalFlags::ISIG] {
        assert!(!raw.local_flags.contains(flag), "{flag:?} is still on while the command runs");
    }

    // The user's terminal changes size: the command sees it.
    let stty = Command::new("stty")
        .args(["-F", terminal.path.to_str().unwrap(), "rows", "40", "cols", "120"])
        .status()
        .unwrap();
    assert!(stty.success());
    let kill = Command::new("kill").args(["-WINCH", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    assert_eq!(read_line(&mut stdout), "size 120 40\r\n");

    // A key typed in raw mode (no newline needed on our side): the command's own
    // terminal turns the carriage return into its newline.
    terminal.master.write_all(b"q\r").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.ends_with("read b'q\\n'\r\n"), "{rest:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(same_mode(&terminal.settings(), &cooked), "the terminal's settings are restored");

    // Ended by a signal: restored as well.
    let script = "import time; print('ready', flush=True); time.sleep(30)";
    let (mut child, mut stdout) =
        terminal.spawn(&["--timeout", "30", "--", "python3", "-c", script]);
    assert_eq!(read_line(&mut stdout), "ready\r\n");
    assert!(!terminal.settings().local_flags.contains(LocalFlags::ICANON));
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(same_mode(&terminal.settings(), &cooked), "restored after SIGTERM");
}

/// A FIFO every process of a command's session holds open for writing (the script opens
/// it as descriptor 3), and a thread that reads it: its end of file says they are all gone.
struct Held {
    _dir: TempDir,
    path: PathBuf,
    gone: std::sync::mpsc::Receiver<()>,
}

impl Held {
    fn new() -> Held {
        let dir = TempDir::new("cli-run");
        let path = dir.path().join("held");
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
        let (gone_tx, gone) = std::sync::mpsc::channel();
        let reader_path = path.clone();
        std::thread::spawn(move || {
            let mut reader = fs::File::open(reader_path).unwrap();
            let mut sink = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut sink).unwrap();
            let _ = gone_tx.send(());
        });
        Held { _dir: dir, path, gone }
    }

    /// `exec 3>FIFO`, for the start of a script.
    fn open_it(&self) -> String {
        format!("exec 3>'{}'", self.path.display())
    }

    /// Waits (at most 30 s) until every process that held the FIFO is gone; kills what is
    /// left of session `sid` if not, and fails.
    fn wait_gone(&self, sid: &str) {
        let gone = self.gone.recv_timeout(std::time::Duration::from_secs(30));
        if gone.is_err() {
            let left = live_in_session(sid);
            for pid in &left {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            panic!("the session outlived `ave run`: {left:?}");
        }
        // A dying process closes its files a moment before it becomes a zombie: wait for
        // the exit itself (on pidfds, from Python) of those not yet reported dead.
        let left = live_in_session(sid);
        let script = "import os, select, sys\n\
            for pid in sys.argv[1:]:\n\
            \x20   try:\n\
            \x20       fd = os.pidfd_open(int(pid))\n\
            \x20   except ProcessLookupError:\n\
            \x20       continue\n\
            \x20   if not select.select([fd], [], [], 30)[0]:\n\
            \x20       sys.exit(1)\n";
        let waited = Command::new("python3").args(["-c", script]).args(&left).status().unwrap();
        assert!(waited.success(), "still alive: {left:?}");
        assert_eq!(live_in_session(sid), Vec::<String>::new());
    }
}

/// `SIGKILL` cannot be caught, yet the command's session still dies with `ave run`: even
/// processes that ignore the terminal's hangup (`SIGHUP`).
#[test]
fn sigkill_of_ave_run_still_ends_the_session() {
    let held = Held::new();
    let script = format!("trap '' HUP; {}; sleep 1000 & echo $$; exec sleep 1000", held.open_it());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ave"))
        .args(["run", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let sid = line.trim().to_owned();
    assert_eq!(live_in_session(&sid).len(), 2, "the command runs");

    child.kill().unwrap();
    assert_eq!(ExitStatusExt::signal(&child.wait().unwrap()), Some(9));
    held.wait_gone(&sid);
}

/// A terminal left raw by an `ave run` killed with `SIGKILL` is restored too.
#[test]
fn sigkill_of_ave_run_restores_the_terminal() {
    use nix::sys::termios::LocalFlags;

    let terminal = Terminal::open(24, 80);
    let cooked = terminal.settings();
    let held = Held::new();
    let script = format!("trap '' HUP; {}; echo $$; exec sleep 1000", held.open_it());
    let (mut child, mut stdout) = terminal.spawn(&["--", "sh", "-c", &script]);
    let sid = read_line(&mut stdout).trim().to_owned();
    assert!(!terminal.settings().local_flags.contains(LocalFlags::ICANON), "raw while it runs");
    child.kill().unwrap();
    child.wait().unwrap();
    // The guard restores the terminal before it ends the session.
    held.wait_gone(&sid);
    assert!(same_mode(&terminal.settings(), &cooked), "restored after SIGKILL");
}

/// `ave run CMD &` from an interactive shell: stdin is the terminal, but `ave run` is in a
/// background process group. It must leave the terminal alone (changing its mode or
/// reading it would stop `ave run` with SIGTTOU or SIGTTIN) and run the command.
#[test]
fn a_background_job_leaves_the_terminal_alone() {
    let terminal = Terminal::open(24, 80);
    let cooked = terminal.settings();
    // A session on the terminal (`setsid -c`) whose shell runs `ave run` as a job of its
    // own (`set -m`), in the background.
    let script =
        format!("set -m; '{}' run -- echo hi & wait $!; echo status=$?", env!("CARGO_BIN_EXE_ave"));
    let out = Command::new("timeout")
        .args(["-s", "KILL", "30", "setsid", "-c", "sh", "-c", &script])
        .stdin(terminal.slave.try_clone().unwrap())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "hi\r\nstatus=0\n", "{out:?}");
    assert!(same_mode(&terminal.settings(), &cooked));
}
