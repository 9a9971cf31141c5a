//! `ave serve` under a service manager: readiness, status, watchdog, stopping, the
//! `MAINPID=` of a `--replace` successor (against a datagram socket the test reads, as
//! systemd's), socket activation (the real `systemd-socket-activate`, and a hand-built
//! `LISTEN_FDS`), and the descriptor store across a `kill -9`, with the restart gap
//! measured.

// The skip reason and the measured restart gap go to the test's output.
#![allow(clippy::print_stderr)]

use std::{
    io::{BufRead, BufReader, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::net::{UnixDatagram, UnixStream},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use ave::network::fdtx::FdTx;

use crate::serve::TempDir;

/// A bound on every wait: only reached when something is broken.
const LIMIT: Duration = Duration::from_secs(20);

/// The test's stand-in for systemd's notification socket: it reads what `ave serve` sends
/// and keeps the descriptors of `FDSTORE=1`.
struct Manager {
    socket: FdTx,
    path: PathBuf,
    stored: Vec<OwnedFd>,
}

impl Manager {
    fn new(dir: &Path) -> Manager {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        // fdtx's receive is a recvmsg with SCM_RIGHTS, which reads one datagram.
        let socket = FdTx::from_stream(UnixStream::from(OwnedFd::from(socket)));
        socket.set_timeout(Some(LIMIT)).unwrap();
        Manager { socket, path, stored: Vec::new() }
    }

    /// The next datagram; keeps the descriptors of `FDSTORE=1`.
    fn next(&mut self) -> String {
        let received = self.socket.get(4096, 8).expect("a datagram from ave serve");
        let text = String::from_utf8(received.bytes).unwrap();
        if text.lines().any(|l| l == "FDSTORE=1") {
            self.stored.extend(received.fds);
        } else {
            assert!(received.fds.is_empty(), "{text}");
        }
        text
    }

    /// Reads datagrams until one has the line `line`; returns it.
    fn until(&mut self, line: &str) -> String {
        loop {
            let text = self.next();
            if text.lines().any(|l| l == line) {
                return text;
            }
        }
    }

    /// Whatever is queued, without waiting.
    fn queued(&mut self) -> Vec<String> {
        self.socket.set_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut all = Vec::new();
        while let Ok(received) = self.socket.get(4096, 8) {
            all.push(String::from_utf8(received.bytes).unwrap());
        }
        self.socket.set_timeout(Some(LIMIT)).unwrap();
        all
    }
}

/// `ave serve` started the way a service manager starts it.
struct Serve {
    child: Child,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Serve {
    /// Starts `ave serve ARGS` with `NOTIFY_SOCKET` and the extra environment; with
    /// `listener`, that socket becomes descriptor 3 and `LISTEN_FDS=1`, `LISTEN_PID` (the
    /// child's own pid, through the shell's `$$` before it execs), `LISTEN_FDNAMES=NAME`.
    fn start(
        home: &Path,
        notify: Option<&Path>,
        args: &[&str],
        envs: &[(&str, &str)],
        listener: Option<(&OwnedFd, &str)>,
    ) -> Serve {
        let mut command = match listener {
            None => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ave"));
                c.arg("serve");
                c
            }
            Some((fd, name)) => {
                // Inheritable for the shell, which moves it to 3 as systemd would.
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
                    .unwrap();
                let n = fd.as_raw_fd();
                let to_3 = if n == 3 { String::new() } else { format!("exec 3<&{n} {n}<&-; ") };
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "{to_3}LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES={name} \
                         exec \"$0\" serve \"$@\""
                    ))
                    .arg(env!("CARGO_BIN_EXE_ave"));
                c
            }
        };
        command
            .args(["--home", home.to_str().unwrap()])
            .args(args)
            .env("HOME", home)
            .env_remove("RUST_LOG")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("WATCHDOG_USEC")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match notify {
            Some(path) => command.env("NOTIFY_SOCKET", path),
            None => command.env_remove("NOTIFY_SOCKET"),
        };
        let mut child = command.spawn().expect("start ave serve");
        if let Some((fd, _)) = listener {
            // Close-on-exec again: no other child of this test inherits it.
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
                .unwrap();
        }
        let stderr = BufReader::new(child.stderr.take().unwrap());
        Serve { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stderr line.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stderr.read_line(&mut line).unwrap();
        line
    }

    /// The address of the `listening on ADDR` line.
    fn listening(&mut self) -> SocketAddr {
        let line = self.line();
        let rest =
            line.strip_prefix("ave serve: listening on ").unwrap_or_else(|| panic!("{line:?}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits for the exit; the rest of stderr.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        (self.child.wait().unwrap(), rest)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the server's first frame (the handshake challenge) on a new connection.
fn greeted(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, LIMIT)?;
    stream.set_read_timeout(Some(LIMIT))?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)
}

#[test]
fn readiness_status_and_stopping() {
    let dir = TempDir::new("notify");
    let mut manager = Manager::new(dir.path());
    let mut serve = Serve::start(dir.path(), Some(&manager.path), &[], &[], None);
    let addr = serve.listening();
    let first = manager.next();
    assert_eq!(first, "FDSTORE=1\nFDNAME=ave-serve-listener");
    assert_eq!(manager.stored.len(), 1, "the listener travels with FDSTORE=1");
    assert_eq!(manager.next(), format!("READY=1\nSTATUS=serving 0 connections on {addr}"));
    // READY=1 means connections are accepted.
    greeted(addr).unwrap();
    let _idle = TcpStream::connect(addr).unwrap();
    manager.until(&format!("STATUS=serving 1 connection on {addr}"));
    serve.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(manager.until("STOPPING=1"), "STOPPING=1\nSTATUS=stopped: SIGTERM");
    let (status, rest) = serve.wait();
    assert!(status.success(), "{rest}");
}

#[test]
fn stop_by_rpc_says_why() {
    let dir = TempDir::new("notify-stop");
    let mut manager = Manager::new(dir.path());
    let mut serve = Serve::start(dir.path(), Some(&manager.path), &[], &[], None);
    let addr = serve.listening();
    manager.until("READY=1");
    let out = crate::ave(&["call", "--timeout", "10", &addr.to_string(), "stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(manager.until("STOPPING=1"), "STOPPING=1\nSTATUS=stopped: stop() was called");
    assert!(serve.wait().0.success());
}

#[test]
fn watchdog_pings_at_half_the_interval() {
    let dir = TempDir::new("watchdog");
    let mut manager = Manager::new(dir.path());
    let mut serve =
        Serve::start(dir.path(), Some(&manager.path), &[], &[("WATCHDOG_USEC", "400000")], None);
    serve.listening();
    assert_eq!(serve.line(), "ave serve: watchdog: WATCHDOG=1 every 0.2 s\n");
    manager.until("READY=1");
    let started = Instant::now();
    for _ in 0..3 {
        manager.until("WATCHDOG=1");
    }
    // Three pings at 0.2 s take at least 0.4 s (the first may come at once).
    assert!(started.elapsed() >= Duration::from_millis(350), "{:?}", started.elapsed());
    drop(serve);

    // A watchdog meant for another process is not ours.
    let other = TempDir::new("watchdog-other");
    let mut manager = Manager::new(other.path());
    let mut serve = Serve::start(
        dir.path(),
        Some(&manager.path),
        &[],
        &[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "1")],
        None,
    );
    serve.listening();
    manager.until("READY=1");
    serve.signal(nix::sys::signal::Signal::SIGTERM);
    manager.until("STOPPING=1");
    let (status, _) = serve.wait();
    assert!(status.success());
    assert!(manager.queued().iter().all(|d| !d.contains("WATCHDOG")));
}

#[test]
fn a_replace_successor_becomes_the_main_pid() {
    let dir = TempDir::new("mainpid");
    let mut manager = Manager::new(dir.path());
    let mut old = Serve::start(dir.path(), Some(&manager.path), &[], &[], None);
    let addr = old.listening();
    manager.until("READY=1");
    let idle = TcpStream::connect(addr).unwrap();
    manager.until(&format!("STATUS=serving 1 connection on {addr}"));
    let mut new = Serve::start(dir.path(), Some(&manager.path), &["--replace"], &[], None);
    assert_eq!(new.listening(), addr);
    let said = manager.until("READY=1");
    assert_eq!(
        said,
        format!(
            "MAINPID={}\nREADY=1\nSTATUS=took over 1 connection from pid {}",
            new.pid(),
            old.pid()
        )
    );
    let (status, rest) = old.wait();
    assert!(status.success(), "{rest}");
    // The old instance does not say STOPPING=1: the unit goes on in its successor.
    assert!(manager.queued().iter().all(|d| !d.contains("STOPPING=1")));
    drop(idle);
    new.signal(nix::sys::signal::Signal::SIGTERM);
    manager.until("STOPPING=1");
    assert!(new.wait().0.success());
}

#[test]
fn a_hand_built_listen_fds_is_served_instead_of_binding() {
    let dir = TempDir::new("listen-fds");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = OwnedFd::from(listener);
    let mut manager = Manager::new(dir.path());
    let mut serve = Serve::start(
        dir.path(),
        Some(&manager.path),
        &["--port-file", dir.path().join("port").to_str().unwrap()],
        &[],
        Some((&fd, "web")),
    );
    let line = serve.line();
    assert_eq!(line, format!("ave serve: listening on {addr} (from the service manager)\n"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("port")).unwrap(),
        format!("{}\n", addr.port())
    );
    // An inherited listener is not stored again.
    assert_eq!(manager.next(), format!("READY=1\nSTATUS=serving 0 connections on {addr}"));
    greeted(addr).unwrap();
    drop(serve);

    // LISTEN_PID of another process: the descriptors are not ours; ave serve binds.
    let mut serve =
        Serve::start(dir.path(), None, &[], &[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")], None);
    assert_ne!(serve.listening(), addr);
}

#[test]
fn the_real_systemd_socket_activate() {
    let Ok(found) = Command::new("systemd-socket-activate").arg("--help").output() else {
        // .ci/run installs it (Debian package systemd); a developer machine may lack it.
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    };
    assert!(found.status.success());
    let dir = TempDir::new("socket-activate");
    // A free port: bound, then released for systemd-socket-activate to bind.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &addr.to_string(), "-E", "HOME"])
        .arg(env!("CARGO_BIN_EXE_ave"))
        .args(["serve", "--home", dir.path().to_str().unwrap(), "--port", "1"])
        .env("HOME", dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("Listening on 127.0.0.1:"), "{line:?}");
    // The first connection starts ave serve with the socket as descriptor 3; it is
    // answered by ave serve, which did not bind (--port 1 would have failed).
    greeted(addr).unwrap();
    let mut lines = Vec::new();
    loop {
        line.clear();
        stderr.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "{lines:?}");
        lines.push(line.clone());
        if line.starts_with("ave serve: listening on") {
            break;
        }
    }
    assert_eq!(line, format!("ave serve: listening on {addr} (from the service manager)\n"));
    let out = crate::ave(&["call", "--timeout", "10", &addr.to_string(), "sync_ping"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "\"pong\"\n");
    // systemd-socket-activate became ave serve (exec): SIGTERM ends it cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.ends_with("ave serve: stopped: SIGTERM\n"), "{rest}");
}

/// What a client saw while the server was killed and restarted.
#[derive(Debug, Default)]
struct Gap {
    attempts: usize,
    /// Connections refused: what the listener kept by the manager must prevent.
    refused: usize,
    /// Other failures: a connection the killed instance had accepted but not yet greeted
    /// is reset with it (it was not refused; its client retries).
    lost: Vec<String>,
    longest: Duration,
}

/// Connects again and again (each time until the greeting arrives) until told to stop;
/// reports each success on `progress`.
fn keep_connecting(addr: SocketAddr, stop: Arc<AtomicBool>, progress: mpsc::Sender<()>) -> Gap {
    let mut gap = Gap::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && gap.attempts < 100_000 {
        gap.attempts += 1;
        let started = Instant::now();
        match greeted(addr) {
            Ok(()) => {
                gap.longest = gap.longest.max(started.elapsed());
                let _ = progress.send(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => gap.refused += 1,
            Err(e) => gap.lost.push(e.to_string()),
        }
    }
    gap
}

/// `ave serve` killed with SIGKILL while a client keeps connecting, then started again with
/// the listener the manager kept: no connection is refused; returns the longest wait.
fn restart_gap(socket_unit: bool) -> Gap {
    let dir = TempDir::new(if socket_unit { "gap-socket" } else { "gap-store" });
    let mut manager = Manager::new(dir.path());
    let (first, addr, name) = if socket_unit {
        // Like a .socket unit: the manager binds and passes the listener on each start.
        let listener = ave::network::connection::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        manager.stored.push(OwnedFd::from(listener));
        let serve = Serve::start(
            dir.path(),
            Some(&manager.path),
            &[],
            &[],
            Some((&manager.stored[0], "ave-serve.socket")),
        );
        (serve, addr, "ave-serve.socket")
    } else {
        // The fd store: ave serve binds, and stores its listener with FDSTORE=1.
        let mut serve = Serve::start(dir.path(), Some(&manager.path), &[], &[], None);
        let addr = serve.listening();
        (serve, addr, "ave-serve-listener")
    };
    manager.until("READY=1");
    assert_eq!(manager.stored.len(), 1);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, progress) = mpsc::channel();
    let client = std::thread::spawn({
        let stop = stop.clone();
        move || keep_connecting(addr, stop, tx)
    });
    let served = |n: usize| {
        for _ in 0..n {
            progress.recv_timeout(LIMIT).expect("the client is served");
        }
    };
    served(20);
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = first.wait();
    // The descriptors of the killed instance are gone; the manager's copy keeps the
    // socket listening, so new connections wait in its backlog.
    let second =
        Serve::start(dir.path(), Some(&manager.path), &[], &[], Some((&manager.stored[0], name)));
    manager.until("READY=1");
    served(20);
    stop.store(true, Ordering::SeqCst);
    let gap = client.join().unwrap();
    drop(second);
    gap
}

#[test]
fn the_fd_store_keeps_the_listener_across_kill_9() {
    let gap = restart_gap(false);
    eprintln!(
        "fd store: {} connections, {} refused, {} reset by the killed instance, longest wait for the greeting {:.1} ms",
        gap.attempts,
        gap.refused,
        gap.lost.len(),
        gap.longest.as_secs_f64() * 1e3
    );
    assert_eq!(gap.refused, 0, "{gap:?}");
    assert!(gap.lost.len() <= 1, "{gap:?}");
}

#[test]
fn a_socket_units_listener_survives_kill_9() {
    let gap = restart_gap(true);
    eprintln!(
        "socket unit: {} connections, {} refused, {} reset by the killed instance, longest wait for the greeting {:.1} ms",
        gap.attempts,
        gap.refused,
        gap.lost.len(),
        gap.longest.as_secs_f64() * 1e3
    );
    assert_eq!(gap.refused, 0, "{gap:?}");
    assert!(gap.lost.len() <= 1, "{gap:?}");
}
