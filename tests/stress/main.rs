//! The original's stress scenario (spec/ave-tests.md, "stress t1"): one `Control` that
//! shuts down after a transaction limit, hammered by client processes that call it in a
//! loop and reconnect at random, until every client has seen the server's `Exit`.
//!
//! One program, three roles:
//! - `stress [OPTIONS]`: the harness (default). It starts the server as a child process,
//!   then the clients back to back, shows progress, waits for all of them within an
//!   overall bound, and prints a report and a verdict (exit status 0: pass, 1: fail,
//!   2: the run could not be set up).
//! - `stress server [OPTIONS]`: the server. It prints one JSON object per line on stdout:
//!   `listening`, `progress`, `limit`, `result`.
//! - `stress client KIND --port N [OPTIONS]`: one client. It prints one JSON object (its
//!   report) and exits 0 on the server's `Exit`, 3 when the server was already gone while
//!   it reconnected, 2 when an exception reply lacked `recognize`, 1 for anything else.
//!
//! The defaults are the original's parameters (30 clients per kind, a limit of 100,000,
//! 1,000,000-byte `upper` payloads, reconnect probabilities 0.1/0.2/0.3, a 10 s timeout),
//! so `cargo xtask stress` runs the full scenario.

// A command-line program prints to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod client;
mod harness;
mod report;
mod server;

use std::{process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

/// The message of the server's `Exit`, as the original's test server sends it.
pub(crate) const LIMIT_MESSAGE: &str = "max transactions limit reached";

#[derive(Debug, Parser)]
#[command(
    name = "stress",
    about = "The original AVE stress scenario: one server that shuts down after a \
             transaction limit, hammered by client processes until they all see its Exit"
)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    harness: HarnessArgs,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Serve `sync_ping`, `upper` and `raise_ave_exception` until the limit.
    Server(ServerArgs),
    /// Call the server in a loop until its `Exit` arrives.
    Client(ClientArgs),
}

/// The kinds of clients.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// `sync_ping()`, which must answer `"pong"`.
    Ping,
    /// `upper('x' * payload)`, which must answer the payload in upper case.
    Upper,
    /// `raise_ave_exception({'message': 'hello', 'recognize': 'me'})`, whose exception
    /// must carry `recognize`.
    Raise,
}

impl Kind {
    /// Every kind, in the order of the original's client table.
    pub(crate) const ALL: [Kind; 3] = [Kind::Ping, Kind::Upper, Kind::Raise];

    /// The name used on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Upper => "upper",
            Kind::Raise => "raise",
        }
    }
}

/// Faults the server can inject, to show that the harness's verdict catches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Fault {
    /// None: the real scenario.
    #[default]
    None,
    /// One `raise_ave_exception` reply loses its `recognize` field.
    StripRecognize,
    /// The call halfway to the limit sleeps `--stall` seconds before it answers.
    Stall,
    /// The server ignores its limit and never shuts down.
    NoLimit,
    /// The server keeps a descriptor open for every call it serves.
    LeakFds,
    /// The server keeps 100 KiB of memory for every call it serves.
    LeakMemory,
}

/// The harness's options (the defaults are the original's parameters).
#[derive(Debug, Clone, Args)]
pub(crate) struct HarnessArgs {
    /// Clients of each kind (ping, upper, raise).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) clients: u32,
    /// The server's transaction limit: calls 1 to limit-1 are served, the limit-th shuts
    /// the server down.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) limit: u64,
    /// Bytes of the `upper` clients' argument.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) payload: usize,
    /// Probability that a ping client reconnects before a call.
    #[arg(long, default_value_t = 0.1, value_parser = probability)]
    pub(crate) ping_reconnect: f64,
    /// Probability that an upper client reconnects before a call.
    #[arg(long, default_value_t = 0.2, value_parser = probability)]
    pub(crate) upper_reconnect: f64,
    /// Probability that a raise client reconnects before a call.
    #[arg(long, default_value_t = 0.3, value_parser = probability)]
    pub(crate) raise_reconnect: f64,
    /// Every call's timeout, in seconds (connecting and the handshake included).
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub(crate) timeout: Duration,
    /// The bound on the whole run, in seconds; beyond it every process is killed and the
    /// run fails.
    #[arg(long, default_value = "900", value_parser = seconds)]
    pub(crate) deadline: Duration,
    /// Show the server's progress every this many calls (default: a twentieth of the
    /// limit).
    #[arg(long)]
    pub(crate) progress_every: Option<u64>,
    /// The seed of the clients' reconnect decisions (default: from the clock).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// The bound on the server's open descriptors (default: two per client, for the
    /// connection in use and one closing after a reconnect, plus 32).
    #[arg(long)]
    pub(crate) max_fds: Option<u64>,
    /// The bound on the server's peak resident memory in MiB (default: 64 MiB plus ten
    /// copies of the payload per upper client).
    #[arg(long)]
    pub(crate) max_rss_mib: Option<u64>,
    /// The server's socket buffer sizes in bytes (the original's 16 KiB; 0: the kernel's).
    #[arg(long, default_value_t = 16_384)]
    pub(crate) sockbuf: usize,
    /// How long the server's shutdown may take to deliver its last replies, in seconds.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub(crate) linger: Duration,
    /// Writes the full report as JSON to this file.
    #[arg(long)]
    pub(crate) report: Option<std::path::PathBuf>,
    /// Injects a fault into the server (to check the verdict itself).
    #[arg(long, value_enum, default_value_t = Fault::None)]
    pub(crate) inject_fault: Fault,
    /// With `--inject-fault stall`: how long the stalled call sleeps, in seconds
    /// (default: the timeout and a half).
    #[arg(long, value_parser = seconds)]
    pub(crate) stall: Option<Duration>,
}

