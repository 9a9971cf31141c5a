//! The original's cmd tests, t1 to t8 (spec/ave-tests.md "cmd"), and acceptance
//! scenarios 35 to 40, against the library.

use std::{
    fs,
    io::Read,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ave_cmd::{Error, ExitStatus, Options, Sink, run, run_bg};
use ave_exceptions::{AveException, Kind};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::json;

use crate::{TempDir, children, exclusive, lines, open_fds, shared};

/// t1: `sleep 10` with a 1 s timeout fails with a message ending in ` timed out`, after
/// the timeout and long before `sleep` would have ended by itself.
#[test]
fn t1_timeout() {
    let _guard = shared();
    let start = Instant::now();
    let error = run(["sleep", "10"], &Options::new().timeout(Duration::from_secs(1))).unwrap_err();
    let elapsed = start.elapsed();
    assert!(error.to_string().ends_with(" timed out"), "{error}");
    assert!(elapsed >= Duration::from_secs(1), "ended before the timeout: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(9), "the command was not ended: {elapsed:?}");
}

/// t2: a string command is split on whitespace; the Timeout's details are the original's.
#[test]
fn t2_timeout_details() {
    let _guard = shared();
    let error =
        run("sleep    10", &Options::new().timeout(Duration::from_millis(300))).unwrap_err();
    let Error::Timeout { cmd, status, .. } = &error else { panic!("not a timeout: {error:?}") };
    assert_eq!(cmd, &["sleep", "10"]);
    assert_eq!(*status, ExitStatus::Signaled(libc::SIGTERM));
    assert_eq!(error.to_string(), "command timed out");
    let wire = AveException::from(error);
    assert_eq!(wire.kind(), Kind::Timeout);
    assert_eq!(wire.message(), "command timed out");
    assert_eq!(wire.field("cmd"), Some(&json!(["sleep", "10"])));
    assert_eq!(wire.field("out"), Some(&json!("")));
}

/// t3: debug tracing shows the command line and the output; without it nothing is traced.
#[test]
fn t3_debug() {
    let _guard = shared();
    let trace = Arc::new(Mutex::new(Vec::new()));
    let options = Options::new().debug_sink(Sink::shared(trace.clone()));
    let out = run("echo -n hello", &options).unwrap();
    assert_eq!(out.output, b"hello");
    let trace = String::from_utf8(trace.lock().unwrap().clone()).unwrap();
    assert!(trace.starts_with("echo -n hello\n"), "{trace}");
    assert!(trace.contains("read 5\nhello\n"), "{trace}");

    // Readiness events are traced when the runner waits for output.
    let trace = Arc::new(Mutex::new(Vec::new()));
    let options = Options::new().debug_sink(Sink::shared(trace.clone()));
    run(["sh", "-c", "sleep 0.1; echo -n hello"], &options).unwrap();
    let trace = String::from_utf8(trace.lock().unwrap().clone()).unwrap();
    assert!(trace.contains("flags: 0x"), "{trace}");

    // Off is the default: the output is the same and nothing is traced (the CLI test
    // checks that stderr stays empty).
    let trace = Arc::new(Mutex::new(Vec::new()));
    let options = Options::new().debug_sink(Sink::shared(trace.clone())).debug(false);
    assert_eq!(run("echo -n hello", &options).unwrap().output, b"hello");
    assert!(trace.lock().unwrap().is_empty());
}

/// t4: `run_bg` gives the pid and the master, which becomes readable within a second
/// and starts with `hello`.
#[test]
fn t4_run_bg() {
    let _guard = shared();
    let mut bg = run_bg("echo hello", &Options::new()).unwrap();
    assert!(bg.pid().as_u32() > 1);
    let mut fds = [PollFd::new(bg.master(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(1000u16)).unwrap();
    assert_eq!(ready, 1);
    assert!(fds[0].revents().unwrap().contains(PollFlags::POLLIN));
    let mut text = Vec::new();
    bg.read_to_end(&mut text).unwrap();
    assert!(text.starts_with(b"hello"), "{text:?}");
    drop(bg.try_clone_master().unwrap());
    assert_eq!(bg.kill().unwrap(), ExitStatus::Exited(0));
}

/// t5: `ls` exits 0 and `ls thisdoesnotexist` (with debug on) exits 2.
#[test]
fn t5_ls() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let options = Options::new().cwd(dir.path());
    assert_eq!(run("ls", &options).unwrap().status, ExitStatus::Exited(0));
    let trace = Arc::new(Mutex::new(Vec::new()));
    let out = run("ls thisdoesnotexist", &options.debug_sink(Sink::shared(trace))).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(2));
    assert_eq!(out.legacy_code(), 2);
    assert!(lines(&out.output).contains("thisdoesnotexist"));
}

/// t6: `echo hello` more times than there can be ptys at once, in one process: no call
/// fails, and no descriptor or child is left afterwards.
#[test]
fn t6_more_runs_than_ptys() {
    let _guard = exclusive();
    let max: usize =
        fs::read_to_string("/proc/sys/kernel/pty/max").unwrap().trim().parse().unwrap();
    let fds = open_fds();
    let options = Options::new();
    for i in 0..=max {
        let out = run("echo hello", &options).unwrap_or_else(|e| panic!("run {i}: {e}"));
        assert_eq!(out.output, b"hello\r\n", "run {i}");
    }
    assert_eq!(open_fds(), fds);
    assert_eq!(children(), Vec::<i32>::new());
}

/// t7: all output is drained before the end of output is declared: the 1501-line file
/// comes back whole, 99 times.
#[test]
fn t7_complete_output() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let file = dir.path().join("lines.txt");
    let mut text = String::from("in the beginning, there was zero.\n");
    for i in 0..500 {
        text.push_str(&format!("so you have {i}\nif you add one to that\nyou get {}\n", i + 1));
    }
    fs::write(&file, &text).unwrap();
    let script = format!("cat {} | while read line; do echo $line; done", file.display());
    for i in 0..99 {
        let out = run(["sh", "-c", &script], &Options::new()).unwrap();
        let got = lines(&out.output);
        assert_eq!(got.lines().count(), 1501, "run {i}");
        assert_eq!(got.lines().last().unwrap().trim(), "you get 500", "run {i}");
        assert_eq!(got, text, "run {i}");
    }
}

/// t8: the working directory option, in the foreground and in the background; `>` is an
/// argument, not a redirection.
#[test]
fn t8_cwd() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let options = Options::new().cwd(dir.path());
    let out = run("echo hello > test.txt", &options).unwrap();
    assert_eq!(out.output, b"hello > test.txt\r\n");
    assert!(!dir.path().join("test.txt").exists());
    run_bg("echo hello > test.txt", &options).unwrap().wait().unwrap();

    // Scenario 40: the directory is really the child's.
    run(["sh", "-c", "pwd > here.txt"], &options).unwrap();
    let here = fs::read_to_string(dir.path().join("here.txt")).unwrap();
    assert_eq!(here.trim(), dir.path().to_str().unwrap());
    fs::remove_file(dir.path().join("here.txt")).unwrap();
    let bg = run_bg(["sh", "-c", "pwd > here.txt"], &options).unwrap();
    assert!(bg.output().unwrap().status.success());
    let here = fs::read_to_string(dir.path().join("here.txt")).unwrap();
    assert_eq!(here.trim(), dir.path().to_str().unwrap());
}

/// Scenario 36: statuses 0, 2 and 3, and stdout and stderr merged with CRLF line endings.
#[test]
fn s36_exit_codes_and_merged_output() {
    let _guard = shared();
    let out = run(["sh", "-c", "echo out; echo err 1>&2; exit 3"], &Options::new()).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(3));
    assert_eq!(out.output, b"out\r\nerr\r\n");
}
