//! Throughput with 64 concurrent connections, each making one call after another, driven
//! by the same Rust clients in one run:
//!
//! - our `Control` against the JSON floor (a tokio server that parses each request with
//!   serde_json into a `Value` and serializes a reply, `support/floors.rs`) and the bare
//!   length-prefixed echo, each on a multi-threaded runtime as `ave serve` runs; the three
//!   take turns, round after round, so a noisy stretch of the machine hits them all;
//! - our `Control` against the Python 3 peer server (a single-threaded poll loop written
//!   like the original's, `tests/it/peers/server.py`).
//!
//! Prints the calls per second of every turn and four BENCH lines; bounded to about 25
//! seconds.
//!
//! For profiling, the same binary serves one of the servers alone or drives one:
//!
//! ```text
//! throughput serve ours|json-floor|echo        # prints its port, serves until stdin closes
//! throughput drive ours|json-floor|echo PORT CALLS   # 64 connections, CALLS calls in all
//! ```
//!
//! so that a profiler wrapping the server sees the server only (instructions per request:
//! the difference between two drives of different lengths, divided by the difference in
//! calls).

// A benchmark prints its results.
#![allow(clippy::print_stdout)]

use std::{
    io::Read,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ave_network::{
    Address, Control, RemoteControl, connection::Connection, diagnostic, wire::json,
};
use ave_test_support::python::{Peer, python3};

use crate::floors::Floor;

#[path = "support/floors.rs"]
mod floors;

const CONNECTIONS: usize = 64;
const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);
/// Turns of our server and the floors: one to warm up, then the measured ones. Many short
/// turns, in an order that rotates, so that the busy and the quiet stretches of a shared
/// machine fall on all servers alike.
const ROUNDS: usize = 40;
const ROUND: Duration = Duration::from_millis(100);
/// Each server's figure is the median of its best turns: on a machine shared with other
/// work, a turn measures the server only when the rest of the machine left it alone (as
/// a timer's best run does), and the turns in between vary by a factor of ten.
const BEST: usize = 5;

/// The servers measured side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ours,
    Floor(Floor),
}

impl Server {
    fn parse(name: &str) -> Server {
        match name {
            "ours" => Server::Ours,
            "json-floor" => Server::Floor(Floor::Json),
            "echo" => Server::Floor(Floor::Echo),
            other => panic!("unknown server {other:?} (ours, json-floor or echo)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::Floor(Floor::Json) => "json-floor",
            Server::Floor(Floor::Echo) => "echo",
        }
    }

    /// The reply each server gives to the request `sync_ping` frame.
    fn reply(self, request: &[u8]) -> Vec<u8> {
        match self {
            Server::Ours => br#"{"result": "pong"}"#.to_vec(),
            Server::Floor(Floor::Json) => br#"{"result":"pong"}"#.to_vec(),
            Server::Floor(Floor::Echo) => request.to_vec(),
        }
    }
}

/// The request every client sends.
fn request() -> Vec<u8> {
    json::to_vec(&ave_network::client::Call::new("sync_ping").request(&serde_json::Value::Null))
        .unwrap()
}

/// 64 connections to a server: through the handshake for ours (and the Python peer),
/// plain connects for the floors.
async fn connect(address: &Address, handshake: bool) -> Vec<Connection> {
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let conn = if handshake {
            let remote = RemoteControl::new(address.clone(), None)
                .with_timeout(Some(Duration::from_secs(10)));
            assert_eq!(remote.call("sync_ping", ()).await.unwrap(), "pong");
            remote.into_connection().await.unwrap()
        } else {
            Connection::connect(address, Some(Duration::from_secs(10)), false).await.unwrap()
        };
        conns.push(conn);
    }
    conns
}

/// Every connection calls one call after another until `stop`; returns the connections
/// and the calls made once `counting` was set.
async fn hammer(
    conns: Vec<Connection>,
    reply: &[u8],
    counting: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
    limit: Option<u64>,
) -> (Vec<Connection>, u64) {
    let request = Arc::new(request());
    let reply = Arc::new(reply.to_vec());
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (request, reply, counting, stop, calls) =
            (request.clone(), reply.clone(), counting.clone(), stop.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if limit.is_some_and(|l| calls.fetch_add(1, Ordering::Relaxed) >= l) {
                    break;
                }
                conn.write_frame(&request).await.unwrap();
                assert_eq!(conn.read_frame().await.unwrap(), *reply);
                if limit.is_none() && counting.load(Ordering::Relaxed) {
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            }
            conn
        }));
    }
    let mut conns = Vec::new();
    for task in tasks {
        conns.push(task.await.unwrap());
    }
    let done = calls.load(Ordering::Relaxed);
    (conns, limit.map_or(done, |l| done.min(l)))
}

