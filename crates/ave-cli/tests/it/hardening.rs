//! Hardening through the binary: hostile clients against `ave serve`, with or without a
//! key, must not crash, starve, lock out or pin it. Each test is named after the finding
//! it covers (`f1_...` to `f11_...`).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use ave::network::wire::handshake::respond;
use serde_json::{Value, json};

use crate::serve::{Served, TempDir};

/// Bounds every wait of these tests; only reached when something is wrong.
const T: Duration = Duration::from_secs(20);

/// A raw client: frames written and read by hand, so the tests see every byte.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    /// Connects and reads the challenge; the handshake is not answered yet.
    fn connect(port: u16) -> (Raw, Vec<u8>) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(T)).unwrap();
        let mut raw = Raw { stream };
        let challenge = raw.read_frame().expect("the challenge");
        (raw, challenge)
    }

    /// Connects and completes the handshake with `key`; returns whether it authenticated.
    fn handshake(port: u16, key: Option<&str>) -> (Raw, bool) {
        let (mut raw, challenge) = Raw::connect(port);
        raw.write_frame(&respond(&challenge, key).unwrap());
        let verdict: Value = serde_json::from_slice(&raw.read_frame().unwrap()).unwrap();
        let ok = verdict == json!({"authenticated": true});
        (raw, ok)
    }

    fn write_frame(&mut self, payload: &[u8]) {
        self.stream.write_all(&(payload.len() as u32).to_be_bytes()).unwrap();
        self.stream.write_all(payload).unwrap();
    }

    /// One frame, or `None` at end of stream (or a reset).
    fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading a frame: {e}"),
        }
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        Some(payload)
    }

    fn request(&mut self, method: &str, vargs: Value) {
        let request = json!({"method": method, "params": {"vargs": vargs, "kwargs": {}}});
        self.write_frame(request.to_string().as_bytes());
    }

    fn call(&mut self, method: &str, vargs: Value) -> Value {
        self.request(method, vargs);
        serde_json::from_slice(&self.read_frame().expect("a reply")).unwrap()
    }

    /// Whether the server closes the connection (within `T`) without sending more than
    /// an "invalid RPC" reply.
    fn closed_by_server(&mut self) -> bool {
        loop {
            match self.read_frame() {
                None => return true,
                Some(frame) => {
                    let reply: Value = serde_json::from_slice(&frame).unwrap();
                    let message = reply["exception"]["message"].as_str().unwrap_or("");
                    if !message.starts_with("got invalid RPC from client") {
                        return false;
                    }
                }
            }
        }
    }
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn ave_call(args: &[&str]) -> (i32, String, String) {
    crate::ave_call(&["--timeout", "10"], args)
}

/// The exception a raw call got, or a panic with the whole reply.
fn exception(reply: &Value) -> &Value {
    reply.get("exception").unwrap_or_else(|| panic!("no exception in {reply}"))
}

#[test]
fn f1_sizes_from_a_client_are_bounded() {
    let served = Served::start(&[]);
    let (mut raw, _) = Raw::handshake(served.port, None);
    // Used to abort the server: `memory allocation of 343597383680 bytes failed`.
    for depth in [json!(4_294_967_295u64), json!(100_000)] {
        let reply = raw.call("raise_ave_exception", json!([{"message": "x"}, depth]));
        let e = exception(&reply);
        assert_eq!(e["type"], "ValueError", "{reply}");
        assert!(e["message"].as_str().unwrap().contains("depth"), "{reply}");
    }
    // A small depth still works as the original's.
    let reply = raw.call("raise_ave_exception", json!([{"message": "x"}, 2]));
    assert_eq!(exception(&reply)["trace"].as_array().unwrap().len(), 3, "{reply}");
    // A sleep of 1e18 seconds is refused at once instead of pinning the connection.
    let reply = raw.call("sleep", json!([1e18]));
    assert_eq!(exception(&reply)["type"], "ValueError", "{reply}");
    // A huge string for `upper` is refused, not amplified.
    let big = "\u{390}".repeat(2 * 1024 * 1024);
    let reply = raw.call("upper", json!([big]));
    assert_eq!(exception(&reply)["type"], "ValueError");
    assert_eq!(raw.call("sync_ping", json!([])), json!({"result": "pong"}));
}

