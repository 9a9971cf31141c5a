//! Sequential RPC round trip, side by side in one run:
//!
//! - `RemoteControl` calling `sync_ping` on a `Control`, against a bare length-prefixed
//!   echo over tokio (the floor of any framed protocol);
//! - the same request frame sent by one plain client to the `Control` and to the JSON
//!   floor (a tokio server that parses each request with serde_json into a `Value` and
//!   serializes a reply, `support/floors.rs`): the cost of the server side only.
//!
//! Each server runs on a thread of its own (a current-thread runtime) and the client on
//! the main thread, so every path costs the same thread hops; the paths take turns, round
//! after round, so a noisy stretch of the machine hits them all. Prints the spread of every
//! path and two BENCH lines;
//! bounded to a few seconds.

// A benchmark prints its results.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use ave_network::{Address, Control, RemoteControl, connection::Connection, diagnostic};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::floors::Floor;

#[path = "support/floors.rs"]
mod floors;

/// Rounds after the warm-up one, and calls per path in each.
const ROUNDS: usize = 20;
const CALLS: usize = 1000;
/// Each path's figure is the median of its best rounds: on a machine shared with other
/// work, a round measures the path only when the rest of the machine left it alone (as a
/// timer's best run does); the spread of all rounds is printed.
const BEST: usize = 5;

/// One frame from a stream, with a read buffer kept between calls (one `read` per frame
/// when the whole frame has arrived).
async fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            if buf.len() >= 4 + len {
                let frame = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                return Ok(frame);
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The median of the `BEST` lowest per-call times, after printing the spread of all.
fn best(path: &str, mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let (low, mid, high) = (values[0], values[values.len() / 2], values[values.len() - 1]);
    let best = values[BEST / 2];
    println!(
        "{path}: {ROUNDS} rounds of {CALLS} calls, {low:.1} to {high:.1} us per call, median {mid:.1}, median of the best {BEST} {best:.1}"
    );
    best
}

/// A current-thread runtime on a thread of its own, so that both servers get the same
/// scheduling: one thread each, one wakeup per direction per call.
fn serve_on_own_thread<F>(server: F) -> std::thread::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        pin_to_cpu(1);
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(server)
    })
}

/// Pins the calling thread to one CPU (the servers on CPU 1, the client on CPU 0), so both
/// paths cross between the same two cores on every call instead of wherever the scheduler
/// happens to put them. A machine with one CPU leaves everything where it is.
fn pin_to_cpu(cpu: usize) {
    use nix::sched::{CpuSet, sched_setaffinity};
    let available = std::thread::available_parallelism().map_or(1, usize::from);
    if available < 2 {
        return;
    }
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

fn main() {
    let control =
        Control::builder(diagnostic::service(diagnostic::Options::new())).build().unwrap();
    let port = control.port();
    let handle = control.handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let server = serve_on_own_thread(async move {
        let stopped = control.run().await;
        done_tx.send(stopped.is_ok()).unwrap();
    });
    // The floors run until the process ends.
    let echo_addr = spawn_floor(Floor::Echo);
    let floor_addr = spawn_floor(Floor::Json);

    pin_to_cpu(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = RemoteControl::new(("127.0.0.1", port), None);
        client.connect(None).await.unwrap();
        let mut echo = TcpStream::connect(echo_addr).await.unwrap();
        echo.set_nodelay(true).unwrap();
        // The echo carries the bytes of the same request our client sends.
        let call = ave_network::client::Call::new("sync_ping").request(&serde_json::Value::Null);
        let payload = ave_network::wire::json::to_vec(&call).unwrap();
        let request = framed(&payload);
        let mut echo_buf = Vec::new();
        // The plain client: the request frame out, the reply frame in, nothing else.
        let mut plain_ours =
            RemoteControl::new(("127.0.0.1", port), None).into_connection().await.unwrap();
        let floor_address = Address::new("127.0.0.1", floor_addr.port());
        let mut plain_floor = Connection::connect(&floor_address, None, false).await.unwrap();

        let (mut ours, mut peer, mut plain, mut floor) = (vec![], vec![], vec![], vec![]);
        for round in 0..=ROUNDS {
            let started = Instant::now();
            for _ in 0..CALLS {
                let reply = client.call("sync_ping", ()).await.unwrap();
                assert_eq!(reply, "pong");
            }
            let ours_us = per_call_us(started);
            let started = Instant::now();
            for _ in 0..CALLS {
                echo.write_all(&request).await.unwrap();
                let frame = read_frame(&mut echo, &mut echo_buf).await.unwrap();
                assert_eq!(frame.len(), request.len() - 4);
            }
            let peer_us = per_call_us(started);
            let started = Instant::now();
            for _ in 0..CALLS {
                plain_ours.write_frame(&payload).await.unwrap();
                assert_eq!(plain_ours.read_frame().await.unwrap(), br#"{"result": "pong"}"#);
            }
            let plain_us = per_call_us(started);
            let started = Instant::now();
            for _ in 0..CALLS {
                plain_floor.write_frame(&payload).await.unwrap();
                assert_eq!(plain_floor.read_frame().await.unwrap(), br#"{"result":"pong"}"#);
            }
            let floor_us = per_call_us(started);
            // Round 0 warms up every path.
            if round > 0 {
                ours.push(ours_us);
                peer.push(peer_us);
                plain.push(plain_us);
                floor.push(floor_us);
            }
        }
        let ours = best("RemoteControl to Control", ours);
        let peer = best("echo", peer);
        let plain = best("plain client to Control", plain);
        let floor = best("plain client to JSON floor", floor);
        println!(
            "BENCH name=rpc_round_trip|ours={ours:.1}|peer=tokio length-prefixed echo|peer_value={peer:.1}|unit=us|better=lower|target=1.3"
        );
        println!(
            "BENCH name=rpc_round_trip_json_floor|ours={plain:.1}|peer=tokio server parsing each request into a serde_json Value (same plain client)|peer_value={floor:.1}|unit=us|better=lower|target=1.1"
        );
    });
    handle.stop();
    assert!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap());
    server.join().unwrap();
}

/// Starts a floor server on a thread of its own; it runs until the process ends.
fn spawn_floor(floor: Floor) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(serve_on_own_thread(async move {
        floors::serve(TcpListener::from_std(listener).unwrap(), floor).await;
    }));
    addr
}

fn per_call_us(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}
