//! `ave demo`: the whole suite, end to end, on a temporary home.
//!
//! With no setup, it shows the parts working together and measures them, in six steps:
//!
//! 1. a temporary home (mode 0700, under `$TMPDIR`) gets the default config
//!    (`ave::config::create_default`), with its `authkeys.json` at mode 0600;
//! 2. the diagnostic service starts in a synchronized child process
//!    (`ave::network::Process`), forked while this process has a single thread, serving a
//!    free loopback port with the accounts of `authkeys.json`, replaceable through the
//!    home's handover socket as `ave serve` is;
//! 3. a client calls it with the admin key: `sync_ping`, `whoami`, an exception with its
//!    server-side trace, and a one-way `async_ping`;
//! 4. commands run on a pty (`ave::cmd`): a short one directly, one inside the service
//!    (`run_external`), and `sleep 30` with a 0.5 s timeout, whose whole session ends;
//! 5. `ave serve --replace` takes the service over while a client calls `sync_ping` in a
//!    loop on one connection: no call fails, and the same connection is then served by
//!    the new process;
//! 6. the new instance is stopped with its `stop` RPC and the temporary home removed.
//!
//! Each step prints a line when it starts, details as it goes, and its result and
//! duration when it ends; a report closes the run (one JSON object on stdout with
//! `--json`, progress then goes to stderr). Exit status: 0 if every step succeeded, 1 if
//! one failed (the report says which and why), 128+N if signal N (SIGINT, SIGTERM,
//! SIGHUP) interrupted it. Whatever happens, every process the demo started is ended and
//! reaped and the temporary home removed (unless `--keep`) before it exits.
//!
//! Test hook: with `AVE_DEMO_TEST_HOLD=N` (N from 3 to 6) in its environment, the demo
//! stops before step N, says so on a `[hold]` line, and waits for a signal (at most 30 s,
//! then it goes on), so the tests can interrupt it at a known point;
//! `AVE_DEMO_TEST_HOLD=replace` holds in the middle of step 5, once the new instance has
//! started, while the client keeps calling.

mod cleanup;
mod replace;
mod report;
mod server;
mod signals;
mod step1_bootstrap;
mod step2_server;
mod step3_calls;
mod step4_pty;
mod step5_replace;
mod step6_stop;

use std::{
    fs,
    future::Future,
    net::SocketAddr,
    os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _},
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use ave::{
    cmd::Options,
    config::Authkeys,
    exceptions::{AveException, Kind},
    network::{
        Address, Process, RemoteControl,
        process::{ExitStatus, Pipe, Signal},
    },
};
use serde_json::{Value, json};

use crate::demo::{
    replace::{PingLoop, Supervised},
    report::{Out, Report, STEPS, Status, Step, duration, millis},
};

/// The exit codes, for `ave demo --help`.
const EXIT_CODES: &str = "\
Exit status:
  0      every step succeeded
  1      a step failed (the report says which and why)
  128+N  signal N (SIGINT, SIGTERM, SIGHUP) interrupted it; everything was cleaned up";

/// Arguments of `ave demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct Args {
    /// Keep the temporary home and print its path (the processes are stopped all the
    /// same).
    #[arg(long)]
    keep: bool,
    /// Print the report as one JSON object on stdout; progress goes to stderr.
    #[arg(long)]
    json: bool,
}