#[test]
fn f2_malformed_frames_are_echoed_short() {
    let served = Served::start(&[]);
    let (mut raw, _) = Raw::handshake(served.port, None);
    // Every control byte became 6 bytes of `\u0001` in the echo.
    raw.write_frame(&vec![1u8; 4 * 1024 * 1024]);
    let reply = raw.read_frame().unwrap();
    assert!(reply.len() < 4096, "a reply of {} bytes", reply.len());
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    let text = reply["exception"].as_str().unwrap();
    assert!(text.starts_with("malformed JSON: \u{1}\u{1}"), "{text}");
    assert!(text.contains("4194304 bytes"), "the size is said: {text}");
    assert_eq!(raw.call("sync_ping", json!([])), json!({"result": "pong"}));
}

#[test]
fn f2_clients_that_do_not_read_hold_bounded_memory() {
    let served = Served::start(&["--authkey", "k"]);
    let before = rss_kib(served.pid());
    // Wrong-key clients that send malformed frames and never read a reply.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (mut raw, ok) = Raw::handshake(served.port, Some("wrong"));
        assert!(!ok);
        raw.stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let frame = vec![1u8; 4 * 1024 * 1024];
        // The server stops reading once its replies pile up: the write may time out.
        let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&frame);
        let _ = raw.stream.write_all(&framed);
        clients.push(raw);
    }
    // The server still serves others promptly, and did not keep 6 bytes per byte sent.
    let (mut good, ok) = Raw::handshake(served.port, Some("k"));
    assert!(ok);
    assert_eq!(good.call("sync_ping", json!([])), json!({"result": "pong"}));
    let grown = rss_kib(served.pid()).saturating_sub(before);
    assert!(grown < 64 * 1024, "the server grew by {grown} KiB for 8 clients");
}

#[test]
fn f3_big_frames_before_authentication_close_at_once() {
    let served = Served::start(&["--authkey", "k"]);
    let (mut raw, _) = Raw::connect(served.port);
    let started = Instant::now();
    // A 64 MiB "digest": only the header is sent; the server must not wait for the rest.
    raw.stream.write_all(&(64u32 * 1024 * 1024).to_be_bytes()).unwrap();
    assert!(raw.closed_by_server(), "the server answered the big frame");
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());
    // A frame just above the largest digest is refused as well; a real answer still works.
    let (mut raw, _) = Raw::connect(served.port);
    raw.write_frame(&[0u8; 33]);
    assert!(raw.closed_by_server());
    assert!(Raw::handshake(served.port, Some("k")).1);
}

