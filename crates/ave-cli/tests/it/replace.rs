//! `ave serve --replace`: restarting the service under load through the real binary, with
//! clients that must not notice, and the rollback when the new instance dies mid-handover.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ave::network::{
    Address,
    connection::BlockingConnection,
    wire::handshake::{Algorithm, CHALLENGE_PREFIX, digest},
};
use serde_json::{Value, json};

use crate::serve::TempDir;

const KEY: &str = "replace-key";
const T: Duration = Duration::from_secs(20);

/// A running `ave serve` whose stderr lines arrive on a channel.
struct Instance {
    child: Child,
    lines: mpsc::Receiver<Option<String>>,
    log: Vec<String>,
}

impl Instance {
    fn start(home: &Path, port_file: &Path, replace: bool, abort: bool) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
        command
            .args(["serve", "--authkey", KEY, "--home"])
            .arg(home)
            .arg("--port-file")
            .arg(port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if replace {
            command.arg("--replace");
        }
        if abort {
            command.env("AVE_TEST_HANDOVER_ABORT", "1");
        }
        let mut child = command.spawn().expect("start ave serve");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        });
        Instance { child, lines, log: Vec::new() }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line that starts with `prefix`, within `T`.
    fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Ok(None) => panic!("ave serve ended before {prefix:?}:\n{}", self.log.join("\n")),
                Err(_) => panic!("no {prefix:?} within {T:?}:\n{}", self.log.join("\n")),
            }
        }
    }

    /// The port it listens on, from its first line.
    fn port(&mut self) -> u16 {
        let line = self.line("ave serve: listening on ");
        line.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits for the process to end (its stderr closes first) and returns its status and
    /// the rest of its stderr.
    fn exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) => break,
                Err(_) => panic!("ave serve did not exit:\n{}", self.log.join("\n")),
            }
        }
        (self.child.wait().unwrap(), self.log.join("\n"))
    }

    /// The number of open descriptors, with what they are.
    fn descriptors(&self) -> (usize, Vec<String>) {
        let mut all: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| {
                std::fs::read_link(e.path()).map(|l| l.display().to_string()).unwrap_or_default()
            })
            .collect();
        all.sort();
        (all.len(), all)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A summary of the descriptors: how many of each kind (`socket`, `anon_inode:[eventpoll]`, ...).
fn kinds(fds: &[String]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for fd in fds {
        let kind = fd.split(':').next().unwrap_or("").to_owned();
        *out.entry(kind).or_default() += 1;
    }
    out
}

/// Calls made by all clients, with a condition variable to wait for progress.
#[derive(Default)]
struct Progress {
    calls: Mutex<u64>,
    moved: Condvar,
}

impl Progress {
    fn add(&self, n: u64) {
        *self.calls.lock().unwrap() += n;
        self.moved.notify_all();
    }

    fn now(&self) -> u64 {
        *self.calls.lock().unwrap()
    }

    /// Waits until `more` calls were made after `since`.
    fn wait_for(&self, since: u64, more: u64) {
        let calls = self.calls.lock().unwrap();
        let (calls, timeout) =
            self.moved.wait_timeout_while(calls, T, |calls| *calls < since + more).unwrap();
        assert!(!timeout.timed_out(), "the clients made {} calls, not {more}", *calls - since);
    }
}

/// What a client saw.
#[derive(Debug, Default)]
struct Report {
    calls: u64,
    failures: Vec<String>,
    longest_gap: Duration,
}

