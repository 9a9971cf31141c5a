//! Benchmarks of the admin client against the simulated server, beside an independent
//! Python 3 client (`tests/it/peer.py`, stdlib sockets, blocking) doing the same work on
//! the same simulator in the same run:
//!
//! - `tripe_command_rtt`: one `VERSION` command at a time, the mean round trip;
//! - `tripe_100_background_jobs`: 100 background `PING`s started on one connection, then
//!   all awaited; the mean time per round.
//!
//! The simulator's own cost is in both figures. Bounded: a few thousand commands.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{process::Command, time::Instant};

use ave_test_support::tripe_sim::Sim;
use ave_tripe::{Client, PingOptions, PingResult};

const COMMANDS: usize = 3000;
const JOBS: usize = 100;
const ROUNDS: usize = 30;

fn main() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (rtt, round) = runtime.block_on(ours(&sim));

    let peer_rtt = python(&["bench", &sim.path().display().to_string(), &COMMANDS.to_string()])
        .map(|secs| secs / COMMANDS as f64 * 1e6);
    report("tripe_command_rtt", rtt, peer_rtt, 1.0);

    let peer_round = python(&[
        "bgbench",
        &sim.path().display().to_string(),
        "alice",
        &JOBS.to_string(),
        &ROUNDS.to_string(),
    ])
    .map(|secs| secs / ROUNDS as f64 * 1e6);
    report("tripe_100_background_jobs", round, peer_round, 1.0);
}

/// Our client: the mean command round trip and the mean round of 100 jobs, in µs.
async fn ours(sim: &Sim) -> (f64, f64) {
    let client = Client::connect(sim.path()).await.expect("connect");
    for _ in 0..200 {
        client.version().await.expect("VERSION");
    }
    let started = Instant::now();
    for _ in 0..COMMANDS {
        client.version().await.expect("VERSION");
    }
    let rtt = started.elapsed().as_secs_f64() / COMMANDS as f64 * 1e6;

    let options = PingOptions::default();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let jobs: Vec<_> = (0..JOBS)
            .map(|_| {
                let client = client.clone();
                let options = options.clone();
                tokio::spawn(async move { client.ping("alice", &options).await })
            })
            .collect();
        for job in jobs {
            let result = job.await.expect("join").expect("PING");
            assert!(matches!(result, PingResult::Ok { .. }));
        }
    }
    let round = started.elapsed().as_secs_f64() / ROUNDS as f64 * 1e6;
    (rtt, round)
}

/// Runs the Python peer; the seconds it reports, or `None` if it cannot run.
fn python(args: &[&str]) -> Option<f64> {
    let script = format!("{}/tests/it/peer.py", env!("CARGO_MANIFEST_DIR"));
    let output = match Command::new("python3").arg(script).args(args).output() {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("python peer failed: {}", String::from_utf8_lossy(&output.stderr));
            return None;
        }
        Err(error) => {
            eprintln!("python3 unavailable: {error}");
            return None;
        }
    };
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn report(name: &str, ours: f64, peer: Option<f64>, target: f64) {
    match peer {
        Some(peer) => println!(
            "BENCH name={name}|ours={ours:.2}|peer=python3-stdlib-client|peer_value={peer:.2}|unit=us|better=lower|target={target}"
        ),
        None => println!("BENCH name={name}|ours={ours:.2}|unit=us|better=lower"),
    }
}
