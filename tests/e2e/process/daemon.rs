//! `Daemon` through the `process_cases` fixture (the original's daemon tests): pid files,
//! restarts, streams and log sharing, failures, overlapping restarts, shared pid files,
//! and a daemon that ignores SIGTERM.

use ave_test_support::TempDir;
use serde_json::{Value, json};

use crate::process::{report, text};

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
