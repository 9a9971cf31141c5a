//! Benchmark of user lookups against the original's design and against Python's own
//! lookup, run side by side in the same process:
//!
//! - `lookup_user("nobody")` against one helper process per lookup, which is how the
//!   original's `ave.pwd` isolated NSS (it ran `python2 pwd.py pwd.getpwnam.dir <name>`
//!   through a pty, three times per `become_user`; the peer here is `python3 -c` with
//!   plain pipes, which favours the peer);
//! - the same lookup against Python 3's `pwd.getpwnam` in a loop inside one interpreter,
//!   timed by the interpreter itself (no process start-up counted).
//!
//! Each figure is the median of several rounds, rounds alternating between ours and the
//! peer. The whole bench takes a few seconds. Prints `BENCH` lines for `cargo xtask bench`.

// A bench program reports on stdout.
#![allow(clippy::print_stdout)]

use std::{process::Command, time::Instant};

use ave_persona::lookup_user;

const ROUNDS: usize = 9;
const HELPER_PER_ROUND: usize = 10;
const IN_PROCESS_PER_ROUND: usize = 20_000;

fn main() {
    against_helper_process();
    against_python_in_process();
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Microseconds per lookup of `n` lookups in-process.
fn ours_per_lookup(n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let user = lookup_user("nobody").expect("nobody exists");
        std::hint::black_box(user);
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn against_helper_process() {
    let helper = || {
        let out = Command::new("python3")
            .args(["-c", "import pwd, sys; print(pwd.getpwnam(sys.argv[1]).pw_dir)", "nobody"])
            .output()
            .expect("python3 runs");
        assert!(out.status.success());
    };
    helper();
    ours_per_lookup(100);
    let mut ours = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..ROUNDS {
        ours.push(ours_per_lookup(IN_PROCESS_PER_ROUND / 10));
        let start = Instant::now();
        for _ in 0..HELPER_PER_ROUND {
            helper();
        }
        peer.push(start.elapsed().as_secs_f64() * 1e6 / HELPER_PER_ROUND as f64);
    }
    println!(
        "BENCH name=ave-persona lookup_user vs a helper process per lookup|ours={:.2}|peer=python3 pwd helper process (the original's ave.pwd design)|peer_value={:.2}|unit=us|better=lower|target=0.01",
        median(ours),
        median(peer),
    );
}

fn against_python_in_process() {
    let script = format!(
        "import pwd, time\n\
         for _ in range(1000): pwd.getpwnam('nobody')\n\
         for _ in range({ROUNDS}):\n\
         \x20   t = time.perf_counter()\n\
         \x20   for _ in range({IN_PROCESS_PER_ROUND}): pwd.getpwnam('nobody')\n\
         \x20   print((time.perf_counter() - t) * 1e6 / {IN_PROCESS_PER_ROUND})\n"
    );
    // Both sides run their rounds back to back, ours around the peer's run.
    let ours_before: Vec<f64> =
        (0..ROUNDS / 2 + 1).map(|_| ours_per_lookup(IN_PROCESS_PER_ROUND)).collect();
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours_after: Vec<f64> =
        (0..ROUNDS / 2).map(|_| ours_per_lookup(IN_PROCESS_PER_ROUND)).collect();
    let peer: Vec<f64> = String::from_utf8(out.stdout)
        .expect("numbers")
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    let ours = ours_before.into_iter().chain(ours_after).collect();
    println!(
        "BENCH name=ave-persona lookup_user in process|ours={:.2}|peer=python3 pwd.getpwnam in process|peer_value={:.2}|unit=us|better=lower|target=1.5",
        median(ours),
        median(peer),
    );
}