/// A client on one connection for its whole life: `sync_ping(alt=<unique token>)` in a
/// loop until `stop` (or `max_calls`), each reply checked against its token. Any error,
/// any wrong, lost or extra reply is a failure; it never reconnects.
fn client(
    id: usize,
    port: u16,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    max_calls: u64,
    ready: mpsc::Sender<()>,
) -> Report {
    let mut report = Report::default();
    let address = Address::new("127.0.0.1", port);
    let mut conn = match BlockingConnection::connect(&address, Some(T), false) {
        Ok(conn) => conn,
        Err(e) => {
            report.failures.push(format!("client {id}: connect: {e}"));
            let _ = ready.send(());
            return report;
        }
    };
    let handshake = (|| {
        let challenge = conn.get(Some(T))?;
        let salt = challenge.strip_prefix(CHALLENGE_PREFIX).unwrap_or_default().to_vec();
        conn.put(&digest(Algorithm::Md5, KEY.as_bytes(), &salt), Some(T))?;
        conn.get(Some(T))
    })();
    let _ = ready.send(());
    match handshake {
        Ok(verdict) if verdict == br#"{"authenticated": true}"# => {}
        other => {
            report.failures.push(format!("client {id}: handshake: {other:?}"));
            return report;
        }
    }
    let mut last = Instant::now();
    let mut unreported = 0;
    while !stop.load(Ordering::Relaxed) && report.calls < max_calls {
        let token = format!("{id}-{}", report.calls);
        let request = json!({"method": "sync_ping", "params": {"vargs": [], "kwargs": {"alt": token}},
                             "resource": null, "async": false});
        let reply =
            conn.put(request.to_string().as_bytes(), Some(T)).and_then(|()| conn.get(Some(T)));
        match reply.map(|r| serde_json::from_slice::<Value>(&r)) {
            Ok(Ok(value)) if value == json!({"result": token}) => {}
            other => {
                report.failures.push(format!("client {id}: call {token}: {other:?}"));
                return report;
            }
        }
        report.calls += 1;
        let now = Instant::now();
        report.longest_gap = report.longest_gap.max(now - last);
        last = now;
        unreported += 1;
        if unreported == 20 {
            progress.add(unreported);
            unreported = 0;
        }
    }
    progress.add(unreported);
    // Nothing more may arrive: a duplicated reply would be waiting here.
    match conn.get(Some(Duration::from_millis(300))) {
        Err(e) if e.is_timeout() => {}
        other => report.failures.push(format!("client {id}: after the last call: {other:?}")),
    }
    report
}

/// Clients calling in a loop on `port`, started and connected.
struct Load {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    clients: Vec<JoinHandle<Report>>,
}

impl Load {
    fn start(port: u16, count: usize, max_calls: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (ready_tx, ready) = mpsc::channel();
        let clients = (0..count)
            .map(|id| {
                let (stop, progress, ready) = (stop.clone(), progress.clone(), ready_tx.clone());
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || client(id, port, stop, progress, max_calls, ready))
                    .unwrap()
            })
            .collect();
        for _ in 0..count {
            ready.recv_timeout(T).expect("a client connects");
        }
        Load { stop, progress, clients }
    }

    /// Stops the clients and returns their reports.
    fn finish(self) -> Vec<Report> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().map(|c| c.join().unwrap()).collect()
    }
}

fn raise_limit() {
    let limit = ave::network::raise_fd_limit().unwrap();
    assert!(limit >= 2048, "the descriptor limit {limit} is too low for this test");
}

