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

use std::{future::Future, process::Stdio, time::Duration};

use ave_test_support::{
    python::{Peer, python3},
    tripe_sim as sim,
};
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
    let mut peer = Peer::start(python3().arg(peer_script()).args(args).stdin(Stdio::piped()));
    peer.feed(stdin.as_bytes().to_vec());
    let end = peer.finish(LIMIT);
    assert!(end.status.success(), "python peer {args:?} failed: {:?}", end.status);
    end.stdout
}
