//! `ave tripe` against the simulated TrIPE server (`ave_test_support::tripe_sim`): INFO lines
//! re-quoted on stdout, exit 0 on OK, 1 with the FAIL tokens on stderr, 2 for a command
//! that cannot be sent, 3 for an unreachable socket, and `--watch`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use ave_test_support::tripe_sim::{Sim, WATCH_NOTE, WATCH_TRACE, WATCH_WARN};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs `ave tripe ARGS...` with `env` added to its environment (and `TRIPESOCK` and
/// `TRIPEDIR` removed unless given), bounded in time.
fn tripe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
    command.arg("tripe").args(args).env_remove("TRIPESOCK").env_remove("TRIPEDIR");
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ave");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(output) => output.expect("ave's output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("ave tripe {args:?} timed out");
        }
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn ok_prints_the_info_lines_requoted() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.add_peer("bob", &["INET", "10.0.0.2", "4070"]);
    let socket = sim.path().to_str().unwrap();

    let out = tripe(&["--socket", socket, "LIST"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "alice\nbob\n");

    sim.script("QUOTED", &[b"INFO 'a b' c \"it's\" '' back\\\\slash", b"OK"]);
    let out = tripe(&["--socket", socket, "QUOTED"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "\"a b\" c \"it's\" \"\" \"back\\\\slash\"\n");

    // Each argument is one word, quoted for the server.
    let out = tripe(&["--socket", socket, "NOTIFY", "hello world", "-x"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(sim.received().iter().any(|l| l == "NOTIFY \"hello world\" -x"));

    // A background job through the command line: its BGINFO lines are printed.
    let out = tripe(&["--socket", socket, "PING", "-background", "T1", "alice"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "ping-ok 0.25\n");
}

#[test]
fn the_socket_is_found_from_the_directory_and_the_environment() {
    let sim = Sim::start();
    let dir = sim.dir().to_str().unwrap();
    let socket = sim.path().to_str().unwrap();
    let expected = "ave-tripe-sim 1.0.0\n";

    let out = tripe(&["--dir", dir, "VERSION"], &[]);
    assert_eq!(text(&out.stdout), expected, "{}", text(&out.stderr));
    let out = tripe(&["VERSION"], &[("TRIPEDIR", dir)]);
    assert_eq!(text(&out.stdout), expected, "{}", text(&out.stderr));
    let out = tripe(&["VERSION"], &[("TRIPESOCK", socket)]);
    assert_eq!(text(&out.stdout), expected, "{}", text(&out.stderr));
    // A relative socket is taken inside the directory.
    let out = tripe(&["--dir", dir, "--socket", "tripesock", "VERSION"], &[]);
    assert_eq!(text(&out.stdout), expected, "{}", text(&out.stderr));
    let out = tripe(&["VERSION"], &[("TRIPEDIR", dir), ("TRIPESOCK", "tripesock")]);
    assert_eq!(text(&out.stdout), expected, "{}", text(&out.stderr));
    // The argument wins over the environment.
    let out = tripe(&["--socket", socket, "VERSION"], &[("TRIPESOCK", "/nonexistent/sock")]);
    assert_eq!(text(&out.stdout), expected, "{}", text(&out.stderr));
}

#[test]
fn fail_exits_1_with_the_tokens_on_stderr() {
    let sim = Sim::start();
    let socket = sim.path().to_str().unwrap();
    let out = tripe(&["--socket", socket, "KILL", "no body"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(text(&out.stderr), "ave tripe: FAIL unknown-peer \"no body\"\n");

    let out = tripe(&["--socket", socket, "FROBNICATE"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "ave tripe: FAIL unknown-command FROBNICATE\n");
}

#[test]
fn json_prints_one_object_per_reply_line() {
    let sim = Sim::start();
    let socket = sim.path().to_str().unwrap();
    sim.script("QUOTED", &[b"INFO 'a b' c", b"INFO", b"OK"]);
    let out = tripe(&["--json", "--socket", socket, "QUOTED"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"code\":\"INFO\",\"words\":[\"a b\",\"c\"]}\n{\"code\":\"INFO\",\"words\":[]}\n{\"code\":\"OK\"}\n"
    );
    let out = tripe(&["--socket", socket, "--json", "KILL", "no body"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "{\"code\":\"FAIL\",\"words\":[\"unknown-peer\",\"no body\"]}\n");
    // Every line is one JSON object.
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    let out = tripe(&["--socket", socket, "--json", "PEERINFO", "alice"], &[]);
    assert_eq!(out.status.code(), Some(0));
    for line in text(&out.stdout).lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(value["code"].is_string(), "{line}");
    }
}

#[test]
fn help_lists_the_exit_codes() {
    let out = tripe(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for code in
        ["0  the server said OK", "1  the server said FAIL", "2  usage error", "3  the admin"]
    {
        assert!(help.contains(code), "{help}");
    }
}

#[test]
fn an_unreachable_socket_exits_3() {
    let sim = Sim::start();
    let missing = sim.dir().join("no-such-socket");
    let out = tripe(&["--socket", missing.to_str().unwrap(), "LIST"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot connect") && stderr.contains("no-such-socket"), "{stderr}");

    // A connection that drops before the answer is a connection failure too.
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.hold_pings("alice");
    let socket = sim.path().to_str().unwrap().to_owned();
    let waiting = std::thread::spawn(move || tripe(&["--socket", &socket, "PING", "alice"], &[]));
    assert!(sim.wait_until_blocking(LIMIT, |s| s.waiting_pings("alice") == 1));
    sim.drop_connections();
    let out = waiting.join().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("lost the connection"), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_2() {
    let sim = Sim::start();
    let socket = sim.path().to_str().unwrap();
    let long = "x".repeat(300);
    let out = tripe(&["--socket", socket, "NOTIFY", &long], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the server reads at most 255"), "{}", text(&out.stderr));
    let out = tripe(&["--socket", socket, "NOTIFY", "two\nlines"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing was sent.
    assert!(sim.received().is_empty());
    // No command and no --watch.
    let out = tripe(&["--socket", socket], &[]);
    assert_eq!(out.status.code(), Some(2));
    // Messages name the command.
    let out = tripe(&["--socket", socket, "NOTIFY", "two\nlines"], &[]);
    assert!(text(&out.stderr).starts_with("ave tripe: error: "), "{}", text(&out.stderr));
}

/// A running `ave tripe --watch`, with its stdout read line by line on a thread; killed
/// if a test fails before it exits.
struct Watcher {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(args: &[&str]) -> Watcher {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ave"))
            .arg("tripe")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run ave tripe --watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child: Some(child), lines }
    }

    fn line(&self) -> String {
        self.lines.recv_timeout(LIMIT).expect("a broadcast line")
    }

    /// Waits for the exit, bounded; the exit code.
    fn wait(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(LIMIT) {
            Ok(status) => status.unwrap().code(),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("ave tripe --watch did not exit");
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn watch_prints_broadcasts_until_the_server_closes() {
    let sim = Sim::start();
    let socket = sim.path().to_str().unwrap();
    let watcher = Watcher::start(&["--socket", socket, "--watch"]);
    let all = WATCH_WARN | WATCH_NOTE | WATCH_TRACE;
    assert!(sim.wait_until_blocking(LIMIT, |s| s.watchers(all) == 1));
    assert!(sim.received().iter().any(|l| l == "WATCH +A"));

    sim.note(&["USER", "hello", "big world"]);
    sim.warn(&["KX", "alice", "decrypt-failed", "reply"]);
    sim.trace("keyexch: raw 'text'");
    assert_eq!(watcher.line(), "NOTE USER hello \"big world\"");
    assert_eq!(watcher.line(), "WARN KX alice decrypt-failed reply");
    assert_eq!(watcher.line(), "TRACE keyexch: raw 'text'");

    sim.drop_connections();
    assert_eq!(watcher.wait(), Some(0));
}

#[test]
fn watch_with_a_mask() {
    let sim = Sim::start();
    let socket = sim.path().to_str().unwrap();
    let watcher = Watcher::start(&["--socket", socket, "--watch", "n"]);
    assert!(sim.wait_until_blocking(LIMIT, |s| s.watchers(WATCH_NOTE) == 1));
    assert!(sim.received().iter().any(|l| l == "WATCH -A+n"));
    sim.warn(&["USER", "not", "shown"]);
    sim.trace("not shown either");
    sim.note(&["KXDONE", "alice"]);
    assert_eq!(watcher.line(), "NOTE KXDONE alice");

    // QUIT from another client closes the server, and the watcher with it.
    let out = tripe(&["--socket", socket, "QUIT"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(watcher.wait(), Some(0));

    // --watch checks its letters before connecting: a usage error, nothing sent.
    let sim = Sim::start();
    for mask in ["+q", "wq", "n t"] {
        let out = tripe(&["--socket", sim.path().to_str().unwrap(), "--watch", mask], &[]);
        assert_eq!(out.status.code(), Some(2), "{mask}");
        assert!(
            text(&out.stderr).starts_with("ave tripe: error: WATCH has no selector"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(sim.received().is_empty());
}

#[test]
fn watch_json_prints_one_object_per_broadcast() {
    let sim = Sim::start();
    let watcher = Watcher::start(&["--socket", sim.path().to_str().unwrap(), "--json", "--watch"]);
    assert!(
        sim.wait_until_blocking(LIMIT, |s| s.watchers(WATCH_NOTE | WATCH_WARN | WATCH_TRACE) == 1)
    );
    sim.note(&["KXDONE", "alice bob"]);
    assert_eq!(watcher.line(), "{\"code\":\"NOTE\",\"words\":[\"KXDONE\",\"alice bob\"]}");
    sim.trace("raw 'text'");
    assert_eq!(watcher.line(), "{\"code\":\"TRACE\",\"text\":\"raw 'text'\"}");
    drop(sim);
    assert_eq!(watcher.wait(), Some(0));
}

/// The resident set of process `pid`, in KiB (`VmRSS` in `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Issue 12, finding 9: against a server that streams INFO lines and never says OK, the
/// lines reach stdout as they arrive and `ave tripe`'s memory stays flat (it grew to
/// gigabytes while a few hundred kilobytes reached stdout). The test reads 16 MiB of
/// output, sampling the resident set as it goes, and stops early if the bound is passed.
#[test]
fn endless_output_is_printed_as_it_arrives_in_flat_memory() {
    /// Output read before the run counts as a pass.
    const ENOUGH: usize = 16 << 20;
    /// A generous bound on the resident set (a few MiB in practice).
    const RSS_BOUND_KIB: u64 = 128 << 10;
    let sim = Sim::start();
    let words = format!("flood {}", "x".repeat(100));
    sim.stream("FLOOD", format!("INFO {words}").as_bytes());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ave"))
        .args(["tripe", "--socket", sim.path().to_str().unwrap(), "FLOOD"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ave");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::with_capacity(1 << 16, stdout);
        let (mut read, mut lines, mut peak) = (0, 0u64, 0);
        let mut line = String::new();
        while read < ENOUGH {
            line.clear();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
            assert_eq!(line.trim_end(), words, "line {lines}");
            lines += 1;
            if lines % 4096 == 1 {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                if peak > RSS_BOUND_KIB {
                    break;
                }
            }
        }
        let _ = tx.send((read, peak));
    });
    // The generous time bound only ends a failing run; the verdict is the memory.
    let outcome = rx.recv_timeout(Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let (read, peak) = outcome.expect("reading the output timed out");
    assert!(peak > 0, "the resident set of ave was never read");
    assert!(
        peak <= RSS_BOUND_KIB,
        "ave tripe's resident set reached {peak} KiB while {read} bytes reached stdout"
    );
    assert!(read >= ENOUGH, "only {read} bytes reached stdout");
}
