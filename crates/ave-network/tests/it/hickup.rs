//! Hickup dumps of a `Control` running in this harness: the file (name, mode, content,
//! no key text, no overwrite), forwarding to `ave-` children only, and SIGUSR1 through
//! tokio's signal handling. The same through a Control served by a child is in
//! `tests/e2e/process.rs`.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use ave_network::{BlockingRemoteControl, Service};

use crate::{PEER_LIMIT, Peer, Server, T, TempDir, python3};

/// The hickup dumps written under a home, sorted.
fn dumps(home: &TempDir) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(home.path().join(".ave/hickup"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn server(home: &Path, signals: bool) -> Server {
    let service = Service::builder("hick")
        .on_hickup(|handle| format!("{} connections served\n", handle.connections().len()))
        .build();
    Server::start(service, |b| {
        b.home(home)
            .authkey(Some("primary-secret"))
            .account("admin", Some("admin-secret"))
            .handle_signals(signals)
            .name("ave-hick")
    })
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

#[test]
fn a_dump_is_private_complete_and_holds_no_key() {
    let home = TempDir::new("hickup-file");
    let server = server(home.path(), false);
    let admin = BlockingRemoteControl::new(server.address(), Some("admin-secret"));
    admin.connect(T).unwrap();
    let anonymous = BlockingRemoteControl::new(server.address(), None);
    anonymous.connect(T).unwrap();
    let path = server.handle.hickup().unwrap();
    assert_eq!(path.parent().unwrap(), home.path().join(".ave/hickup"));
    let name = file_name(&path);
    assert!(name.ends_with(&format!("-ave-hick-{}", std::process::id())), "{name}");
    let (date, time) = (&name[..8], &name[9..15]);
    assert!(date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit()), "{name}");
    assert_eq!(&name[8..9], "-");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let content = fs::read_to_string(&path).unwrap();
    assert!(content.starts_with("AVE hickup dump\n"), "{content}");
    assert!(content.contains(&format!("threads:\n  {} ", std::process::id())), "{content}");
    assert!(content.contains(&format!("listening: {}", server.address())), "{content}");
    assert!(content.contains("connections: 2\n"), "{content}");
    assert!(content.contains("established, identity: the key of account \"admin\""), "{content}");
    assert!(content.contains("established, identity: none (not authenticated)"), "{content}");
    assert!(content.contains("service state:\n2 connections served\n"), "{content}");
    assert!(!content.contains("secret"), "a key leaked: {content}");
}

#[test]
fn dumps_in_the_same_second_do_not_overwrite_each_other() {
    let home = TempDir::new("hickup-same-second");
    let server = server(home.path(), false);
    let paths: Vec<PathBuf> = (0..5).map(|_| server.handle.hickup().unwrap()).collect();
    assert_eq!(dumps(&home).len(), 5);
    let mut names: Vec<&str> = paths.iter().map(|p| file_name(p)).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 5);
}

/// A Python child that blocks SIGUSR1 (so it stays pending, to be observed) and names
/// itself `name` (`-`: keeps its name).
fn probe(name: &str) -> Peer {
    let script = "import ctypes, signal, sys\n\
                  signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n\
                  if sys.argv[1] != '-':\n    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n\
                  print('ready', flush=True)\n\
                  sys.stdin.read()\n";
    let mut child = Peer::start(python3().args(["-c", script, name]).stdin(Stdio::piped()));
    assert_eq!(child.line(PEER_LIMIT), "ready");
    child
}

fn sigusr1_pending(child: &Peer) -> bool {
    let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("ShdPnd:")).unwrap();
    u64::from_str_radix(line[7..].trim(), 16).unwrap() & (1 << 9) != 0
}

#[test]
fn sigusr1_is_forwarded_to_ave_children_only() {
    let home = TempDir::new("hickup-forward");
    let server = server(home.path(), false);
    let ave = probe("ave-probe");
    let other = probe("-");
    let path = server.handle.hickup().unwrap();
    // Forwarding is done before the dump is written.
    assert!(sigusr1_pending(&ave), "the ave- child did not get SIGUSR1");
    assert!(!sigusr1_pending(&other), "a child outside AVE got SIGUSR1");
    let content = fs::read_to_string(path).unwrap();
    assert!(
        content.contains(&format!("SIGUSR1 forwarded to: [{} (ave-probe)]", ave.id())),
        "{content}"
    );
    // Their stdin closes: they end.
    for child in [ave, other] {
        child.finish(PEER_LIMIT);
    }
}

#[test]
fn sigusr1_to_the_process_writes_a_dump() {
    let home = TempDir::new("hickup-signal");
    let server = server(home.path(), true);
    // The handlers are installed once the loop runs: a call proves it does.
    let client = BlockingRemoteControl::new(server.address(), Some("primary-secret"));
    client.connect(T).unwrap();
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGUSR1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while dumps(&home).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let dumps = dumps(&home);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let content = fs::read_to_string(&dumps[0]).unwrap();
    assert!(content.contains("established, identity: the primary key"), "{content}");
    assert!(!server.handle.is_shutting_down());
}