/// The calls 64 clients make on `conns` in `duration`, after `warmup`, and the seconds
/// they took.
async fn rate(
    conns: Vec<Connection>,
    reply: &[u8],
    warmup: Duration,
    duration: Duration,
) -> (Vec<Connection>, u64, f64) {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let run = hammer(conns, reply, &counting, &stop, None);
    let timer = async {
        tokio::time::sleep(warmup).await;
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        started
    };
    let ((conns, calls), started) = tokio::join!(run, timer);
    // The calls that finish after `stop` count too, over the time they took.
    (conns, calls, started.elapsed().as_secs_f64())
}

/// Starts a server on a multi-threaded runtime of its own, as `ave serve` runs; ours stops
/// with the returned handle, the floors run until the process ends.
fn start(server: Server) -> (Address, Option<ave_network::control::ControlHandle>) {
    match server {
        Server::Ours => {
            let control =
                Control::builder(diagnostic::service(diagnostic::Options::new())).build().unwrap();
            let port = control.port();
            let handle = control.handle();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
                rt.block_on(control.run()).unwrap()
            });
            (Address::new("127.0.0.1", port), Some(handle))
        }
        Server::Floor(floor) => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    floors::serve(tokio::net::TcpListener::from_std(listener).unwrap(), floor).await
                });
            });
            (Address::new("127.0.0.1", port), None)
        }
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", server] => return serve_alone(Server::parse(server)),
        ["drive", server, port, calls] => {
            return drive(Server::parse(server), port.parse().unwrap(), calls.parse().unwrap());
        }
        _ => {}
    }

    let servers = [Server::Ours, Server::Floor(Floor::Json), Server::Floor(Floor::Echo)];
    let started: Vec<_> = servers.iter().map(|s| start(*s)).collect();
    let request = request();
    let rt = client_runtime();
    let rates = rt.block_on(async {
        let mut conns = Vec::new();
        for (server, (address, _)) in servers.iter().zip(&started) {
            conns.push(connect(address, *server == Server::Ours).await);
        }
        let mut turns = vec![Vec::new(); servers.len()];
        for round in 0..=ROUNDS {
            for turn in 0..servers.len() {
                let i = (round + turn) % servers.len();
                let server = servers[i];
                let (back, calls, secs) = rate(
                    std::mem::take(&mut conns[i]),
                    &server.reply(&request),
                    Duration::ZERO,
                    ROUND,
                )
                .await;
                conns[i] = back;
                // Round 0 warms up every server.
                if round > 0 {
                    turns[i].push(calls as f64 / secs);
                }
            }
        }
        let mut figures = Vec::new();
        for (server, mut turns) in servers.iter().zip(turns) {
            turns.sort_by(|a, b| b.total_cmp(a));
            let best = turns[BEST / 2];
            let (high, mid, low) = (turns[0], turns[turns.len() / 2], turns[turns.len() - 1]);
            println!(
                "{}: {ROUNDS} turns of {} ms, {low:.0} to {high:.0} calls/s, median {mid:.0}, median of the best {BEST} {best:.0}",
                server.name(),
                ROUND.as_millis()
            );
            figures.push(best);
        }
        figures
    });
    let (ours, floor, echo) = (rates[0], rates[1], rates[2]);
    for (_, handle) in started {
        if let Some(handle) = handle {
            handle.stop();
        }
    }

    // The Python peer server, in its own process, twice. As the original, it writes a
    // frame's header and payload with two sends and leaves Nagle's algorithm on, so the
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
    println!(
        "BENCH name=throughput_64_connections_json_floor|ours={ours:.0}|peer=tokio server parsing each request into a serde_json Value|peer_value={floor:.0}|unit=calls/s|better=higher|target=0.9"
    );
    println!(
        "BENCH name=throughput_64_connections_echo|ours={ours:.0}|peer=tokio length-prefixed echo (no JSON; no target)|peer_value={echo:.0}|unit=calls/s|better=higher"
    );
}

/// The throughput of the Python peer server started with `args`.
fn python_peer(args: &[&str]) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/server.py");
    let mut peer = Peer::start(python3().arg(script).args(args));
    let address = Address::new("127.0.0.1", peer.port(Duration::from_secs(30)));
    let reply = Server::Ours.reply(&[]);
    let calls = client_runtime().block_on(async {
        let conns = connect(&address, true).await;
        let (_, calls, secs) = rate(conns, &reply, WARMUP, MEASURE).await;
        calls as f64 / secs
    });
    drop(peer);
    calls
}

/// Serves one server alone: prints its port, serves until stdin closes.
fn serve_alone(server: Server) {
    let (address, handle) = start(server);
    println!("{}", address.port);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    if let Some(handle) = handle {
        handle.stop();
    }
}

/// Makes `calls` calls in all over 64 connections to a server started by `serve_alone`.
fn drive(server: Server, port: u16, calls: u64) {
    let address = Address::new("127.0.0.1", port);
    let request = request();
    let started = Instant::now();
    client_runtime().block_on(async {
        let conns = connect(&address, server == Server::Ours).await;
        let (counting, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
        hammer(conns, &server.reply(&request), &counting, &stop, Some(calls)).await;
    });
    println!("{calls} calls in {:.2} s", started.elapsed().as_secs_f64());
}