/// The server's options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// The transaction limit.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) limit: u64,
    /// Print a progress line every this many calls.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) progress_every: u64,
    /// Socket buffer sizes of every connection in bytes (0: the kernel's).
    #[arg(long, default_value_t = 16_384)]
    pub(crate) sockbuf: usize,
    /// The bound on the shutdown, in seconds.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub(crate) linger: Duration,
    /// A fault to inject.
    #[arg(long, value_enum, default_value_t = Fault::None)]
    pub(crate) inject_fault: Fault,
    /// How long the stalled call sleeps, in seconds.
    #[arg(long, default_value = "15", value_parser = seconds)]
    pub(crate) stall: Duration,
    /// Exit when stdin reaches its end (the harness holds it open while it runs).
    #[arg(long)]
    pub(crate) watch_stdin: bool,
}

/// A client's options.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// What to call.
    #[arg(value_enum)]
    pub(crate) kind: Kind,
    /// The server's port on 127.0.0.1.
    #[arg(long)]
    pub(crate) port: u16,
    /// The probability of reconnecting before a call (default: the kind's, as the
    /// original's: 0.1, 0.2, 0.3).
    #[arg(long, value_parser = probability)]
    pub(crate) reconnect: Option<f64>,
    /// Bytes of the `upper` argument.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) payload: usize,
    /// Every call's timeout, in seconds.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub(crate) timeout: Duration,
    /// The seed of the reconnect decisions.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Exit when stdin reaches its end (the harness holds it open while it runs).
    #[arg(long)]
    pub(crate) watch_stdin: bool,
}

fn probability(text: &str) -> Result<f64, String> {
    let p: f64 = text.parse().map_err(|e| format!("not a number: {e}"))?;
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err("must be between 0 and 1".to_owned()) }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = text.parse().map_err(|e| format!("not a number: {e}"))?;
    Duration::try_from_secs_f64(s).map_err(|e| format!("not a duration: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.role {
        None => harness::run(&cli.harness),
        Some(Role::Server(args)) => server::run(&args),
        Some(Role::Client(args)) => client::run(&args),
    }
}

/// Nanoseconds on the system's monotonic clock, comparable between the processes of one
/// machine (unlike `Instant`, which cannot leave its process).
pub(crate) fn monotonic_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("the monotonic clock is readable");
    let secs = u64::try_from(now.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec()).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

/// Ends this process when stdin reaches its end: the harness that holds it open is gone,
/// so nobody is left to stop us.
pub(crate) fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        loop {
            match std::io::Read::read(&mut stdin, &mut sink) {
                Ok(0) | Err(_) => {
                    eprintln!("stress: stdin closed (the harness is gone); exiting");
                    std::process::exit(4);
                }
                Ok(_) => {}
            }
        }
    });
}

/// SplitMix64: a small deterministic generator for the reconnect decisions, so a run can
/// be repeated with its seed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        // The top 53 bits as a float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_follows_the_probability() {
        let mut rng = SplitMix64::new(7);
        let hits = (0..100_000).filter(|_| rng.chance(0.2)).count();
        assert!((19_000..21_000).contains(&hits), "{hits} hits out of 100000 at p = 0.2");
        assert!(!(0..1000).any(|_| rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
    }

    #[test]
    fn the_defaults_are_the_originals_parameters() {
        let cli = Cli::parse_from(["stress"]);
        assert!(cli.role.is_none());
        let h = cli.harness;
        assert_eq!((h.clients, h.limit, h.payload), (30, 100_000, 1_000_000));
        assert_eq!((h.ping_reconnect, h.upper_reconnect, h.raise_reconnect), (0.1, 0.2, 0.3));
        assert_eq!(h.timeout, Duration::from_secs(10));
        assert_eq!(h.sockbuf, 16_384);
        assert_eq!(h.inject_fault, Fault::None);
        for kind in Kind::ALL {
            let cli = Cli::parse_from(["stress", "client", kind.name(), "--port", "1"]);
            let Some(Role::Client(args)) = cli.role else { panic!("a client role") };
            assert_eq!(args.kind, kind);
            assert_eq!(args.reconnect, None);
        }
        let cli = Cli::parse_from(["stress", "server"]);
        let Some(Role::Server(args)) = cli.role else { panic!("a server role") };
        assert_eq!(args.limit, 100_000);
    }

    #[test]
    fn argument_parsers() {
        assert_eq!(probability("0.3"), Ok(0.3));
        assert!(probability("1.5").is_err());
        assert!(probability("x").is_err());
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("-1").is_err());
    }
}