fn port_file_port(path: &PathBuf) -> u16 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
#[expect(clippy::print_stderr, reason = "the run's figures, for the test log")]
fn twenty_replaces_under_load_lose_nothing() {
    raise_limit();
    let dir = TempDir::new("replace-load");
    let port_file = dir.path().join("port");
    let mut first = Instance::start(dir.path(), &port_file, false, false);
    let port = first.port();
    let load = Load::start(port, 200, 1_000_000);
    load.progress.wait_for(0, 400);
    let (baseline, baseline_fds) = first.descriptors();
    assert!(baseline >= 200, "{baseline_fds:?}");

    let mut current = first;
    for round in 0..20 {
        std::fs::remove_file(&port_file).unwrap();
        let before = load.progress.now();
        let mut next = Instance::start(dir.path(), &port_file, true, false);
        assert_eq!(next.port(), port, "round {round}");
        let took = next.line("ave serve: took over ");
        assert_eq!(
            took,
            format!("ave serve: took over 200 connections from pid {}", current.pid())
        );
        assert_eq!(port_file_port(&port_file), port, "the new instance rewrites the port file");
        let old_pid = current.pid();
        let (status, log) = current.exit();
        assert_eq!(status.code(), Some(0), "round {round}: the old instance {old_pid}:\n{log}");
        let replaced =
            format!("ave serve: replaced by pid {}; 200 connections handed over", next.pid());
        assert!(log.contains(&replaced), "round {round}:\n{log}");
        // Calls go through the new instance before the next round.
        load.progress.wait_for(before, 200);
        current = next;
    }

    let (fds, final_fds) = current.descriptors();
    let reports = load.finish();
    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let calls: u64 = reports.iter().map(|r| r.calls).sum();
    assert!(reports.iter().all(|r| r.calls > 0));
    let gap = reports.iter().map(|r| r.longest_gap).max().unwrap();
    eprintln!("{calls} calls by 200 clients across 20 replaces; longest gap {gap:?}");
    assert_eq!(
        (fds, kinds(&final_fds)),
        (baseline, kinds(&baseline_fds)),
        "descriptors of the final instance against the first:\n{final_fds:?}\n{baseline_fds:?}"
    );
}

#[test]
fn a_new_instance_that_dies_mid_handover_changes_nothing() {
    raise_limit();
    let dir = TempDir::new("replace-abort");
    let port_file = dir.path().join("port");
    let mut old = Instance::start(dir.path(), &port_file, false, false);
    let port = old.port();
    let load = Load::start(port, 20, 1_000_000);
    load.progress.wait_for(0, 100);
    let (baseline, baseline_fds) = old.descriptors();

    for _ in 0..2 {
        let crashing = Instance::start(dir.path(), &port_file, true, true);
        let (status, log) = crashing.exit();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "the new instance aborts:\n{log}");
        // The old instance took everything back: the clients go on, and so does it.
        let before = load.progress.now();
        load.progress.wait_for(before, 100);
    }
    assert_eq!(old.child.try_wait().unwrap(), None, "the old instance serves on");
    let (fds, after_fds) = old.descriptors();
    assert_eq!(
        (fds, kinds(&after_fds)),
        (baseline, kinds(&baseline_fds)),
        "a rollback leaks nothing:\n{after_fds:?}\n{baseline_fds:?}"
    );

    // A working successor still takes over afterwards.
    let mut next = Instance::start(dir.path(), &port_file, true, false);
    assert_eq!(next.port(), port);
    next.line("ave serve: took over 20 connections");
    let (status, _) = old.exit();
    assert_eq!(status.code(), Some(0));
    let before = load.progress.now();
    load.progress.wait_for(before, 100);
    let reports = load.finish();
    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn replace_with_nothing_to_take_over_says_so() {
    let dir = TempDir::new("replace-nothing");
    let out = Command::new(env!("CARGO_BIN_EXE_ave"))
        .args(["serve", "--replace", "--home"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--replace: nothing taken over in"), "{stderr}");
    assert!(stderr.contains("no instance is serving at"), "{stderr}");
}

#[test]
fn a_second_instance_on_the_same_home_is_not_replaceable() {
    let dir = TempDir::new("replace-second");
    let port_file = dir.path().join("port");
    let mut first = Instance::start(dir.path(), &port_file, false, false);
    let first_port = first.port();
    let mut second = Instance::start(dir.path(), &dir.path().join("port2"), false, false);
    assert_ne!(second.port(), first_port);
    second.line("");
    assert!(
        second.log.iter().any(|l| l.contains("this instance cannot be replaced with --replace")
            && l.contains("another instance is serving")),
        "{:?}",
        second.log
    );
    // --replace reaches the first one.
    let mut next = Instance::start(dir.path(), &port_file, true, false);
    assert_eq!(next.port(), first_port);
    assert_eq!(first.exit().0.code(), Some(0));
}
