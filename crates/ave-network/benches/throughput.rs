//! Throughput with 64 concurrent connections, each making one call after another: our
//! `Control` against the Python 3 peer server (a single-threaded poll loop written like the
//! original's, `tests/it/peers/server.py`), driven by the same Rust clients in one run.
//! Prints one BENCH line; bounded to about ten seconds.

// A benchmark prints its results.
#![allow(clippy::print_stdout)]

use std::{
    io::BufRead,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ave_network::{Address, Connection, Control, RemoteControl, diagnostic, json};

const CONNECTIONS: usize = 64;
const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);

/// Calls per second that 64 clients get out of the server at `address`.
fn measure(address: Address) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let request = ave_network::Call::new("sync_ping").request(&serde_json::Value::Null);
        let request = Arc::new(json::to_vec(&request).unwrap());
        let mut conns: Vec<Connection> = Vec::new();
        for _ in 0..CONNECTIONS {
            let remote = RemoteControl::new(address.clone(), None)
                .with_timeout(Some(Duration::from_secs(10)));
            assert_eq!(remote.call("sync_ping", ()).await.unwrap(), "pong");
            conns.push(remote.into_connection().await.unwrap());
        }
        let counting = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for mut conn in conns {
            let (request, counting, stop, calls) =
                (request.clone(), counting.clone(), stop.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    conn.write_frame(&request).await.unwrap();
                    let reply = conn.read_frame().await.unwrap();
                    debug_assert_eq!(reply, br#"{"result": "pong"}"#);
                    if counting.load(Ordering::Relaxed) {
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(WARMUP).await;
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(MEASURE).await;
        let done = calls.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        done as f64 / elapsed.as_secs_f64()
    })
}

fn main() {
    // Ours: the server on its own runtime, as `ave serve` runs it.
    let control =
        Control::builder(diagnostic::service(diagnostic::Options::new())).build().unwrap();
    let port = control.port();
    let handle = control.handle();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(control.run()).unwrap()
    });
    let ours = measure(Address::new("127.0.0.1", port));
    handle.stop();
    server.join().unwrap();

    // The peer: the Python server, in its own process, twice. As the original, it writes
    // a frame's header and payload with two sends and leaves Nagle's algorithm on, so the
    // payload can wait for the delayed ACK of the header; with `--nodelay` it does not,
    // which is the more demanding baseline.
    let as_original = python_peer(&[]);
    let nodelay = python_peer(&["--nodelay"]);

    println!(
        "BENCH name=throughput_64_connections|ours={ours:.0}|peer=python3 poll-loop server, as the original (Nagle on)|peer_value={as_original:.0}|unit=calls/s|better=higher|target=20"
    );
    println!(
        "BENCH name=throughput_64_connections_nodelay_peer|ours={ours:.0}|peer=python3 poll-loop server with TCP_NODELAY (stricter than the original; no target)|peer_value={nodelay:.0}|unit=calls/s|better=higher"
    );
}

/// The throughput of the Python peer server started with `args`.
fn python_peer(args: &[&str]) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the peer server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().expect("the peer prints its port");
    let calls = measure(Address::new("127.0.0.1", port));
    let _ = child.kill();
    let _ = child.wait();
    calls
}
