//! Processes, daemons, deferred joins, signals and hickup dumps (the original's process,
//! daemon, defjoin, hickup and pipe tests, and acceptance scenarios D), through the
//! fixture programs `process_cases` and `process_control`: they fork, which this
//! multi-threaded harness must not do.
//!
//! Waits are bounded: a process is checked in a loop until a deadline, never after a
//! fixed sleep.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use ave::network::{
    BlockingRemoteControl,
    wire::handshake::{self, Algorithm, CHALLENGE_PREFIX},
};
use ave_test_support::TempDir;
use nix::sys::signal::{Signal, kill};
use serde_json::{Value, json};

const CASES: &str = env!("CARGO_BIN_EXE_process_cases");
const CONTROL: &str = env!("CARGO_BIN_EXE_process_control");

/// Runs a case to its end: every JSON line it printed, and its stderr.
fn run_case(case: &str, dir: Option<&Path>) -> (Vec<Value>, String) {
    let mut command = Command::new(CASES);
    command.arg(case);
    if let Some(dir) = dir {
        command.arg(dir);
    }
    let out = command.output().expect("run process_cases");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{case} failed: {}\n{stdout}\n{stderr}", out.status);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{case}: {e}: {l:?}")))
        .collect();
    (lines, stderr)
}

/// The report (last line) of a case.
fn report(case: &str, dir: Option<&Path>) -> Value {
    let (lines, stderr) = run_case(case, dir);
    let last = lines.last().cloned().unwrap_or_else(|| panic!("{case} printed nothing: {stderr}"));
    assert!(last.get("error").is_none(), "{case}: {last}");
    last
}

/// A fixture that keeps running: its stdout lines arrive on a channel.
struct Fixture {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Fixture {
    fn start(program: &str, args: &[&str]) -> Fixture {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Fixture { child, lines }
    }

