//! Integration tests of ave-network: real sockets on loopback, the recorded vectors of
//! the original, and independent Python 3 peers written from the specification.
//!
//! Modules follow the original's test modules (spec/ave-tests.md): `connection`,
//! `control_sync` (raw protocol probes), `control_async` (the client against the server),
//! `async_rpc`, `exception` (which also covers the `decorators` access rules), plus
//! `vectors`, `python`, `hostile` and `handover`; `process`, `daemon`, `defjoin`,
//! `hickup` and `pipe` for what can be checked without forking this multi-threaded
//! harness (the rest runs in the `tests` package's fixtures).

mod async_rpc;
mod connection;
mod control_async;
mod control_sync;
mod daemon;
mod defjoin;
mod exception;
mod fdtx;
mod handover;
mod handover_socket;
mod hardening;
mod hickup;
mod hostile;
mod pipe;
mod process;
mod python;
mod vectors;

use std::{
    path::PathBuf,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ave_network::{
    Address, Control, Error, Service,
    connection::BlockingConnection,
    control::{ControlBuilder, ControlHandle, Stopped},
    diagnostic::{self, Event},
    wire::{
        handshake::{self, Algorithm, CHALLENGE_PREFIX},
        json,
    },
};
pub(crate) use ave_test_support::{
    TempDir,
    python::{Peer, python3},
};
use serde_json::{Value, json};

/// The timeout of test operations that should succeed at once.
pub(crate) const T: Option<Duration> = Some(Duration::from_secs(5));

/// The bound on waiting for a Python peer (its start, its end): generous, since an
/// interpreter starts slowly on a loaded machine; it only bounds a failure.
pub(crate) const PEER_LIMIT: Duration = Duration::from_secs(30);

/// A `Control` running on its own thread and runtime.
pub(crate) struct Server {
    pub(crate) port: u16,
    pub(crate) handle: ControlHandle,
    thread: Option<JoinHandle<Result<Stopped, Error>>>,
}

impl Server {
    pub(crate) fn start(
        service: Service,
        configure: impl FnOnce(ControlBuilder) -> ControlBuilder,
    ) -> Server {
        let control = configure(Control::builder(service)).build().expect("build the control");
        Server::run(control)
    }

    pub(crate) fn run(control: Control) -> Server {
        let port = control.port();
        let handle = control.handle();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(control.run())
        });
        Server { port, handle, thread: Some(thread) }
    }

    pub(crate) fn address(&self) -> Address {
        Address::new("127.0.0.1", self.port)
    }

    /// Waits for the server to stop by itself and returns why it stopped.
    pub(crate) fn join(&mut self) -> Stopped {
        let thread = self.thread.take().expect("the server was already joined");
        thread.join().expect("the server thread").expect("the server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.stop();
            let _ = thread.join();
        }
    }
}

/// The events of a diagnostic service.
pub(crate) struct Events(mpsc::Receiver<Event>);

impl Events {
    /// The first event that matches within `within`; other events are dropped.
    pub(crate) fn wait(
        &self,
        within: Duration,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(event) if matches(&event) => return event,
                Ok(_) => continue,
                Err(_) => panic!("no {what} event within {within:?}"),
            }
        }
    }

    /// Every event received within `within`.
    pub(crate) fn collect(&self, within: Duration) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while let Ok(event) =
            self.0.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(event);
        }
        out
    }
}

/// The diagnostic service with its events, and the options to extend it.
pub(crate) fn diagnostic_service() -> (diagnostic::Options, Events) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let options = diagnostic::Options::new().events(move |event| {
        let _ = tx.lock().unwrap().send(event);
    });
    (options, Events(rx))
}

/// A diagnostic server configured by `configure`.
pub(crate) fn diagnostic(
    configure: impl FnOnce(ControlBuilder) -> ControlBuilder,
) -> (Server, Events) {
    let (options, events) = diagnostic_service();
    (Server::start(diagnostic::service(options), configure), events)
}

/// A raw protocol client: framing by hand, HMAC-MD5 computed here, JSON as text.
pub(crate) struct Probe {
    pub(crate) conn: BlockingConnection,
}

impl Probe {
    pub(crate) fn connect(port: u16) -> Probe {
        let conn = BlockingConnection::connect(&Address::new("127.0.0.1", port), T, false)
            .expect("connect the probe");
        Probe { conn }
    }

    pub(crate) fn recv(&mut self) -> Vec<u8> {
        self.conn.get(T).expect("a frame")
    }

    pub(crate) fn send(&mut self, payload: &[u8]) {
        self.conn.put(payload, T).expect("send a frame");
    }

    /// Answers the challenge with HMAC-MD5 and returns the verdict frame.
    pub(crate) fn handshake(&mut self, key: Option<&str>) -> Vec<u8> {
        let challenge = self.recv();
        assert!(challenge.starts_with(CHALLENGE_PREFIX), "{challenge:?}");
        let message = &challenge[CHALLENGE_PREFIX.len()..];
        self.send(&handshake::digest(Algorithm::Md5, key.unwrap_or("").as_bytes(), message));
        self.recv()
    }

    pub(crate) fn authenticated(port: u16, key: Option<&str>) -> Probe {
        let mut probe = Probe::connect(port);
        probe.handshake(key);
        probe
    }

    /// Sends a request payload and parses the reply.
    pub(crate) fn request(&mut self, payload: &str) -> Value {
        self.send(payload.as_bytes());
        let reply = self.recv();
        json::parse(&reply).expect("the reply is JSON")
    }

    pub(crate) fn call(&mut self, method: &str, vargs: Value, kwargs: Value) -> Value {
        let request = json!({"params": {"vargs": vargs, "kwargs": kwargs}, "resource": null,
                             "method": method, "async": false});
        self.request(&request.to_string())
    }

    pub(crate) fn call_one_way(&mut self, method: &str, vargs: Value) {
        let request = json!({"params": {"vargs": vargs, "kwargs": {}}, "resource": null,
                             "method": method, "async": true});
        self.send(request.to_string().as_bytes());
    }

    /// Whether no frame arrives within `within`.
    pub(crate) fn silent_for(&mut self, within: Duration) -> bool {
        match self.conn.get(Some(within)) {
            Err(e) if e.is_timeout() => true,
            Err(e) => panic!("{e}"),
            Ok(frame) => panic!("unexpected frame {}", String::from_utf8_lossy(&frame)),
        }
    }

    /// Whether the server closes the connection within `within` (frames before are
    /// skipped).
    pub(crate) fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.conn.get(Some(left)) {
                Ok(_) => continue,
                Err(e) if e.is_closed() => return true,
                Err(e) if e.is_timeout() => return false,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

pub(crate) fn peer(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/peers").join(name)
}

/// The Python peer server: started, its port read from its first line, killed on drop.
pub(crate) struct PythonServer {
    _peer: Peer,
    pub(crate) port: u16,
}

impl PythonServer {
    pub(crate) fn start(args: &[&str]) -> PythonServer {
        let mut peer = Peer::start(python3().arg(peer("server.py")).args(args));
        let port = peer.port(PEER_LIMIT);
        PythonServer { _peer: peer, port }
    }

    pub(crate) fn address(&self) -> Address {
        Address::new("127.0.0.1", self.port)
    }
}

/// Raises the descriptor limit for tests that open many connections.
pub(crate) fn enough_descriptors(needed: u64) {
    let limit = ave_network::raise_fd_limit().expect("raise the descriptor limit");
    assert!(limit >= needed, "the hard descriptor limit {limit} is below {needed}");
}