#[test]
fn f6_run_external_needs_allow_run_and_a_key() {
    // No key, no --allow-run: refused (it used to run `id` as the server's user).
    let served = Served::start(&[]);
    let (code, stdout, stderr) = ave_call(&[&served.address(), "run_external", "id"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(stderr.contains("--allow-run"), "{stderr}");
    // --allow-run: only for an authenticated client.
    let served = Served::start(&["--allow-run", "--authkey", "k"]);
    let (code, _, stderr) = ave_call(&[&served.address(), "run_external", "echo hi"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not authenticated to make this call"), "{stderr}");
    let (code, stdout, stderr) =
        ave_call(&["--authkey", "k", &served.address(), "run_external", "echo hi"]);
    assert_eq!(code, 0, "{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result[0], 0);
    assert!(result[1].as_str().unwrap().contains("hi"), "{stdout}");
}

#[test]
fn f6_stopping_methods_need_a_key_when_the_server_has_one() {
    let served = Served::start(&["--authkey", "k"]);
    let address = served.address();
    for (method, args) in [
        ("stop", vec![]),
        ("raise_exit", vec!["bye"]),
        ("stop_listening", vec![]),
        ("sleep", vec!["0"]),
    ] {
        let mut all = vec![address.as_str(), method];
        all.extend(args);
        let (code, _, stderr) = ave_call(&all);
        assert_eq!(code, 1, "{method}: {stderr}");
        assert!(stderr.contains("not authenticated to make this call"), "{method}: {stderr}");
    }
    // The server is still serving, and the key holder may stop it.
    assert_eq!(ave_call(&["--authkey", "k", &address, "sleep", "0"]).0, 0);
    assert_eq!(ave_call(&["--authkey", "k", &address, "stop"]).0, 0);
    assert_eq!(served.wait().0.code(), Some(0));
    // Without any key, the original's open rules stay (a lab service, on loopback).
    let open = Served::start(&[]);
    assert_eq!(ave_call(&[&open.address(), "stop"]).0, 0);
    assert_eq!(open.wait().0.code(), Some(0));
}

#[test]
fn f6_a_keyless_server_binds_loopback_only_unless_insecure() {
    let home = TempDir::new("insecure");
    let out = Command::new(env!("CARGO_BIN_EXE_ave"))
        .args(["serve", "--bind", "0.0.0.0", "--home"])
        .arg(home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure"), "{stderr}");
}

#[test]
fn f8_a_forged_exit_does_not_stop_the_server() {
    let served = Served::start(&[]);
    let address = served.address();
    let (code, _, stderr) =
        ave_call(&[&address, "raise_ave_exception", r#"{"type": "Exit", "message": "forged"}"#]);
    assert_eq!(code, 1, "{stderr}");
    let e: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!((e["type"].as_str(), e["message"].as_str()), (Some("Exit"), Some("forged")));
    assert_eq!(ave_call(&[&address, "sync_ping"]).1, "\"pong\"\n");
    // The service's own Exit still stops it.
    assert_eq!(ave_call(&[&address, "raise_exit", "bye"]).0, 1);
    assert_eq!(served.wait().0.code(), Some(0));
}

/// Every stderr line of `child`, on a channel.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The port of the first `listening on` line.
fn listening_port(lines: &mpsc::Receiver<String>) -> u16 {
    let line = line_with(lines, "ave serve: listening on ").expect("ave serve listens");
    line.trim()
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
}

fn handover_socket(home: &Path) -> PathBuf {
    home.join(".ave/handover/ave-serve.sock")
}

/// `ave serve` on `home` (its port file is `home/port`), with `args`.
fn ave_serve(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
    command.arg("serve").arg("--home").arg(home).arg("--port-file").arg(home.join("port"));
    command.args(args);
    command
}

/// Starts `command` (an `ave serve` on `home`) with its stderr lines on a channel.
fn spawn_on(home: &Path, command: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child =
        command.env("HOME", home).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = stderr_lines(&mut child);
    (child, lines)
}

/// An `ave serve` on its own home, with the given extra arguments.
fn serve_home(home: &Path, extra: &[&str]) -> (Child, u16, mpsc::Receiver<String>) {
    let (child, lines) = spawn_on(home, &mut ave_serve(home, extra));
    let port = listening_port(&lines);
    (child, port, lines)
}

/// `ave serve --replace` on `home`, and its stderr lines.
fn replace(home: &Path, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    spawn_on(home, ave_serve(home, &["--replace"]).args(extra))
}

/// Lines until one contains `needle`, within `T`.
fn line_with(lines: &mpsc::Receiver<String>, needle: &str) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(needle) {
            return Ok(line);
        }
        seen.push(line);
    }
    Err(seen)
}

#[test]
fn f5_hostile_handover_messages_leave_the_instance_replaceable() {
    let home = TempDir::new("handover-hostile");
    let (mut old, port, old_lines) = serve_home(home.path(), &["--authkey", "k"]);
    let socket = handover_socket(home.path());
    // A body length that wraps the total to zero, a huge one, and a header that lies.
    let wrap = u64::MAX - 13;
    for body_len in [wrap, 1 << 40, 0] {
        let mut peer = UnixStream::connect(&socket).unwrap();
        let mut message = 2u32.to_be_bytes().to_vec();
        message.extend_from_slice(&body_len.to_be_bytes());
        message.extend_from_slice(b"{}");
        peer.write_all(&message).unwrap();
        peer.set_read_timeout(Some(T)).unwrap();
        // The instance gives up on this peer (it closes), and nothing else.
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest);
    }
    assert!(old.try_wait().unwrap().is_none(), "the instance died");
    assert!(socket.exists(), "the handover socket is gone");
    let (mut good, ok) = Raw::handshake(port, Some("k"));
    assert!(ok);
    assert_eq!(good.call("sync_ping", json!([])), json!({"result": "pong"}));
    // And it can still be replaced.
    let (mut new, lines) = replace(home.path(), &["--authkey", "k"]);
    line_with(&lines, "took over").expect("the replace took over");
    assert_eq!(wait_exit(&mut old, &old_lines).code(), Some(0));
    let _ = new.kill();
    let _ = new.wait();
}

/// Waits (within `T`) for a child to end: its stderr reaches end of file, then its status.
fn wait_exit(child: &mut Child, lines: &mpsc::Receiver<String>) -> ExitStatus {
    let deadline = Instant::now() + T;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return child.wait().unwrap(),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the child did not end within {T:?}"),
        }
    }
}

#[test]
fn f11_sighup_stops_cleanly_and_removes_the_handover_socket() {
    let home = TempDir::new("sighup");
    let (mut child, port, lines) = serve_home(home.path(), &[]);
    assert!(Raw::handshake(port, None).0.call("sync_ping", json!([]))["result"] == "pong");
    assert!(handover_socket(home.path()).exists());
    let status = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(wait_exit(&mut child, &lines).code(), Some(0));
    assert!(!handover_socket(home.path()).exists(), "a stale handover socket is left");
}

/// Starts `ave serve` with a descriptor limit of `fds` (soft and hard), keyed with `k`.
fn serve_with_fd_limit(dir: &Path, fds: u32) -> (Child, u16, mpsc::Receiver<String>) {
    let script = format!(
        "ulimit -n {fds} && exec \"$0\" serve --authkey k --port-file \"$1\" --home \"$2\""
    );
    let mut command = Command::new("sh");
    command.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_ave")).arg(dir.join("port")).arg(dir);
    let (child, lines) = spawn_on(dir, &mut command);
    let port = listening_port(&lines);
    (child, port, lines)
}

#[test]
fn f4_a_valid_key_is_served_when_descriptors_run_out() {
    let dir = TempDir::new("lockout");
    let (mut child, port, lines) = serve_with_fd_limit(dir.path(), 48);
    // Wrong-key connections, kept open, until the server cannot accept any more.
    let mut strangers = Vec::new();
    for _ in 0..48 {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut raw = Raw { stream };
        let Some(challenge) = raw.read_frame_or_timeout() else { break };
        raw.write_frame(&respond(&challenge, Some("wrong")).unwrap());
        if raw.read_frame_or_timeout().is_none() {
            break;
        }
        strangers.push(raw);
    }
    assert!(strangers.len() > 10, "only {} connections", strangers.len());
    // The right key is served within a second or two: an anonymous idle connection makes room.
    let started = Instant::now();
    let (mut good, ok) = Raw::handshake(port, Some("k"));
    assert!(ok);
    assert_eq!(good.call("whoami", json!([])), json!({"result": "k"}));
    assert!(started.elapsed() < Duration::from_secs(5), "served after {:?}", started.elapsed());
    // Not a warning every 100 ms while descriptors are short.
    let quiet_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet_until {
        let _ = lines.recv_timeout(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log: Vec<String> = lines.try_iter().collect();
    let accept_warnings = log.iter().filter(|l| l.contains("accept")).count();
    assert!(accept_warnings <= 3, "{accept_warnings} accept warnings: {log:#?}");
}

impl Raw {
    /// One frame, or `None` at end of stream or when the read timeout expires.
    fn read_frame_or_timeout(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some(payload)
    }
}

#[test]
fn f7_a_call_in_flight_does_not_block_a_replace() {
    let home = TempDir::new("drain");
    let (mut old, port, old_lines) = serve_home(home.path(), &["--authkey", "k", "--drain", "4"]);
    // Two connections in a call (one short, one longer than the drain), one idle.
    let (mut short, _) = Raw::handshake(port, Some("k"));
    short.request("sleep", json!([1]));
    let (mut long, _) = Raw::handshake(port, Some("k"));
    long.request("sleep", json!([600]));
    let (mut idle, _) = Raw::handshake(port, Some("k"));
    let old_pid = idle.call("get_pid", json!([]))["result"].clone();
    // The replace succeeds at once and takes the idle connection only.
    let started = Instant::now();
    let (mut new, lines) = replace(home.path(), &["--authkey", "k"]);
    line_with(&lines, "listening on").expect("the new instance listens");
    let took = line_with(&lines, "took over 1 connection").expect("the idle connection moved");
    assert!(took.ends_with("; 2 more follow as their calls end"), "{took}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let new_pid = idle.call("get_pid", json!([]))["result"].clone();
    assert_ne!(new_pid, old_pid);
    assert_eq!(new_pid, json!(new.id()));
    // New clients are served by the new instance right away.
    let (mut fresh, _) = Raw::handshake(port, Some("k"));
    assert_eq!(fresh.call("get_pid", json!([]))["result"], json!(new.id()));
    // The old instance answers the short call, whose connection then moves too; it ends
    // the long one at the drain deadline with an Exit, then exits 0.
    let answer: Value = serde_json::from_slice(&short.read_frame().unwrap()).unwrap();
    assert_eq!(answer, json!({"result": null}));
    assert_eq!(short.call("get_pid", json!([]))["result"], json!(new.id()));
    let cut: Value = serde_json::from_slice(&long.read_frame().unwrap()).unwrap();
    assert_eq!(exception(&cut)["type"], "Exit", "{cut}");
    assert!(long.read_frame().is_none(), "the cut call's connection is closed");
    assert_eq!(wait_exit(&mut old, &old_lines).code(), Some(0));
    let _ = new.kill();
    let _ = new.wait();
}

#[test]
fn f7_a_call_whose_client_left_is_cancelled() {
    let home = TempDir::new("drain-gone");
    let (mut old, port, old_lines) = serve_home(home.path(), &["--authkey", "k"]);
    let (mut busy, _) = Raw::handshake(port, Some("k"));
    busy.request("sleep", json!([600]));
    // The old instance's own word that the call runs: it is not idle any more.
    let (mut other, _) = Raw::handshake(port, Some("k"));
    assert_eq!(other.call("sync_ping", json!([])), json!({"result": "pong"}));
    drop(busy);
    let (mut new, lines) = replace(home.path(), &["--authkey", "k"]);
    line_with(&lines, "took over").expect("the replace took over");
    // Default drain is 30 s; the call's client is gone, so the old instance ends now.
    assert_eq!(wait_exit(&mut old, &old_lines).code(), Some(0));
    let _ = new.kill();
    let _ = new.wait();
}

/// `ave serve --replace` on `home` held by the test hook between receiving everything and
/// committing; it goes on when its stdin (returned) is written to or closed.
fn replace_held(
    home: &Path,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>, std::process::ChildStdin) {
    let mut command = ave_serve(home, &["--replace"]);
    command.args(extra).env("AVE_TEST_HANDOVER_HOLD", "1").stdin(Stdio::piped());
    let (mut child, lines) = spawn_on(home, &mut command);
    line_with(&lines, "holding before the commit").expect("the successor holds");
    let hold = child.stdin.take().unwrap();
    (child, lines, hold)
}

/// Every stderr line of a child until it ends (within `T`), and its status.
fn finish(child: &mut Child, lines: &mpsc::Receiver<String>) -> (ExitStatus, Vec<String>) {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return (child.wait().unwrap(), seen),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the child did not end: {seen:#?}"),
        }
    }
}

#[test]
fn f11_a_second_replace_is_told_that_one_is_in_progress() {
    let home = TempDir::new("replace-twice");
    let (mut old, port, old_lines) = serve_home(home.path(), &["--authkey", "k"]);
    let (mut client, _) = Raw::handshake(port, Some("k"));
    let (mut first, first_lines, hold) = replace_held(home.path(), &["--authkey", "k"]);
    let (mut second, second_lines) = replace(home.path(), &["--authkey", "k"]);
    let (status, said) = finish(&mut second, &second_lines);
    assert_eq!(status.code(), Some(1), "{said:#?}");
    assert!(said.iter().any(|l| l.contains("another replace is in progress")), "{said:#?}");
    // The first replace goes on as if nothing happened.
    drop(hold);
    line_with(&first_lines, "took over 1 connection").expect("the first replace took over");
    assert_eq!(wait_exit(&mut old, &old_lines).code(), Some(0));
    assert_eq!(client.call("get_pid", json!([]))["result"], json!(first.id()));
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn f11_the_successor_keeps_everything_when_the_old_instance_dies_mid_handover() {
    let home = TempDir::new("replace-orphan");
    let (mut old, port, _old_lines) = serve_home(home.path(), &["--authkey", "k"]);
    let (mut client, _) = Raw::handshake(port, Some("k"));
    assert_eq!(client.call("get_pid", json!([]))["result"], json!(old.id()));
    let (mut new, lines, hold) = replace_held(home.path(), &["--authkey", "k"]);
    // The old instance dies after the successor received everything, before it confirms.
    old.kill().unwrap();
    old.wait().unwrap();
    drop(hold);
    line_with(&lines, "took over 1 connection").expect("the successor serves what it received");
    assert_eq!(client.call("get_pid", json!([]))["result"], json!(new.id()));
    let (mut fresh, ok) = Raw::handshake(port, Some("k"));
    assert!(ok);
    assert_eq!(fresh.call("get_pid", json!([]))["result"], json!(new.id()));
    let _ = new.kill();
    let _ = new.wait();
}
