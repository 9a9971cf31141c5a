//! Integration tests of `ave-tripe`: the client and the service provider against a
//! simulated TrIPE server on a real Unix socket, and against independent Python 3 peers
//! (`peer.py`, stdlib only).

mod background;
mod commands;
mod connection;
mod events;
mod example;
mod services;
mod words;

use std::{
    future::Future,
    io::Write,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use ave_test_support::tripe_sim as sim;
use ave_tripe::Client;

use crate::sim::Sim;

/// The bound on every wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future).await.expect("timed out")
}

/// A client connected to the simulator.
async fn connect(sim: &Sim) -> Client {
    within(Client::connect(sim.path())).await.expect("connect to the simulator")
}

/// The Python peer's path.
fn peer_script() -> String {
    format!("{}/tests/it/peer.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the Python peer with `args`, feeding it `stdin`; its stdout. Killed after
/// [`LIMIT`].
fn python(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("python3")
        .arg(peer_script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed for the interoperability tests");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(data.as_bytes()));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(LIMIT) {
        Ok(output) => output.expect("python peer output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("python peer {args:?} timed out");
        }
    };
    writer.join().expect("writer thread").expect("write to python");
    assert!(output.status.success(), "python peer {args:?} failed: {:?}", output.status);
    String::from_utf8(output.stdout).expect("python output is UTF-8")
}
