//! Benchmarks of the pty runner against its peers, run side by side in the same process:
//!
//! - `run(["true"])` against `std::process::Command::new("true").status()` (spawn and
//!   wait; the peer has no pty, no session and no output to collect);
//! - 50 MB of output through the pty (`head -c 50000000 /dev/zero`, kept in memory by
//!   `run`) against util-linux `script -qec CMD /dev/null` with its output to /dev/null.
//!
//! Runs alternate between ours and the peer, one by one, so that drift in the machine's
//! load hits both alike; each figure is the median of its runs. The whole bench takes well under a
//! minute. Prints `BENCH` lines for `cargo xtask bench`.

// A bench program reports on stdout.
#![allow(clippy::print_stdout)]

use std::{
    fs::File,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ave_cmd::{Options, run};

const SPAWN_RUNS: usize = 1500;
const BULK_ROUNDS: usize = 15;
const BULK_BYTES: usize = 50_000_000;

fn main() {
    spawn_and_wait();
    bulk_output();
}

/// The median of some durations, in the unit `scale` converts to.
fn median(mut samples: Vec<Duration>, scale: f64) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * scale
}

fn spawn_and_wait() {
    let options = Options::new();
    let ours_once = || {
        let out = run(["true"], &options).expect("run true");
        assert!(out.status.success());
    };
    let peer_once = || {
        let status = Command::new("true").status().expect("spawn true");
        assert!(status.success());
    };
    // Warm up both (page cache, dynamic loader, allocator).
    for _ in 0..50 {
        ours_once();
        peer_once();
    }
    let mut ours = Vec::with_capacity(SPAWN_RUNS);
    let mut peer = Vec::with_capacity(SPAWN_RUNS);
    for _ in 0..SPAWN_RUNS {
        let start = Instant::now();
        ours_once();
        ours.push(start.elapsed());
        let start = Instant::now();
        peer_once();
        peer.push(start.elapsed());
    }
    println!(
        "BENCH name=ave-cmd run(true) spawn+wait|ours={:.1}|peer=std::process::Command status()|peer_value={:.1}|unit=us|better=lower|target=1.5",
        median(ours, 1e6),
        median(peer, 1e6),
    );
}

fn bulk_output() {
    let count = BULK_BYTES.to_string();
    let argv = ["head", "-c", count.as_str(), "/dev/zero"];
    let script_cmd = format!("head -c {BULK_BYTES} /dev/zero");
    let options = Options::new();
    let ours_once = || {
        let start = Instant::now();
        let out = run(argv, &options).expect("run head");
        let elapsed = start.elapsed();
        assert!(out.status.success());
        assert_eq!(out.output.len(), BULK_BYTES);
        elapsed
    };
    let peer_once = || {
        let null = File::create("/dev/null").expect("open /dev/null");
        let start = Instant::now();
        let status = Command::new("script")
            .args(["-qec", &script_cmd, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(null)
            .status()
            .expect("run script");
        let elapsed = start.elapsed();
        assert!(status.success());
        elapsed
    };
    ours_once();
    peer_once();
    let mut ours = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..BULK_ROUNDS {
        ours.push(ours_once());
        peer.push(peer_once());
    }
    println!(
        "BENCH name=ave-cmd run() 50 MB through the pty|ours={:.1}|peer=util-linux script -qec|peer_value={:.1}|unit=ms|better=lower|target=1.0",
        median(ours, 1e3),
        median(peer, 1e3),
    );
}
