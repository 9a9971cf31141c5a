//! A `Control` served by a child process (the `process_control` fixture): shutdown on
//! SIGTERM, death with its parent, SIGUSR1 hickup dumps and their forwarding to `ave-`
//! children, and deferred joins that reap children without blocking the server.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use ave::network::{
    BlockingRemoteControl,
    wire::handshake::{self, Algorithm, CHALLENGE_PREFIX},
};
use ave_test_support::TempDir;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::process::{CONTROL, Fixture, gone_within, pid, signal, stat, wait_until};

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
    let mut callers = Vec::new();
    for (file, name) in [("ave-probe.pid", "ave-probe"), ("other.pid", "-")] {
        let path = home.path().join(file);
        let cmd = json!(["python3", "-c", probe, path.to_str().unwrap(), name]);
        // Each on its own connection (a connection serves one call at a time), kept open:
        // a call whose client has gone is cancelled, and the probe it runs with it.
        let caller = server.client(None);
        caller.call_one_way("run_external", [cmd]).unwrap();
        callers.push(caller);
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