    /// The next JSON line, within `within`.
    fn line(&self, within: Duration) -> Value {
        let line = self.lines.recv_timeout(within).expect("a line from the fixture in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pid(value: &Value) -> i32 {
    i32::try_from(value.as_i64().expect("a pid")).expect("a pid")
}

/// `(state, ppid)` from `/proc/<pid>/stat`, `None` once the process is gone.
fn stat(pid: i32) -> Option<(String, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 2..].split_whitespace().collect();
    Some((fields[0].to_owned(), fields[1].parse().ok()?))
}

/// Whether a process is gone (a zombie waiting for init counts as gone) within `within`.
fn gone_within(pid: i32, within: Duration) -> bool {
    wait_until(within, || stat(pid).is_none_or(|(state, _)| state == "Z" || state == "X"))
}

/// Checks `condition` until it holds or `within` has passed.
fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(pid: i32, signal: Signal) {
    let _ = kill(nix::unistd::Pid::from_raw(pid), signal);
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

// ----- Process -----

#[test]
fn every_ending_has_its_status_and_raw_status() {
    let r = report("statuses", None);
    for (case, text, raw) in [
        ("ok", "exited 0", 0),
        ("fails", "exited 1", 256),
        ("exit-code", "exited 7", 1792),
        ("exit-fails", "exited 2", 512),
        ("panic", "exited 1", 256),
        // The default SIGTERM handling exits 15, as the original (status 3840).
        ("sigterm", "exited 15", 3840),
        ("sigkill", "killed by signal 9 (SIGKILL)", 9),
    ] {
        assert_eq!(r[case], json!({"text": text, "raw": raw}), "{case}");
    }
    let join = &r["join"];
    assert_eq!(join["timeout"], "timed out");
    assert_eq!(join["timeout_is_timeout"], true);
    assert!(join["waited_ms"].as_u64().unwrap() >= 100, "{join}");
    assert_eq!(join["nohang_running"], true);
    assert_eq!(join["first"], "exited 15");
    assert_eq!(join["second"], "exited 15");
    assert_eq!(join["nohang_ended"], "exited 15");
    assert_eq!(join["kill_after_join"], json!({"ok": "sent"}));
}

#[test]
fn the_child_never_returns_into_the_caller() {
    let (lines, stderr) = run_case("never-returns", None);
    let r = lines.last().unwrap();
    let parent = &r["parent"];
    let after: Vec<&Value> = lines.iter().filter(|l| l.get("after_start").is_some()).collect();
    // One line per start, each printed by the parent: no child came back from `start`.
    assert_eq!(after.len(), 5, "{lines:?}");
    assert!(after.iter().all(|l| &l["after_start"] == parent), "{lines:?}");
    for case in ["panic-in-target", "panic-unsynchronized", "error-unsynchronized"] {
        assert!(r[case]["start"]["ok"].is_i64(), "{case}: {r}");
        assert_eq!(r[case]["status"]["text"], "exited 1", "{case}");
    }
    let failed = text(&r["failing-initialize"]["start"]["error"]);
    assert!(
        failed.contains("failed to initialize: initialize() failed: no initialization today")
            && failed.ends_with("(exited 1)"),
        "{failed}"
    );
    let panicked = text(&r["panic-in-close-fds"]["start"]["error"]);
    assert!(
        panicked.contains("a step before the target panicked: close_fds panicked"),
        "{panicked}"
    );
    assert_eq!(r["panic-in-close-fds"]["status"]["text"], "exited 1");
    // The original's log lines for a failing target.
    assert!(stderr.contains(" -- Exception in target():\npanicked: boom"), "{stderr}");
    assert!(stderr.contains(" -- Exception in initialize():\ninitialize() failed"), "{stderr}");
}

#[test]
fn a_synchronized_start_cannot_hang() {
    let r = report("early-death", None);
    // A child that dies before reporting: an error at once, with its status.
    let died = text(&r["died"]["start"]["error"]);
    assert!(died.ends_with("ended before it was initialized (exited 3)"), "{died}");
    assert!(r["died"]["ms"].as_u64().unwrap() < 5_000, "{r}");
    assert_eq!(r["died"]["status"], "exited 3");
    // A child that never reports: an error after the timeout; it can still be killed.
    let slow = text(&r["slow"]["start"]["error"]);
    assert!(slow.ends_with("did not report that it was initialized within 300ms"), "{slow}");
    let ms = r["slow"]["ms"].as_u64().unwrap();
    assert!((300..10_000).contains(&ms), "{r}");
    assert_eq!(r["slow"]["pid_known"], true);
    assert_eq!(r["slow"]["status"], "killed by signal 9 (SIGKILL)");
    // The same for a daemon.
    let daemon = text(&r["daemon"]["start"]["error"]);
    assert!(daemon.ends_with("ended before it was initialized"), "{daemon}");
}

#[test]
fn kernel_names_are_set_before_a_synchronized_start_returns() {
    // process t3 and t4, and the 15-byte limit.
    let r = report("names", None);
    assert_eq!(r["t3"]["comm"], "proc_t3");
    assert_eq!(r["t4"]["comm"], "proc_t4");
    assert_eq!(r["long"], json!({"comm": "ave-broker-sess", "name": "ave-broker-session"}));
    assert_eq!(r["default"]["comm"], "ave-Process");
}

#[test]
fn a_daemon_is_the_process_it_reports() {
    // process t2 and t9: the pid comes back through synchronize; join refuses.
    let r = report("daemon", None);
    let pid = r["pid"].as_i64().unwrap();
    // The daemon's own getpid() matches the pid `start` returned.
    assert_eq!(r["told"]["getpid"].as_i64(), Some(pid), "{r}");
    // Re-parented: not to us nor to the intermediate child (the session leader).
    let ppid = r["ppid"].as_i64().unwrap();
    assert_ne!(ppid, r["parent"].as_i64().unwrap());
    assert_ne!(ppid, r["session"].as_i64().unwrap());
    assert_eq!(r["told"]["parent"].as_i64(), Some(ppid));
    // A new session, led by the intermediate child, so the daemon cannot get a terminal.
    assert_eq!(r["session"], r["pgrp"]);
    assert_ne!(r["session"].as_i64(), Some(pid));
    assert_ne!(r["session"], r["parent_session"]);
    assert_eq!(r["cwd"], "/");
    assert_eq!(r["umask"], "0022");
    assert_eq!(r["comm"], "ave-daemon-t");
    assert_eq!(r["join"], "target process is not a child");
    assert_eq!(r["is_alive"], "target process is not a child");
    assert_eq!(r["gone_after_terminate"], true);
    assert_eq!(r["unsynchronized"]["existed"], true);
    assert_eq!(r["unsynchronized"]["gone"], true);
}

#[test]
fn is_alive_does_not_reap() {
    // process t7: alive, then not within 1.5 s of terminate; a join still works after.
    let r = report("is-alive", None);
    assert_eq!(r["before"], true);
    assert_eq!(r["after"], false);
    assert_eq!(r["status"], json!({"text": "exited 15", "raw": 3840}));
}

#[test]
fn a_process_with_threads_is_not_forked_unless_the_caller_opts_in() {
    let r = report("threads", None);
    let refused = text(&r["refused"]["error"]);
    assert!(refused.starts_with("refusing to fork ave-Process: this process runs 1 other thread"));
    assert!(refused.contains("Process::allow_threads"), "{refused}");
    assert_eq!(r["refused_pid"], false);
    assert_eq!(r["allowed"], "exited 0");
    assert_eq!(r["again"], "exited 0");
}

#[test]
fn a_child_keeps_only_the_descriptors_it_is_given() {
    let r = report("fds", None);
    let child = r["child"].as_object().unwrap();
    let parent = &r["parent"];
    let kept = parent["kept"].to_string();
    assert!(text(&child[&kept]).starts_with("pipe:"), "{r}");
    for fd in ["0", "1", "2"] {
        assert!(child.contains_key(fd), "{r}");
    }
    // The parent's file and listening socket are closed (their numbers may be reused,
    // e.g. by the child's own listing of /proc/self/fd).
    assert!(!child.values().any(|t| t == &parent["file_path"]), "the file leaked: {r}");
    // Its Unix sockets are placeholders of the child's own (see ChildContext::close_fds).
    for fd in parent["unix"].as_array().unwrap() {
        assert_eq!(child[&fd.to_string()], "anon_inode:[eventfd]", "{r}");
    }
    assert!(!child.values().any(|t| text(t).starts_with("socket:")), "{r}");
    assert_eq!(r["status"], "exited 0");
}

#[test]
fn pipes_carry_frames_of_any_size_and_deliver_after_a_hang_up() {
    let r = report("pipe", None);
    assert_eq!(r["big_ok"], true);
    assert_eq!(r["second"], json!({"text": "ünïcödé \u{1F600}", "n": [1, 2.5, null]}));
    assert_eq!(r["small"], json!((0..50).collect::<Vec<i32>>()));
    assert_eq!(r["after"], "connection closed");
    assert_eq!(r["after_is_closed"], true);
}

#[test]
fn log_lines_have_the_original_format() {
    let (lines, stderr) = run_case("log", None);
    let child = lines.last().unwrap()["pid"].as_i64().unwrap();
    let mut seen = Vec::new();
    for line in stderr.lines().filter(|l| l.contains(" ave-logger ")) {
        // `Sun Nov 22 00:23:30 2026 ave-logger 8138 -- start PID=8138`
        let (stamp, rest) = line.split_at(24);
        let words: Vec<&str> = stamp.split(' ').filter(|w| !w.is_empty()).collect();
        assert_eq!(words.len(), 5, "{line}");
        assert!(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].contains(&words[0]), "{line}");
        assert_eq!(words[3].len(), 8, "{line}");
        let rest: Vec<&str> = rest.trim_start().splitn(4, ' ').collect();
        assert_eq!(rest[0], "ave-logger");
        assert_eq!(rest[2], "--");
        seen.push((rest[1].parse::<i64>().unwrap(), rest[3].to_owned()));
    }
    assert!(seen.contains(&(child, format!("start PID={child}"))), "{stderr}");
    assert!(seen.contains(&(child, "hello from the target".to_owned())), "{stderr}");
    assert!(seen.contains(&(child, format!("exit PID={child} code=0"))), "{stderr}");
    // The parent logs its own actions with its own pid.
    assert!(
        seen.iter().any(|(p, m)| *p != child && m.starts_with("terminate by PID=")),
        "{stderr}"
    );
    assert!(seen.iter().any(|(p, m)| *p != child && m.starts_with("join by PID=")), "{stderr}");
}

#[test]
fn a_child_started_inside_a_runtime_builds_its_own() {
    let r = report("from-runtime", None);
    assert!(r["child"]["port"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["status"], "exited 0");
    assert_eq!(r["own_signal"], true);
}

#[test]
fn the_death_signal_reaches_only_the_children_that_asked_for_it() {
    // process t6, and a positive control held pending so that it can be observed.
    let r = report("death-signal", None);
    assert_eq!(r["status"], "exited 15");
    assert_eq!(r["without"]["sigterm_pending"], false, "{r}");
    assert_eq!(r["without"]["alive"], true);
    assert_ne!(r["without"]["ppid"], r["child"]);
    assert_eq!(r["with"]["sigterm_pending"], true, "{r}");
}

#[test]
fn a_grandchild_dies_with_its_parent() {
    // process t5: SIGKILL the child; its grandchild ends within a second.
    let fixture = Fixture::start(CASES, &["orphan"]);
    let pids = fixture.line(Duration::from_secs(20));
    let (child, grandchild) = (pid(&pids["child"]), pid(&pids["grandchild"]));
    assert_eq!(stat(grandchild).map(|s| s.1), Some(child));
    signal(child, Signal::SIGKILL);
    assert!(gone_within(grandchild, Duration::from_secs(1)), "the grandchild outlived its parent");
}

#[test]
fn orphans_are_cleaned_up_when_the_starting_process_is_killed() {
    let fixture = Fixture::start(CASES, &["orphan"]);
    let pids = fixture.line(Duration::from_secs(20));
    let (parent, child, grandchild) =
        (pid(&pids["parent"]), pid(&pids["child"]), pid(&pids["grandchild"]));
    signal(parent, Signal::SIGKILL);
    assert!(gone_within(child, Duration::from_secs(1)), "the child outlived the parent");
    assert!(gone_within(grandchild, Duration::from_secs(1)), "the grandchild outlived them");
}

// ----- Daemon -----

#[test]
fn daemon_start_stop_and_pid_file() {
    // daemon t01-t03.
    let dir = TempDir::new("e2e-daemon-lifecycle");
    let r = report("daemon-lifecycle", Some(dir.path()));
    let pid = r["pid"].as_i64().unwrap();
    assert_eq!(r["pid_file"], pid.to_string());
    assert_ne!(r["ppid"], r["parent"]);
    assert_ne!(r["session"].as_i64(), Some(pid));
    let path = dir.path().join("lifecycle.pid");
    assert_eq!(r["start_again"], format!("pid file {} exist", path.display()));
    assert_eq!(r["stop"], json!({"ok": "stopped"}));
    assert_eq!(r["gone"], true);
    assert_eq!(r["pid_file_after"], false);
    assert_eq!(r["get_pid"], Value::Null);
    let log = text(&r["log"]);
    assert!(log.contains(&format!(" ave-mock-daemon {pid} -- start PID={pid}\n")), "{log}");
    assert!(log.contains(&format!(" ave-mock-daemon {pid} -- SIGTERM exit PID={pid}\n")), "{log}");
}

#[test]
fn daemon_restart_starts_a_new_instance() {
    // daemon t04.
    let dir = TempDir::new("e2e-daemon-restart");
    let r = report("daemon-restart", Some(dir.path()));
    assert_ne!(r["first"], r["second"]);
    assert_eq!(r["pid_file"], r["second"].to_string());
    assert_eq!(r["both_running"], true);
    assert_ne!(r["second_ppid"], r["parent"]);
    let missing = dir.path().join("none.pid");
    assert_eq!(r["restart_without_file"], format!("pid file {} does not exist", missing.display()));
    assert_eq!(r["second_gone"], true);
    assert_eq!(r["first_alive_after_stop"], true);
    assert_eq!(r["first_gone"], true);
}

#[test]
fn a_daemon_that_returns_removes_its_pid_file() {
    // daemon t05.
    let dir = TempDir::new("e2e-daemon-quick");
    let r = report("daemon-quick", Some(dir.path()));
    assert_eq!(r["gone"], true);
    assert_eq!(r["pid_file_after"], false);
}

#[test]
fn daemon_streams_and_log_can_share_a_file() {
    // daemon t06.
    let dir = TempDir::new("e2e-daemon-streams");
    let r = report("daemon-streams", Some(dir.path()));
    assert_eq!(r["gone"], true);
    let log = text(&r["log"]);
    for expected in [" -- print to log file\n", "print to stdout\n", "print to stderr\n"] {
        assert!(log.contains(expected), "{expected:?} missing: {log}");
    }
}

#[test]
fn a_failing_daemon_logs_why_and_leaves_no_pid_file() {
    // daemon t07 and t10.
    let dir = TempDir::new("e2e-daemon-crash");
    let r = report("daemon-crash", Some(dir.path()));
    assert_ne!(r["ppid_right_after_start"], r["parent"]);
    assert_eq!(r["gone"], true);
    let path = text(&r["pid_path"]);
    assert_eq!(r["stop"], format!("pid file {path} does not exist"));
    assert_eq!(r["blocked"], format!("pid file {path} exist"));
    assert!(r["stale"]["ok"].is_i64(), "a stale pid file blocked a start: {r}");
    assert_eq!(r["stale_gone"], true);
    let log = text(&r["log"]);
    assert!(log.contains(" -- Exception in target():\ngood news everyone!\n"), "{log}");
    assert!(log.contains(" code=1\n"), "{log}");
}

#[test]
fn an_overlapping_restart_keeps_the_new_pid_file() {
    // daemon t08.
    let dir = TempDir::new("e2e-daemon-overlap");
    let r = report("daemon-overlap", Some(dir.path()));
    assert_eq!(r["p1_gone"], true);
    assert_eq!(r["pid_file_after_p1"], r["p2"].to_string());
    assert_eq!(r["stop"], json!({"ok": "stopped"}));
    assert_eq!(r["p2_gone"], true);
    assert_eq!(r["pid_file_after_stop"], false);
}

#[test]
fn daemons_serving_a_control_share_a_pid_file() {
    // daemon t09, "DUST".
    let dir = TempDir::new("e2e-daemon-dust");
    let r = report("daemon-dust", Some(dir.path()));
    assert_eq!(r["stop"], json!({"ok": "stopped"}));
    assert_eq!(r["get_pid"], Value::Null);
    assert_eq!(r["p2_gone"], true);
    assert_eq!(r["p1_gone"], true);
}

#[test]
fn stopping_a_daemon_that_ignores_sigterm_ends_with_sigkill() {
    let dir = TempDir::new("e2e-daemon-stubborn");
    let r = report("daemon-stubborn", Some(dir.path()));
    assert_eq!(r["stop"], json!({"ok": "stopped"}));
    // It got SIGTERM, ignored it, and was killed after the stop timeout (300 ms).
    assert!(text(&r["log"]).contains(": termination requested\n"), "{r}");
    assert!(r["ms"].as_u64().unwrap() >= 250, "{r}");
    assert_eq!(r["gone"], true);
    assert_eq!(r["pid_file_after"], false);
}

// ----- A Control in a child: signals, hickup dumps, deferred joins -----

/// The `process_control` fixture: a Control served by a child.
struct Server {
    fixture: Fixture,
    pid: i32,
    port: u16,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let fixture = Fixture::start(CONTROL, args);
        let up = fixture.line(Duration::from_secs(20));
        let port = u16::try_from(up["port"].as_u64().expect("a port")).expect("a port");
        Server { pid: pid(&up["pid"]), port, fixture }
    }

    fn client(&self, key: Option<&str>) -> BlockingRemoteControl {
        client(self.port, key)
    }

    /// The fixture's last line: how the server ended.
    fn ended(&self) -> Value {
        self.fixture.line(Duration::from_secs(20))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal(self.pid, Signal::SIGKILL);
    }
}

fn client(port: u16, key: Option<&str>) -> BlockingRemoteControl {
    BlockingRemoteControl::new(("127.0.0.1", port), key).with_timeout(Some(Duration::from_secs(20)))
}

fn call(client: &BlockingRemoteControl, method: &str, args: Value) -> Value {
    let args: Vec<Value> = args.as_array().cloned().unwrap_or_default();
    client.call(method, args).unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn pids(value: &Value) -> Vec<i32> {
    value.as_array().expect("a list").iter().map(pid).collect()
}

#[test]
fn a_control_process_shuts_down_cleanly_on_sigterm() {
    // Acceptance scenario 25 and 30.
    let dir = TempDir::new("e2e-control-sigterm");
    let events = dir.path().join("events");
    let server = Server::start(&["--events", events.to_str().unwrap()]);
    let c = server.client(None);
    assert_eq!(call(&c, "sync_ping", json!([])), "pong");
    assert_eq!(call(&c, "get_pid", json!([])), json!(server.pid));
    assert_eq!(call(&c, "get_comm", json!([])), "ave-MockControl");
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/comm", server.pid)).unwrap(),
        "ave-MockControl\n"
    );
    // A raw connection, idle when the signal arrives.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut challenge = [0; 35];
    raw.read_exact(&mut challenge).unwrap();
    signal(server.pid, Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(1), || {
            fs::read_to_string(&events).unwrap_or_default().contains("shutdown Signal(15)")
        }),
        "no shutdown event within 1 s"
    );
    assert!(gone_within(server.pid, Duration::from_secs(2)));
    // The connection is closed, without an exit message.
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(server.ended()["status"], "exited 0");
}

#[test]
fn a_child_control_dies_with_its_parent_unless_death_signalling_is_off() {
    // Acceptance scenario 29 (process t5, t6, control_async t28).
    let server = Server::start(&[]);
    let made = call(&server.client(None), "make_child", json!([]));
    let child = pid(&made[1]);
    assert_eq!(stat(child).map(|s| s.1), Some(server.pid));
    assert_eq!(fs::read_to_string(format!("/proc/{child}/comm")).unwrap(), "ave-MockControl\n");
    signal(server.pid, Signal::SIGKILL);
    assert!(gone_within(child, Duration::from_millis(1500)), "the child outlived its parent");

    let server = Server::start(&[]);
    let made = call(&server.client(None), "make_child", json!([]));
    let (port, child) = (u16::try_from(made[0].as_u64().unwrap()).unwrap(), pid(&made[1]));
    let c = client(port, None);
    call(&c, "disable_death_signalling", json!([]));
    signal(server.pid, Signal::SIGTERM);
    assert!(gone_within(server.pid, Duration::from_secs(2)));
    for _ in 0..10 {
        assert_eq!(call(&c, "sync_ping", json!([])), "pong");
    }
    assert_ne!(stat(child).map(|s| s.1), Some(server.pid));
    signal(child, Signal::SIGTERM);
    assert!(gone_within(child, Duration::from_secs(2)));
}

/// The dump files in `<home>/.ave/hickup`.
fn dumps(home: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(home.join(".ave/hickup"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn sigusr1_writes_a_hickup_dump_and_the_server_goes_on() {
    // hickup t01, t02, t05; acceptance scenario 31.
    let home = TempDir::new("e2e-hickup-dump");
    let server = Server::start(&["--home", home.path().to_str().unwrap(), "--authkey", "sekrit"]);
    let c = server.client(Some("sekrit"));
    assert_eq!(call(&c, "get_pid", json!([])), json!(server.pid));
    signal(server.pid, Signal::SIGUSR1);
    assert!(wait_until(Duration::from_secs(3), || dumps(home.path()).len() == 1));
    assert_eq!(call(&c, "get_pid", json!([])), json!(server.pid));
    let dump = &dumps(home.path())[0];
    let name = dump.file_name().unwrap().to_str().unwrap();
    // <YYYYmmdd-HHMMSS>-<proc_name>-<pid>
    let (stamp, rest) = name.split_at(15);
    assert!(stamp.bytes().enumerate().all(|(i, b)| if i == 8 {
        b == b'-'
    } else {
        b.is_ascii_digit()
    }));
    assert_eq!(rest, format!("-ave-MockControl-{}", server.pid));
    assert_eq!(fs::metadata(dump).unwrap().permissions().mode() & 0o777, 0o600);
    let content = fs::read_to_string(dump).unwrap();
    assert!(
        content.contains(&format!("process: ave-MockControl (pid {}, parent ", server.pid)),
        "{content}"
    );
    assert!(content.contains(&format!("threads:\n  {} ave-MockControl ", server.pid)), "{content}");
    assert!(content.contains(&format!("listening: 127.0.0.1:{}", server.port)), "{content}");
    assert!(content.contains("established, identity: the primary key"), "{content}");
    assert!(content.contains("kept by the test service: 0"), "{content}");
    assert!(!content.contains("sekrit"), "a key leaked into the dump: {content}");
    // kill(SIGUSR1) three times from an RPC: each call returns, and each gives one more
    // dump, even within the same second (the original overwrote them).
    for n in 2..=4 {
        assert_eq!(call(&c, "kill", json!([10])), Value::Null);
        assert!(wait_until(Duration::from_secs(3), || dumps(home.path()).len() == n));
    }
    assert_eq!(call(&c, "sync_ping", json!([])), "pong");
}

#[test]
fn sigusr1_is_forwarded_to_ave_children_only() {
    // hickup t03, t04; acceptance scenario 32.
    let home = TempDir::new("e2e-hickup-forward");
    let server = Server::start(&["--home", home.path().to_str().unwrap()]);
    let c = server.client(None);
    let child = pid(&call(&c, "make_child", json!([]))[1]);
    // Two probes started by the server, holding SIGUSR1 pending if it arrives: one named
    // like an AVE process, one not.
    let probe = r"
import ctypes, os, signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
if sys.argv[2] != '-':
    ctypes.CDLL(None).prctl(15, sys.argv[2].encode(), 0, 0, 0)
with open(sys.argv[1] + '.tmp', 'w') as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + '.tmp', sys.argv[1])
time.sleep(60)
";
    let mut probes = Vec::new();
    for (file, name) in [("ave-probe.pid", "ave-probe"), ("other.pid", "-")] {
        let path = home.path().join(file);
        let cmd = json!(["python3", "-c", probe, path.to_str().unwrap(), name]);
        // Each on its own connection: a connection serves one call at a time.
        server.client(None).call_one_way("run_external", [cmd]).unwrap();
        let mut found = None;
        assert!(wait_until(Duration::from_secs(10), || {
            found = fs::read_to_string(&path).ok().and_then(|t| t.parse::<i32>().ok());
            found.is_some()
        }));
        probes.push(found.unwrap());
    }
    assert_eq!(fs::read_to_string(format!("/proc/{}/comm", probes[0])).unwrap(), "ave-probe\n");
    signal(server.pid, Signal::SIGUSR1);
    // One dump from the server, one from its child.
    assert!(wait_until(Duration::from_secs(3), || dumps(home.path())
        .iter()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().contains("-ave-MockControl-"))
        .count()
        == 2));
    let names: Vec<String> = dumps(home.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(&format!("-{}", server.pid))), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(&format!("-{child}"))), "{names:?}");
    // The dumps are written after the forwarding: SIGUSR1 is pending in the `ave-` probe
    // by now, and not in the other one.
    let pending = |pid: i32| {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("ShdPnd:")).unwrap();
        u64::from_str_radix(line[7..].trim(), 16).unwrap() & (1 << 9) != 0
    };
    assert!(pending(probes[0]), "the ave- probe did not get SIGUSR1");
    assert!(!pending(probes[1]), "a process outside AVE got SIGUSR1");
    let dump = fs::read_to_string(
        dumps(home.path())
            .iter()
            .find(|p| p.to_str().unwrap().ends_with(&format!("-{}", server.pid)))
            .unwrap(),
    )
    .unwrap();
    assert!(dump.contains(&format!("{} (ave-probe)", probes[0])), "{dump}");
    assert!(dump.contains(&format!("{child} (ave-MockControl)")), "{dump}");
    for probe in probes {
        signal(probe, Signal::SIGKILL);
    }
}

