//! Processes, daemons, deferred joins, signals and hickup dumps (the original's process,
//! daemon, defjoin, hickup and pipe tests, and acceptance scenarios D), through the
//! fixture programs `process_cases` and `process_control`: they fork, which this
//! multi-threaded harness must not do.
//!
//! Waits are bounded: a process is checked in a loop until a deadline, never after a
//! fixed sleep.//!
//! The `Process` tests are here, with the helpers every part uses; the `Daemon` tests are
//! in `daemon.rs`, and a `Control` in a child (signals, hickup dumps, deferred joins) in
//! `control.rs`.

mod control;
mod daemon;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

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
