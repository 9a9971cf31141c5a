//! Starting a process with a synchronization handshake: `Process::start(false, true)`
//! (fork, the child's clean slate, its default initialization, the "initialized" message
//! back), against Python 3's `multiprocessing` with the fork start method, where the
//! child sends a message through a `multiprocessing.Pipe` and the parent waits for it,
//! side by side in one run. This bench is single-threaded, so it may fork. Prints BENCH
//! lines (median time from the call to its return); bounded to a few seconds.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    process::Command,
    time::{Duration, Instant},
};

use ave_network::Process;

const STARTS: usize = 300;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median microseconds of `start(daemonize, synchronize = true)`.
fn ours(daemonize: bool, starts: usize) -> f64 {
    let mut samples = Vec::with_capacity(starts);
    for _ in 0..starts {
        let mut p = Process::from_fn(|_| Ok(()));
        let started = Instant::now();
        p.start(daemonize, true).expect("start");
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        if !daemonize {
            assert!(p.join(Some(Duration::from_secs(10))).expect("join").success());
        }
    }
    median(samples)
}

const PYTHON: &str = r#"
import multiprocessing as mp, statistics, sys, time
def child(conn):
    conn.send("initialized")
    conn.close()
ctx = mp.get_context("fork")
samples = []
for _ in range(int(sys.argv[1])):
    parent, child_end = ctx.Pipe()
    p = ctx.Process(target=child, args=(child_end,))
    t0 = time.perf_counter()
    p.start()
    assert parent.recv() == "initialized"
    samples.append((time.perf_counter() - t0) * 1e6)
    p.join()
    parent.close(); child_end.close()
print(statistics.median(samples))
"#;

fn python(starts: usize) -> Option<f64> {
    let out = Command::new("python3").args(["-c", PYTHON, &starts.to_string()]).output().ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    // Warm up both sides (page cache, the interpreter's imports).
    ours(false, 20);
    let _ = python(20);
    let rust = ours(false, STARTS);
    match python(STARTS) {
        Some(peer) => println!(
            "BENCH name=process_start_synchronized|ours={rust:.1}|peer=python3 multiprocessing fork start + Pipe handshake|peer_value={peer:.1}|unit=us|better=lower|target=1.0"
        ),
        None => {
            println!("BENCH name=process_start_synchronized|ours={rust:.1}|unit=us|better=lower")
        }
    }
    // A daemon: double fork, new session, re-parenting, then the handshake (no peer:
    // multiprocessing has no daemonization).
    let daemon = ours(true, 50);
    println!("BENCH name=process_start_daemon_synchronized|ours={daemon:.1}|unit=us|better=lower");
}