#[test]
fn a_storm_of_sigusr1_does_not_corrupt_requests() {
    // hickup t06, scaled down: signals while a request arrives one byte at a time.
    let home = TempDir::new("e2e-hickup-storm");
    let server = Server::start(&["--home", home.path().to_str().unwrap(), "--authkey", ""]);
    let target = server.pid;
    let storm = std::thread::spawn(move || {
        for _ in 0..40 {
            signal(target, Signal::SIGUSR1);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read_frame = |raw: &mut TcpStream| {
        let mut header = [0; 4];
        raw.read_exact(&mut header).unwrap();
        let mut body = vec![0; u32::from_be_bytes(header) as usize];
        raw.read_exact(&mut body).unwrap();
        body
    };
    let challenge = read_frame(&mut raw);
    let salt = &challenge[CHALLENGE_PREFIX.len()..];
    let digest = handshake::digest(Algorithm::Md5, b"", salt);
    let mut frame = (digest.len() as u32).to_be_bytes().to_vec();
    frame.extend(&digest);
    raw.write_all(&frame).unwrap();
    assert_eq!(read_frame(&mut raw), b"{\"authenticated\": true}");
    let message = "a".repeat(5000);
    let request = json!({"method": "upper", "params": {"vargs": [message], "kwargs": {}},
                         "resource": null, "async": false})
    .to_string();
    for _ in 0..5 {
        let mut frame = (request.len() as u32).to_be_bytes().to_vec();
        frame.extend(request.as_bytes());
        for byte in frame {
            raw.write_all(&[byte]).unwrap();
        }
        let reply: Value = serde_json::from_slice(&read_frame(&mut raw)).unwrap();
        assert_eq!(reply, json!({"result": "A".repeat(5000)}));
    }
    storm.join().unwrap();
    assert!(wait_until(Duration::from_secs(3), || !dumps(home.path()).is_empty()));
    assert_eq!(call(&server.client(Some("")), "get_pid", json!([])), json!(server.pid));
}

#[test]
fn deferred_joins_reap_children_without_blocking_the_server() {
    // defjoin t1.
    let server = Server::start(&[]);
    let c = server.client(None);
    let spawned = call(&c, "spawn_controls", json!([5]));
    assert_eq!(call(&c, "list_orphans", json!([])), json!([]));
    let children: Vec<(i32, u16)> = spawned
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pid(&pair[0]), u16::try_from(pair[1].as_u64().unwrap()).unwrap()))
        .collect();
    for (child, _) in &children {
        call(&c, "orphanize", json!([child]));
    }
    let mut orphans = pids(&call(&c, "list_orphans", json!([])));
    orphans.sort_unstable();
    let mut expected: Vec<i32> = children.iter().map(|(p, _)| *p).collect();
    expected.sort_unstable();
    assert_eq!(orphans, expected);
    for (_, port) in &children {
        assert_eq!(call(&client(*port, None), "sync_ping", json!([])), "pong");
    }
    for (_, port) in &children {
        client(*port, None).call_one_way("stop", ()).unwrap();
    }
    assert!(wait_until(Duration::from_secs(3), || call(&c, "list_orphans", json!([])) == json!([])));
    let joined = call(&c, "joined", json!([]));
    assert_eq!(joined.as_array().unwrap().len(), 5, "{joined}");
    assert!(joined.as_array().unwrap().iter().all(|j| j[1] == 0), "{joined}");
    assert_eq!(call(&c, "zombies", json!([])), json!([]));
}

#[test]
fn a_hundred_deferred_joins_leave_no_zombie() {
    // defjoin t2, scaled down; acceptance scenario 33.
    let server = Server::start(&[]);
    let c = server.client(None);
    let children = pids(&call(&c, "spawn", json!([100, true])));
    assert_eq!(children.len(), 100);
    for child in &children {
        call(&c, "orphanize", json!([child]));
    }
    assert_eq!(pids(&call(&c, "list_orphans", json!([]))).len(), 100);
    // They ignore SIGTERM: nothing is reaped.
    for child in &children {
        signal(*child, Signal::SIGTERM);
    }
    assert_eq!(call(&c, "sync_ping", json!([])), "pong");
    assert_eq!(pids(&call(&c, "list_orphans", json!([]))).len(), 100);
    for child in &children {
        signal(*child, Signal::SIGKILL);
    }
    assert!(wait_until(Duration::from_secs(3), || call(&c, "list_orphans", json!([])) == json!([])));
    let joined = call(&c, "joined", json!([]));
    assert_eq!(joined.as_array().unwrap().len(), 100);
    assert!(joined.as_array().unwrap().iter().all(|j| j[1] == 9), "{joined}");
    assert_eq!(call(&c, "zombies", json!([])), json!([]));
    assert!(children.iter().all(|p| stat(*p).is_none()), "a child is still in /proc");
}

#[test]
fn invalid_deferrals_are_refused_and_duplicates_joined_once() {
    // defjoin t3.
    let server = Server::start(&[]);
    let c = server.client(None);
    let errors = call(&c, "stillbirth", json!([]));
    assert_eq!(
        errors,
        json!([
            "cannot join unstarted process",
            "cannot join unstarted process",
            "cannot defer join of self",
            "target process is not a child",
            "target process is not a child",
        ])
    );
    let children = pids(&call(&c, "spawn", json!([5, false])));
    for child in &children {
        call(&c, "orphanize", json!([child]));
        call(&c, "orphanize", json!([child]));
    }
    assert_eq!(pids(&call(&c, "list_orphans", json!([]))).len(), 10);
    for child in &children {
        signal(*child, Signal::SIGTERM);
    }
    assert!(wait_until(Duration::from_secs(3), || call(&c, "list_orphans", json!([])) == json!([])));
    let joined = call(&c, "joined", json!([]));
    let mut joined_pids =
        pids(&json!(joined.as_array().unwrap().iter().map(|j| j[0].clone()).collect::<Vec<_>>()));
    joined_pids.sort_unstable();
    let mut expected = children.clone();
    expected.sort_unstable();
    assert_eq!(joined_pids, expected, "each child is joined once");
    assert!(joined.as_array().unwrap().iter().all(|j| j[1] == 3840), "{joined}");
    assert_eq!(call(&c, "zombies", json!([])), json!([]));
    assert_eq!(call(&c, "sync_ping", json!([])), "pong");
}
