//! Benchmarks of the admin client against the simulated server, beside an independent
//! Python 3 client (`tests/it/peer.py`, stdlib sockets, blocking) doing the same work on
//! the same simulator in the same run:
//!
//! - `tripe_command_rtt`: one `VERSION` command at a time, the round trip;
//! - `tripe_100_background_jobs`: 100 background `PING`s started on one connection, then
//!   all awaited; the time of one such round.
//!
//! The two clients take turns, sample after sample (who goes first alternates), each on
//! its own warm connection, and each figure is the median of its samples: a stretch of
//! machine load then falls on both sides alike instead of on whichever ran during it. The
//! simulator's own cost is in both figures. Bounded: a few thousand commands.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    io::Write,
    process::Stdio,
    time::{Duration, Instant},
};

use ave_test_support::{
    python::{Peer, python3_or_skip},
    tripe_sim::Sim,
};
use ave_tripe::{Client, PingOptions, PingResult};

/// Commands per round-trip sample.
const BATCH: usize = 200;
/// Background jobs per round.
const JOBS: usize = 100;
/// Samples of each figure, for each client.
const SAMPLES: usize = 21;
/// The target: at most this fraction of the Python client's time.
const TARGET: f64 = 0.5;

fn main() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    // The client uses no timers: a runtime with the I/O driver only (as a blocking Python
    // client has no timer wheel either).
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    let client = runtime.block_on(Client::connect(sim.path())).expect("connect");
    let mut python = Python::start(&sim);

    // Warm both connections up.
    runtime.block_on(rtt_batch(&client, BATCH));
    let _ = python.as_mut().map(|p| p.request("rtt", BATCH));

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_bg, mut theirs_bg) = (Vec::new(), Vec::new());
    for sample in 0..SAMPLES {
        for turn in 0..2 {
            if (sample + turn) % 2 == 0 {
                ours.push(runtime.block_on(rtt_batch(&client, BATCH)) / BATCH as f64);
                ours_bg.push(runtime.block_on(background_round(&client, JOBS)));
            } else if let Some(peer) = python.as_mut() {
                theirs.push(peer.request("rtt", BATCH) / BATCH as f64);
                theirs_bg.push(peer.request("bg", JOBS));
            }
        }
    }
    report("tripe_command_rtt", &ours, &theirs);
    report("tripe_100_background_jobs", &ours_bg, &theirs_bg);
}

/// `count` VERSION commands, one at a time; the seconds taken.
async fn rtt_batch(client: &Client, count: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..count {
        client.version().await.expect("VERSION");
    }
    started.elapsed().as_secs_f64()
}

/// `jobs` background PINGs started at once, then all awaited; the seconds taken.
async fn background_round(client: &Client, jobs: usize) -> f64 {
    let options = PingOptions::default();
    let started = Instant::now();
    let tasks: Vec<_> = (0..jobs)
        .map(|_| {
            let client = client.clone();
            let options = options.clone();
            tokio::spawn(async move { client.ping("alice", &options).await })
        })
        .collect();
    for task in tasks {
        let result = task.await.expect("join").expect("PING");
        assert!(matches!(result, PingResult::Ok { .. }));
    }
    started.elapsed().as_secs_f64()
}

/// The Python peer in its `benchloop` mode: one connection, one request per line. Killed
/// when dropped.
struct Python(Peer);

impl Python {
    /// Starts the peer; `None` (with the reason printed) if python3 cannot run.
    fn start(sim: &Sim) -> Option<Python> {
        let script = format!("{}/tests/it/peer.py", env!("CARGO_MANIFEST_DIR"));
        let mut command = python3_or_skip()?;
        command
            .arg(script)
            .args(["benchloop", &sim.path().display().to_string(), "alice"])
            .stdin(Stdio::piped());
        Some(Python(Peer::start(&mut command)))
    }

    /// Runs one request; the seconds the peer reports.
    fn request(&mut self, what: &str, count: usize) -> f64 {
        writeln!(self.0.stdin(), "{what} {count}").expect("write to the python peer");
        // Only bounds a failure: a request takes well under a second.
        let line = self.0.line(Duration::from_secs(120));
        line.trim().parse().unwrap_or_else(|_| panic!("python peer answered {line:?}"))
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// One BENCH line, in µs; the spread goes to stderr.
fn report(name: &str, ours: &[f64], peer: &[f64]) {
    let us = |samples: &[f64]| median(samples) * 1e6;
    let spread = |samples: &[f64]| {
        let (min, max) =
            samples.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        format!("{:.2}-{:.2}", min * 1e6, max * 1e6)
    };
    if peer.is_empty() {
        println!("BENCH name={name}|ours={:.2}|unit=us|better=lower", us(ours));
        return;
    }
    eprintln!(
        "{name}: ours {} us (median of {}), python {} us (median of {}), ratio {:.3}",
        spread(ours),
        ours.len(),
        spread(peer),
        peer.len(),
        us(ours) / us(peer)
    );
    println!(
        "BENCH name={name}|ours={:.2}|peer=python3-stdlib-client|peer_value={:.2}|unit=us|better=lower|target={TARGET}",
        us(ours),
        us(peer)
    );
}