/// The bound on every wait of the demo (a step that waits longer fails).
const LIMIT: Duration = Duration::from_secs(10);
/// The bound on each RPC.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The timeout given to `sleep 30` in step 4.
const PTY_TIMEOUT: Duration = Duration::from_millis(500);
/// Calls answered before the new instance starts, and after the old one has exited.
const CALLS_AROUND: usize = 100;
/// The test hook's variable, and how long a hold lasts at most.
const HOLD_ENV: &str = "AVE_DEMO_TEST_HOLD";
const HOLD_LIMIT: Duration = Duration::from_secs(30);

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    // First, while this process has one thread: signals wait for the cleanup.
    let blocked = signals::block().context("block SIGINT, SIGTERM and SIGHUP")?;
    let started = Instant::now();
    let mut demo = Demo::new(&args);
    demo.out.line(
        "ave demo: the AVE suite end to end on a temporary home, cleaned up afterwards \
         (also on Ctrl-C)",
    );

    // Steps 1 and 2 run before any thread or runtime exists: step 2 forks.
    demo.sync_step(1, Demo::bootstrap);
    if demo.going() {
        demo.sync_step(2, Demo::start_server);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime");
    match (signals::watch(blocked), runtime) {
        (Ok(mut signals), Ok(runtime)) => {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(async {
                    tokio::select! {
                        biased;
                        signal = signals::first(&mut signals) => Some(signal),
                        () = demo.run_async_steps() => None,
                    }
                })
            }));
            match outcome {
                Ok(Some(signal)) => demo.interrupt(signal),
                Ok(None) => {}
                Err(_) => demo.fail_current("the demo panicked (see stderr)".to_owned()),
            }
            runtime.block_on(demo.cleanup());
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        (signals, runtime) => {
            // Nothing asynchronous was started: the server and the home are all there is.
            let error = match (signals, runtime) {
                (Err(e), _) => anyhow::Error::from(e).context("start the signal thread"),
                (_, Err(e)) => e,
                (Ok(_), Ok(_)) => unreachable!("matched above"),
            };
            demo.out.line(format!("ave demo: {error:#}"));
            demo.cleanup_sync();
        }
    }

    let report = Report {
        steps: &demo.steps,
        total: started.elapsed(),
        interrupted: demo.interrupted,
        home: demo.home.as_ref(),
        home_kept: demo.keep && demo.home.as_ref().is_some_and(|h| h.exists()),
        home_removed: demo.home_removed,
        pids: &demo.pids,
        cleanup: &demo.cleanup,
    };
    if args.json {
        demo.out.line(format_args!("ave demo: {}", if report.ok() { "ok" } else { "failed" }));
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!("{}\n", report.json()).as_bytes(),
        );
    } else {
        demo.out.line(report.text());
    }
    Ok(match (report.ok(), demo.signal) {
        (true, _) => ExitCode::SUCCESS,
        (false, Some(signal)) => ExitCode::from(128 + signal as i32 as u8),
        (false, None) => ExitCode::FAILURE,
    })
}

/// What a step reports when it succeeds.
struct Done {
    summary: String,
    data: Value,
}

/// The demo's state: the steps so far and everything that must be cleaned up.
struct Demo {
    out: Out,
    keep: bool,
    hold: Option<String>,
    steps: Vec<Step>,
    /// The step under way and when it started.
    current: Option<(usize, Instant)>,
    signal: Option<signals::Caught>,
    interrupted: Option<&'static str>,
    home: Option<PathBuf>,
    home_removed: bool,
    keys: Option<Authkeys>,
    admin: String,
    /// The first server, a child of this process.
    server: Option<Process>,
    port: u16,
    reports: Option<Pipe>,
    client: Option<RemoteControl>,
    /// The client's side of its one connection.
    local_addr: Option<SocketAddr>,
    /// The new instance, `ave serve --replace`, on a pty.
    successor: Option<Supervised>,
    /// Every process the demo started.
    pids: Vec<(&'static str, u32)>,
    /// Commands started on a pty whose end was not seen yet (session ids).
    pty_sessions: Vec<ave::cmd::Pid>,
    cleanup: Vec<String>,
}

impl Demo {
    fn new(args: &Args) -> Demo {
        Demo {
            out: Out { json: args.json },
            keep: args.keep,
            hold: std::env::var(HOLD_ENV).ok(),
            steps: Vec::new(),
            current: None,
            signal: None,
            interrupted: None,
            home: None,
            home_removed: false,
            keys: None,
            admin: String::new(),
            server: None,
            port: 0,
            reports: None,
            client: None,
            local_addr: None,
            successor: None,
            pids: Vec::new(),
            pty_sessions: Vec::new(),
            cleanup: Vec::new(),
        }
    }

