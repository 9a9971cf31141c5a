//! The original's `async_rpc` tests: one-way calls (`__async__=True`).
//!
//! The original server is single-threaded, so a busy server could not even send the
//! challenge to a new client (t02 expected a `ConnectionTimeout`). This server serves
//! every connection concurrently: the deviation is deliberate, and the tests check the
//! new contract (the new client is served at once) while keeping the original's
//! expectations for the busy connection itself.

use std::time::{Duration, Instant};

use ave_network::RemoteControl;
use serde_json::{Value, json};

use crate::diagnostic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_run_external_sync_and_one_way() {
    let (server, _) = diagnostic(|b| b);
    let remote = RemoteControl::new(server.address(), None);
    assert_eq!(remote.call("run_external", ("sleep 0.2",)).await.unwrap(), json!([0, "", ""]));
    let started = Instant::now();
    remote.call_one_way("run_external", ("sleep 1",)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(900), "the one-way call did not wait");
    // The connection stays ordered: the next call is answered after the command ended.
    assert_eq!(remote.call("sync_ping", ()).await.unwrap(), "pong");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_t05_a_busy_server_still_serves_other_clients() {
    let (server, _) = diagnostic(|b| b);
    let busy = RemoteControl::new(server.address(), None);
    let preconnected = RemoteControl::new(server.address(), None);
    preconnected.connect(None).await.unwrap();
    busy.call_one_way("run_external", ("sleep 2",)).await.unwrap();
    let started = Instant::now();

    // A new client's one-way call: its handshake is not held up (t02 deviation).
    let fresh = RemoteControl::new(server.address(), None);
    fresh.call_one_way("sync_ping", ()).await.unwrap();
    // A pre-connected client's one-way call returns at once (t03).
    preconnected.call_one_way("sync_ping", ()).await.unwrap();
    // Synchronous calls with no timeout are answered (t04, t05), here without waiting
    // for the busy connection.
    assert_eq!(preconnected.call("sync_ping", ()).await.unwrap(), "pong");
    assert_eq!(fresh.call("sync_ping", ()).await.unwrap(), "pong");
    assert!(started.elapsed() < Duration::from_secs(2), "served while the other call ran");
    assert_eq!(busy.call("get_pid", ()).await.unwrap(), Value::from(std::process::id()));
}
