//! The live handover between two `Control`s over the handover socket (in one process;
//! the same through real `ave serve` processes is in ave-cli's `replace` tests): what
//! moves, what the clients see, and every rollback.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use ave_network::{
    Control, Error, Service,
    control::{ConnectionPhase, Params, Stopped},
    handover::{self, HandoverOptions, HandoverSocket, Successor},
    wire::handshake::{Algorithm, CHALLENGE_PREFIX, digest},
};
use serde_json::json;

use crate::{Probe, Server, T, TempDir, diagnostic_service};

/// A diagnostic service that answers `which` with its name, and `hold(seconds)`, which
/// reports on `started` when it begins and returns after `seconds`.
fn service(name: &'static str, started: Option<mpsc::Sender<()>>) -> Service {
    let (options, _events) = diagnostic_service();
    let started = Arc::new(Mutex::new(started));
    ave_network::diagnostic::builder(options)
        .rpc("which", Params::none(), move |_, ()| async move { Ok(name) })
        .rpc("hold", ave_network::control::params(["seconds"]), move |_, (seconds,): (f64,)| {
            if let Some(tx) = started.lock().unwrap().as_ref() {
                let _ = tx.send(());
            }
            async move {
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                Ok("held")
            }
        })
        .build()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The old instance's handover socket, served on its own thread.
fn offer(
    server: &Server,
    path: &Path,
    options: HandoverOptions,
) -> JoinHandle<Result<Option<Successor>, Error>> {
    let socket = HandoverSocket::bind(path).unwrap();
    let handle = server.handle.clone();
    std::thread::spawn(move || runtime().block_on(socket.serve(handle, options)))
}

fn socket_in(dir: &TempDir) -> PathBuf {
    handover::socket_path(dir.path(), "ave-test")
}

fn which(probe: &mut Probe) -> serde_json::Value {
    probe.call("which", json!([]), json!({}))
}

/// Takes over at `path` and serves what was inherited as service `B`.
fn take_over_as_b(path: &Path) -> (Server, usize) {
    let rt = runtime();
    let inheritance = rt.block_on(handover::take_over(path, T.unwrap())).unwrap();
    let count = inheritance.connections().len();
    let inherited = rt.block_on(inheritance.commit()).unwrap();
    let control =
        inherited.into_control(Control::builder(service("B", None)).authkey(Some("k"))).unwrap();
    (Server::run(control), count)
}

#[test]
fn a_successor_takes_over_mid_frame_and_mid_handshake() {
    let dir = TempDir::new("handover-move");
    let path = socket_in(&dir);
    let mut a = Server::start(service("A", None), |b| b.authkey(Some("k")));
    let offered = offer(&a, &path, HandoverOptions::default());

    // An authenticated client with half a request sent.
    let mut half = Probe::authenticated(a.port, Some("k"));
    assert_eq!(which(&mut half), json!({"result": "A"}));
    let mut request = Vec::new();
    ave_network::wire::frame::encode(
        br#"{"method": "whoami", "params": {"vargs": [], "kwargs": {}}}"#,
        &mut request,
    )
    .unwrap();
    let (head, tail) = request.split_at(25);
    half.conn.write(head, T).unwrap();
    // A client in the middle of its handshake.
    let mut greeting = Probe::connect(a.port);
    let challenge = greeting.recv();
    // An anonymous one, which calls during the handover.
    let mut anonymous = Probe::authenticated(a.port, None);
    assert_eq!(which(&mut anonymous), json!({"result": "A"}));

    let rt = runtime();
    let inheritance = rt.block_on(handover::take_over(&path, T.unwrap())).unwrap();
    assert_eq!(inheritance.connections().len(), 3);
    assert_eq!(inheritance.local_addr().map(|a| a.port()), Some(a.port));
    assert_eq!(inheritance.service(), "ave-diagnostic");
    let phases: Vec<&ConnectionPhase> =
        inheritance.connections().iter().map(|c| &c.phase).collect();
    assert!(phases.contains(&&ConnectionPhase::Challenged { challenge: challenge.clone() }));
    // Nobody serves now: this request waits in the kernel for the successor.
    anonymous.call_one_way("which", json!([]));
    anonymous.send(br#"{"method": "which", "params": {"vargs": [], "kwargs": {}}}"#);
    // A new client connects meanwhile: it waits in the listener's backlog.
    let mut newcomer = Probe::connect(a.port);

    let inherited = rt.block_on(inheritance.commit()).unwrap();
    let control =
        inherited.into_control(Control::builder(service("B", None)).authkey(Some("k"))).unwrap();
    let b = Server::run(control);
    assert_eq!(b.port, a.port);

    let successor = offered.join().unwrap().unwrap().expect("a successor");
    assert_eq!((successor.connections, successor.listener), (3, true));
    assert_eq!(successor.pid, std::process::id());
    assert_eq!(a.join(), Stopped::Replaced);

    half.conn.write(tail, T).unwrap();
    assert_eq!(ave_network::wire::json::parse(&half.recv()).unwrap(), json!({"result": "k"}));
    assert_eq!(which(&mut half), json!({"result": "B"}));
    assert_eq!(ave_network::wire::json::parse(&anonymous.recv()).unwrap(), json!({"result": "B"}));
    assert_eq!(anonymous.call("whoami", json!([]), json!({})), json!({"result": null}));
    greeting.send(&digest(Algorithm::Md5, b"k", &challenge[CHALLENGE_PREFIX.len()..]));
    assert_eq!(greeting.recv(), br#"{"authenticated": true}"#);
    assert_eq!(which(&mut greeting), json!({"result": "B"}));
    newcomer.handshake(Some("k"));
    assert_eq!(which(&mut newcomer), json!({"result": "B"}));

    // The old instance closed its copies: when the successor stops, clients see the end.
    drop(b);
    for probe in [&mut half, &mut greeting, &mut anonymous, &mut newcomer] {
        assert!(probe.closed_within(Duration::from_secs(3)));
    }
}

#[test]
fn hundreds_of_connections_move_in_several_messages() {
    crate::enough_descriptors(4096);
    let dir = TempDir::new("handover-many");
    let path = socket_in(&dir);
    let a =
        Server::start(service("A", None), |b| b.authkey(Some("k")).account("admin", Some("ak")));
    let offered = offer(&a, &path, HandoverOptions::default());
    // The identity of a connection is the key it authenticated with, as in the original.
    let mut probes: Vec<(Probe, &str)> = (0..300)
        .map(|i| {
            let key = if i % 2 == 0 { "k" } else { "ak" };
            (Probe::authenticated(a.port, Some(key)), key)
        })
        .collect();
    let (_b, count) = take_over_as_b(&path);
    assert_eq!(count, 300);
    assert_eq!(offered.join().unwrap().unwrap().map(|s| s.connections), Some(300));
    for (probe, identity) in &mut probes {
        assert_eq!(which(probe), json!({"result": "B"}));
        assert_eq!(probe.call("whoami", json!([]), json!({})), json!({"result": identity}));
    }
}

#[test]
fn a_successor_that_dies_before_committing_changes_nothing() {
    let dir = TempDir::new("handover-dies");
    let path = socket_in(&dir);
    let a = Server::start(service("A", None), |b| b.authkey(Some("k")));
    let offered = offer(&a, &path, HandoverOptions::default());
    let mut client = Probe::authenticated(a.port, Some("k"));
    assert_eq!(which(&mut client), json!({"result": "A"}));

    let rt = runtime();
    let inheritance = rt.block_on(handover::take_over(&path, T.unwrap())).unwrap();
    assert_eq!(inheritance.connections().len(), 1);
    client.send(br#"{"method": "which", "params": {"vargs": [], "kwargs": {}}}"#);
    // The successor goes away with the descriptors: the old instance takes everything back
    // and answers the request that waited.
    drop(inheritance);
    assert_eq!(ave_network::wire::json::parse(&client.recv()).unwrap(), json!({"result": "A"}));
    let mut newcomer = Probe::authenticated(a.port, Some("k"));
    assert_eq!(which(&mut newcomer), json!({"result": "A"}));
    assert_eq!(a.handle.connections().len(), 2);

    // The handover socket still works: a real successor takes over afterwards.
    let (_b, count) = take_over_as_b(&path);
    assert_eq!(count, 2);
    assert!(offered.join().unwrap().unwrap().is_some());
    assert_eq!(which(&mut client), json!({"result": "B"}));
}

#[test]
fn a_successor_that_is_not_ready_in_time_is_refused() {
    let dir = TempDir::new("handover-late");
    let path = socket_in(&dir);
    let a = Server::start(service("A", None), |b| b.authkey(Some("k")));
    let options = HandoverOptions { ready_timeout: Duration::from_millis(300) };
    let offered = offer(&a, &path, options);
    let mut client = Probe::authenticated(a.port, Some("k"));

    let rt = runtime();
    let inheritance = rt.block_on(handover::take_over(&path, T.unwrap())).unwrap();
    // A new client's challenge arrives only when the old instance listens again, that is
    // once it has given up on this successor.
    let mut newcomer = Probe::connect(a.port);
    assert!(newcomer.recv().starts_with(CHALLENGE_PREFIX));
    let err = rt.block_on(inheritance.commit()).unwrap_err();
    assert!(matches!(err, Error::Network(_) | Error::Protocol(_)), "{err}");
    assert_eq!(which(&mut client), json!({"result": "A"}));
    assert!(a.handle.is_listening());
    drop(a);
    assert!(offered.join().unwrap().unwrap().is_none());
}

/// A method `gate()` that reports when it starts, waits until the test opens the gate,
/// and reports when it is dropped (returned or cancelled).
struct Gate {
    started: mpsc::Receiver<()>,
    open: Arc<tokio::sync::Notify>,
    dropped: mpsc::Receiver<()>,
}

fn gated(name: &'static str) -> (Service, Gate) {
    let (started_tx, started) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel::<()>();
    let open = Arc::new(tokio::sync::Notify::new());
    let (options, _events) = diagnostic_service();
    let (started_tx, dropped_tx) = (Mutex::new(started_tx), Mutex::new(dropped_tx));
    let gate = open.clone();
    let service = ave_network::diagnostic::builder(options)
        .rpc("which", Params::none(), move |_, ()| async move { Ok(name) })
        .rpc("gate", Params::none(), move |_, ()| {
            let _ = started_tx.lock().unwrap().send(());
            let on_drop = OnDrop(dropped_tx.lock().unwrap().clone());
            let gate = gate.clone();
            async move {
                let _on_drop = on_drop;
                gate.notified().await;
                Ok("opened")
            }
        })
        .build();
    (service, Gate { started, open, dropped })
}

/// A client of `server` whose `gate()` call has started.
fn in_the_gate(server: &Server, gate: &Gate) -> Probe {
    let mut probe = Probe::authenticated(server.port, Some("k"));
    probe.send(br#"{"method": "gate", "params": {"vargs": [], "kwargs": {}}}"#);
    gate.started.recv_timeout(T.unwrap()).expect("the gate call starts");
    probe
}

/// Sends on its channel when dropped.
struct OnDrop(mpsc::Sender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn a_call_in_flight_is_answered_by_the_old_instance_then_its_connection_moves() {
    let dir = TempDir::new("handover-busy");
    let path = socket_in(&dir);
    let (service, gate) = gated("A");
    let mut a = Server::start(service, |b| b.authkey(Some("k")));
    let offered = offer(&a, &path, HandoverOptions::default());
    let mut idle = Probe::authenticated(a.port, Some("k"));
    let mut busy = in_the_gate(&a, &gate);

    // The handover does not wait for the call: the idle connection and the listener move.
    let (_b, count) = take_over_as_b(&path);
    assert_eq!(count, 1);
    let successor = offered.join().unwrap().unwrap().expect("a successor");
    assert_eq!((successor.connections, successor.kept), (1, 1));
    assert_eq!(which(&mut idle), json!({"result": "B"}));
    let mut newcomer = Probe::authenticated(a.port, Some("k"));
    assert_eq!(which(&mut newcomer), json!({"result": "B"}));

    // The old instance finishes the call and answers it; then the connection moves too,
    // and the old instance stops.
    gate.open.notify_one();
    assert_eq!(ave_network::wire::json::parse(&busy.recv()).unwrap(), json!({"result": "opened"}));
    assert_eq!(which(&mut busy), json!({"result": "B"}));
    assert_eq!(a.join(), Stopped::Replaced);
}

#[test]
fn a_call_longer_than_the_drain_is_answered_with_exit() {
    let dir = TempDir::new("handover-drain");
    let path = socket_in(&dir);
    let (service, gate) = gated("A");
    let mut a = Server::start(service, |b| b.authkey(Some("k")).drain(Duration::from_millis(300)));
    let offered = offer(&a, &path, HandoverOptions::default());
    let mut busy = in_the_gate(&a, &gate);
    let (_b, count) = take_over_as_b(&path);
    assert_eq!(count, 0);
    assert_eq!(offered.join().unwrap().unwrap().expect("a successor").kept, 1);
    // The gate never opens: at the drain deadline the call is cut and answered with Exit.
    let reply = ave_network::wire::json::parse(&busy.recv()).unwrap();
    assert_eq!(reply["exception"]["type"], "Exit", "{reply}");
    let message = reply["exception"]["message"].as_str().unwrap();
    assert!(message.contains("drain time of 0.3 s"), "{message}");
    gate.dropped.recv_timeout(T.unwrap()).expect("the cut call is dropped");
    assert!(busy.conn.get(T).unwrap_err().is_closed());
    assert_eq!(a.join(), Stopped::Replaced);
}

#[test]
fn a_call_whose_client_left_is_cancelled() {
    let (service, gate) = gated("A");
    let a = Server::start(service, |b| b.authkey(Some("k")));
    let busy = in_the_gate(&a, &gate);
    assert!(gate.dropped.try_recv().is_err(), "the call runs");
    drop(busy);
    gate.dropped.recv_timeout(T.unwrap()).expect("the call is cancelled");
    let mut other = Probe::authenticated(a.port, Some("k"));
    assert_eq!(which(&mut other), json!({"result": "A"}));
    assert_eq!(a.handle.connections().len(), 1);
}

#[test]
fn a_call_goes_on_while_its_client_sends_more() {
    let (service, gate) = gated("A");
    let a = Server::start(service, |b| b.authkey(Some("k")));
    let mut busy = in_the_gate(&a, &gate);
    // A request sent during the call is received but served after it, in order.
    busy.send(br#"{"method": "which", "params": {"vargs": [], "kwargs": {}}}"#);
    gate.open.notify_one();
    assert_eq!(ave_network::wire::json::parse(&busy.recv()).unwrap(), json!({"result": "opened"}));
    assert_eq!(ave_network::wire::json::parse(&busy.recv()).unwrap(), json!({"result": "A"}));
}

#[test]
fn a_second_successor_is_told_a_replace_is_in_progress() {
    let dir = TempDir::new("handover-twice");
    let path = socket_in(&dir);
    let a = Server::start(service("A", None), |b| b.authkey(Some("k")));
    let offered = offer(&a, &path, HandoverOptions::default());
    let mut client = Probe::authenticated(a.port, Some("k"));
    let rt = runtime();
    // The first successor has everything and has not committed yet.
    let first = rt.block_on(handover::take_over(&path, T.unwrap())).unwrap();
    let err = rt.block_on(handover::take_over(&path, T.unwrap())).unwrap_err();
    assert!(err.to_string().contains("another replace is in progress"), "{err}");
    // The first goes on as if nothing happened.
    let inherited = rt.block_on(first.commit()).unwrap();
    let control =
        inherited.into_control(Control::builder(service("B", None)).authkey(Some("k"))).unwrap();
    let _b = Server::run(control);
    assert!(offered.join().unwrap().unwrap().is_some());
    assert_eq!(which(&mut client), json!({"result": "B"}));
}

#[test]
fn peers_that_ask_during_a_handover_hold_a_bounded_number_of_descriptors() {
    use std::io::Read;
    let dir = TempDir::new("handover-crowd");
    let path = socket_in(&dir);
    let a = Server::start(service("A", None), |b| b.authkey(Some("k")));
    let offered = offer(&a, &path, HandoverOptions::default());
    let rt = runtime();
    let first = rt.block_on(handover::take_over(&path, T.unwrap())).unwrap();
    // Eight silent peers wait for their refusal (they never say hello)...
    let silent: Vec<_> =
        (0..8).map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap()).collect();
    // ...so the ninth is closed at once, without a word.
    let mut ninth = std::os::unix::net::UnixStream::connect(&path).unwrap();
    ninth.set_read_timeout(T).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(ninth.read(&mut byte).unwrap(), 0, "the ninth peer is closed");
    drop(silent);
    let inherited = rt.block_on(first.commit()).unwrap();
    let control =
        inherited.into_control(Control::builder(service("B", None)).authkey(Some("k"))).unwrap();
    let _b = Server::run(control);
    assert!(offered.join().unwrap().unwrap().is_some());
}

#[test]
fn the_handover_socket_is_private_and_unique() {
    let dir = TempDir::new("handover-socket");
    let path = socket_in(&dir);
    let first = HandoverSocket::bind(&path).unwrap();
    let parent = path.parent().unwrap();
    assert_eq!(std::fs::metadata(parent).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // A live instance holds it.
    let err = HandoverSocket::bind(&path).unwrap_err();
    assert!(err.to_string().starts_with("another instance is serving"), "{err}");
    let Error::Io { source, .. } = &err else { panic!("{err}") };
    assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
    drop(first);
    assert!(!path.exists(), "a socket removes its file when dropped");

    // A stale socket file (its instance died) is replaced; a loose directory is tightened.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let again = HandoverSocket::bind(&path).unwrap();
    assert_eq!(std::fs::metadata(parent).unwrap().permissions().mode() & 0o777, 0o700);

    // A successor's socket moves over the path atomically, and the old one leaves it be.
    let mut successor = HandoverSocket::bind_successor(&path).unwrap();
    assert_ne!(successor.path(), path);
    successor.install().unwrap();
    assert_eq!(successor.path(), path);
    drop(again);
    assert!(path.exists(), "the old instance must not remove its successor's socket");
    drop(successor);
    assert!(!path.exists());

    // A successor that died before installing its socket left it behind: the next one
    // removes it.
    let abandoned = path.with_file_name(".ave-test.sock.999999999");
    drop(std::os::unix::net::UnixListener::bind(&abandoned).unwrap());
    let next = HandoverSocket::bind_successor(&path).unwrap();
    assert!(!abandoned.exists());
    drop(next);
}

#[test]
fn taking_over_nothing_says_so() {
    let dir = TempDir::new("handover-nothing");
    let path = socket_in(&dir);
    let err = runtime().block_on(handover::take_over(&path, T.unwrap())).unwrap_err();
    assert!(err.to_string().starts_with("no instance is serving at"), "{err}");
    let Error::Io { source, .. } = &err else { panic!("{err}") };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}