    fn detail(&self, text: impl std::fmt::Display) {
        self.out.detail(text);
    }

    /// Whether every step so far succeeded and nothing interrupted the demo.
    fn going(&self) -> bool {
        self.interrupted.is_none() && self.steps.iter().all(|s| s.status == Status::Ok)
    }

    fn begin(&mut self, number: usize) {
        self.out.line(format_args!("[{number}/{}] {}", STEPS.len(), STEPS[number - 1].1));
        self.current = Some((number, Instant::now()));
    }

    fn end(&mut self, result: anyhow::Result<Done>) {
        let Some((number, started)) = self.current.take() else { return };
        let took = started.elapsed();
        let of = STEPS.len();
        let step = match result {
            Ok(done) => {
                self.out.line(format_args!("[{number}/{of}] ok in {}", duration(took)));
                Step {
                    number,
                    status: Status::Ok,
                    duration: took,
                    summary: done.summary,
                    data: done.data,
                }
            }
            Err(error) => {
                let error = format!("{error:#}");
                self.out
                    .line(format_args!("[{number}/{of}] FAILED after {}: {error}", duration(took)));
                Step {
                    number,
                    status: Status::Failed(error),
                    duration: took,
                    summary: String::new(),
                    data: Value::Null,
                }
            }
        };
        self.steps.push(step);
    }

    fn sync_step(&mut self, number: usize, step: impl FnOnce(&mut Demo) -> anyhow::Result<Done>) {
        self.begin(number);
        let result = step(self);
        self.end(result);
    }

    /// Steps 3 to 6, each only if everything before succeeded.
    async fn run_async_steps(&mut self) {
        for number in 3..=STEPS.len() {
            if !self.going() {
                return;
            }
            if self.hold.as_deref() == Some(number.to_string().as_str()) {
                self.hold(&format!("before step {number}")).await;
            }
            self.begin(number);
            let result = match number {
                3 => self.call().await,
                4 => self.pty().await,
                5 => self.replace().await,
                _ => self.stop().await,
            };
            self.end(result);
        }
    }

    /// The test hook: waits (for a signal, which ends the flow), at most `HOLD_LIMIT`.
    async fn hold(&self, place: &str) {
        self.out.line(format_args!("[hold] {place}: waiting for a signal ({HOLD_ENV})"));
        tokio::time::sleep(HOLD_LIMIT).await;
    }

    /// A signal ended the flow: the step under way is marked interrupted.
    fn interrupt(&mut self, signal: signals::Caught) {
        self.signal = Some(signal);
        self.interrupted = Some(signal.as_str());
        match self.current.take() {
            Some((number, started)) => {
                let took = started.elapsed();
                self.out.line(format_args!(
                    "[{number}/{}] interrupted by {} after {}; cleaning up",
                    STEPS.len(),
                    signal.as_str(),
                    duration(took)
                ));
                self.steps.push(Step {
                    number,
                    status: Status::Interrupted(signal.as_str().to_owned()),
                    duration: took,
                    summary: String::new(),
                    data: Value::Null,
                });
            }
            None => self.out.line(format_args!("interrupted by {}; cleaning up", signal.as_str())),
        }
    }

    fn fail_current(&mut self, error: String) {
        if self.current.is_some() {
            self.end(Err(anyhow::anyhow!(error)));
        }
    }

    fn server_pid(&self) -> anyhow::Result<u32> {
        let server = self.server.as_ref().context("no server")?;
        Ok(server.pid()?.get().unsigned_abs())
    }
}

/// Runs `work` and measures it.
async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let result = work.await;
    (result, started.elapsed())
}
