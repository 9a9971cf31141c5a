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

mod replace;
mod report;
mod server;
mod signals;

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
    network::{Address, ExitStatus, Pipe, Process, RemoteControl, Signal},
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
    pty_sessions: Vec<u32>,
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

    // ----- step 1 -----

    fn bootstrap(&mut self) -> anyhow::Result<Done> {
        let home = temporary_home()?;
        self.home = Some(home.clone());
        let home_mode = mode(&home)?;
        self.detail(format_args!("home {} (mode {home_mode:04o})", home.display()));

        let (created, skipped) = ave::config::create_default(&home)?;
        ensure!(skipped.is_empty(), "a fresh home already had {skipped:?}");
        let names: Vec<String> = created
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let dir = ave::config::config_dir(&home);
        self.detail(format_args!(
            "create_default: {} files in {}: {}",
            created.len(),
            dir.display(),
            names.join(", ")
        ));

        let authkeys = dir.join("authkeys.json");
        let key_mode = mode(&authkeys)?;
        if let Some(exposed) = ave::config::key_file_exposure(&authkeys)? {
            bail!("authkeys.json is readable by others (mode {exposed:04o})");
        }
        let keys = ave::config::load_authkeys(&home)?;
        let accounts: Vec<&str> = keys.iter().map(|(name, _)| name).collect();
        self.detail(format_args!(
            "authkeys.json: mode {key_mode:04o}, accounts {} (keys from the system's \
             cryptographic generator)",
            accounts.join(", ")
        ));
        self.admin = keys.admin().context("authkeys.json has no admin key")?.to_owned();
        let data = json!({
            "home": home,
            "home_mode": format!("{home_mode:04o}"),
            "files": names,
            "authkeys_mode": format!("{key_mode:04o}"),
            "accounts": accounts,
        });
        let summary = format!(
            "{} config files, authkeys.json mode {key_mode:04o} ({})",
            created.len(),
            accounts.join(", ")
        );
        self.keys = Some(keys);
        Ok(Done { summary, data })
    }

    // ----- step 2 -----

    fn start_server(&mut self) -> anyhow::Result<Done> {
        let home = self.home.clone().context("no home")?;
        let keys = self.keys.as_ref().context("no keys")?;
        let prepared = server::prepare(&home, keys)?;
        self.port = prepared.port;
        self.reports = Some(prepared.reports);
        let process = self.server.insert(prepared.process);
        let started = Instant::now();
        let result = process.start(false, true);
        let took = started.elapsed();
        // Known even when the child failed to initialize, so the cleanup can end it.
        if let Ok(pid) = process.pid() {
            self.pids.push(("server", pid.get().unsigned_abs()));
        }
        let pid = result.context("start the server process")?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        self.detail(format_args!(
            "pid {pid} (named {:?}) serves 127.0.0.1:{} with the accounts of authkeys.json",
            comm.trim(),
            self.port
        ));
        self.detail(format_args!(
            "Process::start(daemonize=false, synchronize=true) returned in {}, once the child \
             had its signal handling, runtime and handover socket",
            duration(took)
        ));
        let socket = prepared.socket;
        let is_socket = fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket());
        ensure!(is_socket, "the server has no handover socket at {}", socket.display());
        self.detail(format_args!("replaceable through {}", socket.display()));
        Ok(Done {
            summary: format!(
                "pid {pid} serving 127.0.0.1:{}, synchronized start in {}",
                self.port,
                duration(took)
            ),
            data: json!({
                "pid": pid.get(),
                "port": self.port,
                "name": comm.trim(),
                "start_ms": millis(took),
                "handover_socket": socket,
            }),
        })
    }

    // ----- step 3 -----

    async fn call(&mut self) -> anyhow::Result<Done> {
        let address = Address::new("127.0.0.1", self.port);
        let first =
            RemoteControl::new(address.clone(), Some(&self.admin)).with_timeout(Some(CALL_TIMEOUT));
        let (connected, connect_time) = timed(first.connect(Some(CALL_TIMEOUT))).await;
        connected.context("connect")?;
        ensure!(
            first.authenticated() == Some(true),
            "the admin key of authkeys.json did not authenticate"
        );
        // One connection from here to the end: the client never makes another.
        let conn = first.into_connection().await?;
        let local = conn.local_addr()?;
        self.local_addr = Some(local);
        let client = RemoteControl::from_connection(conn, address).with_timeout(Some(CALL_TIMEOUT));
        self.detail(format_args!(
            "connected from {local} and authenticated with the admin key in {}",
            duration(connect_time)
        ));

        let (pong, ping_time) = timed(client.call("sync_ping", ())).await;
        let pong = pong.context("sync_ping")?;
        ensure!(pong == "pong", "sync_ping answered {pong}");
        self.detail(format_args!("sync_ping() -> {pong} in {}", duration(ping_time)));

        let (identity, whoami_time) = timed(client.call("whoami", ())).await;
        let identity = identity.context("whoami")?;
        ensure!(identity == self.admin.as_str(), "whoami answered {identity}, not the admin key");
        self.detail(format_args!(
            "whoami() -> the admin key of authkeys.json, in {}",
            duration(whoami_time)
        ));

        let details = json!({
            "type": "Offline",
            "message": "the demo handset went away",
            "serial": "DEMO-0001",
        });
        let (raised, raise_time) = timed(client.call("raise_ave_exception", (details, 2))).await;
        let exception: AveException = match raised {
            Err(ave::network::Error::Remote(e)) => e,
            Err(e) => return Err(e).context("raise_ave_exception"),
            Ok(value) => bail!("raise_ave_exception returned {value} instead of raising"),
        };
        ensure!(exception.kind() == Kind::Offline, "the exception came back as {exception:?}");
        ensure!(
            exception.field("serial") == Some(&json!("DEMO-0001")),
            "the exception lost its serial: {exception:?}"
        );
        let frames = exception.trace().unwrap_or_default().len();
        self.detail(format_args!(
            "raise_ave_exception(Offline, depth=2) -> {}: {:?} (serial {} kept) in {}, with \
             its server-side trace:",
            exception.type_name(),
            exception.message(),
            json!("DEMO-0001"),
            duration(raise_time)
        ));
        for line in exception.format_trace().lines() {
            self.detail(format_args!("  {line}"));
        }

        let (sent, async_time) = timed(client.call_one_way("async_ping", ())).await;
        sent.context("async_ping")?;
        let (pongs, pongs_time) = timed(client.call("pongs", ())).await;
        let pongs = pongs.context("pongs")?;
        ensure!(pongs == 1, "the server counted {pongs} async pings, not 1");
        self.detail(format_args!(
            "async_ping() sent one-way in {} (no answer, by design); the server counted 1 \
             (asked on the same connection: {})",
            duration(async_time),
            duration(pongs_time)
        ));
        self.client = Some(client);
        Ok(Done {
            summary: format!(
                "sync_ping {}, whoami {}, {} raised with {frames} trace frames in {}, \
                 one-way async_ping {}",
                duration(ping_time),
                duration(whoami_time),
                exception.type_name(),
                duration(raise_time),
                duration(async_time)
            ),
            data: json!({
                "connect_ms": millis(connect_time),
                "sync_ping_ms": millis(ping_time),
                "whoami_ms": millis(whoami_time),
                "exception": { "type": exception.type_name(), "message": exception.message(), "trace_frames": frames },
                "raise_ms": millis(raise_time),
                "async_ping_ms": millis(async_time),
                "pongs": pongs,
            }),
        })
    }

    // ----- step 4 -----

    async fn pty(&mut self) -> anyhow::Result<Done> {
        let background = ave::cmd::run_bg(
            ["sh", "-c", "echo hello from $(tty)"],
            &Options::new().timeout(LIMIT),
        )?;
        let pid = background.pid().as_u32();
        self.pids.push(("pty command", pid));
        self.pty_sessions.push(pid);
        let hello = background.output_async().await?;
        self.pty_sessions.retain(|s| *s != pid);
        let text = hello.text().trim().to_owned();
        ensure!(hello.status.success(), "`echo` ended with {}", hello.status);
        ensure!(text.starts_with("hello from /dev/pts/"), "`echo` wrote {text:?}");
        self.detail(format_args!(
            "ave::cmd: `sh -c 'echo hello from $(tty)'` (pid {pid}) -> {text:?}, {}, in {}",
            hello.status,
            duration(hello.duration)
        ));

        let client = self.client.as_ref().context("no client")?;
        let (answer, external_time) =
            timed(client.call("run_external", (["sh", "-c", "echo run by pid $PPID"],))).await;
        let answer = answer.context("run_external")?;
        let server_pid = self.server_pid()?;
        let expected = format!("run by pid {server_pid}");
        let output = answer.get(1).and_then(Value::as_str).map(str::trim);
        ensure!(
            answer.get(0) == Some(&json!(0)) && output == Some(expected.as_str()),
            "run_external answered {answer}"
        );
        self.detail(format_args!(
            "the service's run_external(`sh -c 'echo run by pid $PPID'`) -> status 0, {:?}, \
             in {}",
            expected,
            duration(external_time)
        ));

        let started = Instant::now();
        let command = ["sh", "-c", "sleep 30 & sleep 30"];
        let background = ave::cmd::run_bg(command, &Options::new().timeout(PTY_TIMEOUT))?;
        let session = background.pid().as_u32();
        self.pids.push(("timed-out pty command", session));
        self.pty_sessions.push(session);
        let result = background.output_async().await;
        let took = started.elapsed();
        let status = match &result {
            Err(ave::cmd::Error::Timeout { status, .. }) => *status,
            Err(_) => {
                return result
                    .map(|_| Done { summary: String::new(), data: Value::Null })
                    .context("sleep 30");
            }
            Ok(out) => bail!("`sleep 30` ended by itself ({}) despite its timeout", out.status),
        };
        let exception = AveException::from(result.expect_err("matched as a timeout"));
        let left = session_members(session);
        ensure!(left.is_empty(), "processes of session {session} survived the timeout: {left:?}");
        ensure!(!Path::new(&format!("/proc/{session}")).exists(), "pid {session} is still there");
        self.pty_sessions.retain(|s| *s != session);
        self.detail(format_args!(
            "ave::cmd: `sh -c 'sleep 30 & sleep 30'` (pid {session}) with a {} timeout -> {}: \
             {:?} after {} ({}); nothing of its session is left",
            duration(PTY_TIMEOUT),
            exception.type_name(),
            exception.message(),
            duration(took),
            status
        ));
        Ok(Done {
            summary: format!(
                "echo {}, run_external {}, sleep 30 timed out after {} and its session is gone",
                duration(hello.duration),
                duration(external_time),
                duration(took)
            ),
            data: json!({
                "echo_ms": millis(hello.duration),
                "echo_output": text,
                "run_external_ms": millis(external_time),
                "timeout_pid": session,
                "timeout_ms": millis(PTY_TIMEOUT),
                "timed_out_after_ms": millis(took),
                "timeout_exception": exception.type_name(),
                "session_left": left.len(),
            }),
        })
    }

    // ----- step 5 -----

    async fn replace(&mut self) -> anyhow::Result<Done> {
        let home = self.home.clone().context("no home")?;
        let client = self.client.take().context("no client")?;
        let old = self.server_pid()?;
        let before = client.call("get_pid", ()).await.context("get_pid")?;
        ensure!(before == old, "get_pid answered {before}, not the server's pid {old}");

        let mut pings = PingLoop::start(client);
        pings.wait_for(CALLS_AROUND, LIMIT).await?;
        let local = self.local_addr.context("no connection")?;
        self.detail(format_args!(
            "a client calls sync_ping in a loop on its one connection ({local}); get_pid says {old}"
        ));

        let exe = std::env::current_exe().context("find the ave program")?;
        let argv: Vec<String> = vec![
            exe.to_string_lossy().into_owned(),
            "serve".into(),
            "--replace".into(),
            "--home".into(),
            home.to_string_lossy().into_owned(),
            "--authkeys".into(),
        ];
        let spawned = Instant::now();
        let successor = self.successor.insert(Supervised::start(argv)?);
        let new = successor.pid;
        self.pids.push(("new instance", new));
        self.out.detail(format_args!(
            "started `ave serve --replace --home <temporary home> --authkeys` on a pty: pid {new}"
        ));
        if self.hold.as_deref() == Some("replace") {
            self.hold("in step 5, the new instance started").await;
        }

        // The old instance's own account of the handover, then its exit; unless the new
        // one ends first, which is a failed replace (the old one then serves on).
        let mut reports = self.reports.take().context("no report pipe")?;
        let mut reading = tokio::task::spawn_blocking(move || {
            let report = reports.get(Some(LIMIT));
            (reports, report)
        });
        let successor = self.successor.as_mut().context("no successor")?;
        let (reports, report) = tokio::select! {
            read = &mut reading => read?,
            ended = successor.wait(LIMIT) => {
                let status = ended?;
                bail!(
                    "the new instance ended ({status}) before it took over; it said: {:?}",
                    successor.said()
                );
            }
        };
        self.reports = Some(reports);
        let report = report.context("the old instance did not report how it ended")?;
        ensure!(report["stopped"] == "replaced", "the old instance ended otherwise: {report}");
        let server = self.server.as_mut().context("no server")?;
        let status = tokio::task::block_in_place(|| server.join(Some(LIMIT)))
            .context("wait for the old instance")?;
        let exited = Instant::now();
        let answered_at_exit = pings.answered();
        ensure!(status == ExitStatus::Exited(0), "the old instance {status}");

        let successor = self.successor.as_mut().context("no successor")?;
        let took_over = successor.line("took over", LIMIT).await?;
        let listening = successor.log.iter().find(|l| l.contains("listening on")).cloned();
        let same_port =
            listening.as_deref().is_some_and(|l| l.ends_with(&format!(":{}", self.port)));
        ensure!(same_port, "the new instance does not listen on port {}: {listening:?}", self.port);

        pings.wait_for(answered_at_exit + CALLS_AROUND, LIMIT).await?;
        let (client, record) = pings.finish().await?;
        // The loop ends at its first failed call (a second would reconnect).
        let failed = usize::from(record.failure.is_some());
        if let Some(failure) = &record.failure {
            bail!("a call failed: {failure}");
        }
        let during = record.between(spawned, exited);
        let gap = record.longest_gap();
        let after = client.call("get_pid", ()).await.context("get_pid")?;
        ensure!(after == new, "get_pid answered {after}, not the new instance's pid {new}");
        let identity = client.call("whoami", ()).await.context("whoami")?;
        ensure!(identity == self.admin.as_str(), "the connection lost its identity: {identity}");
        let conn = client.into_connection().await?;
        let local_after = conn.local_addr()?;
        ensure!(local_after == local, "the client reconnected: {local} became {local_after}");
        self.client = Some(
            RemoteControl::from_connection(conn, Address::new("127.0.0.1", self.port))
                .with_timeout(Some(CALL_TIMEOUT)),
        );

        let handover_ms = report["successor"]["elapsed_ms"].as_f64().unwrap_or(f64::NAN);
        let moved = report["successor"]["connections"].as_u64().unwrap_or(0);
        let replace_time = exited.duration_since(spawned);
        self.detail(format_args!(
            "the old instance (pid {old}) handed over its listener and {moved} connection(s) in \
             {handover_ms:.1} ms (from the new one's hello to its ready) and {status}"
        ));
        self.detail(format_args!(
            "the new instance says: {}",
            took_over.trim_start_matches("ave serve: ")
        ));
        self.detail(format_args!(
            "{during} calls answered during the replace ({} from starting the new instance to \
             the old one's exit), {failed} failed, longest gap between answers {}; {} calls in all",
            duration(replace_time),
            duration(gap),
            record.answers.len()
        ));
        self.detail(format_args!(
            "same connection ({local}): get_pid now says {new}, whoami still the admin key"
        ));
        Ok(Done {
            summary: format!(
                "{during} calls during the replace, {failed} failed, longest gap {}, handover \
                 {handover_ms:.1} ms, pid {old} -> {new} on the same connection",
                duration(gap)
            ),
            data: json!({
                "old_pid": old,
                "new_pid": new,
                "calls": record.answers.len(),
                "calls_during_replace": during,
                "failed_calls": failed,
                "longest_gap_ms": millis(gap),
                "handover_ms": handover_ms,
                "replace_ms": millis(replace_time),
                "connections_moved": moved,
                "old_exit": status.to_string(),
                "same_connection": true,
                "pid_before": before,
                "pid_after": after,
            }),
        })
    }

    // ----- step 6 -----

    async fn stop(&mut self) -> anyhow::Result<Done> {
        let client = self.client.take().context("no client")?;
        let (stopped, stop_time) = timed(client.call("stop", ())).await;
        stopped.context("stop")?;
        drop(client);
        let waited = Instant::now();
        let successor = self.successor.as_mut().context("no successor")?;
        let new = successor.pid;
        let status = successor.wait(LIMIT).await.context("wait for the new instance")?;
        let exit_time = waited.elapsed();
        ensure!(status.success(), "the new instance ended with {status}");
        let old = self.server_pid()?;
        let old_status = self.server.as_ref().and_then(Process::status);
        ensure!(old_status == Some(ExitStatus::Exited(0)), "the old instance: {old_status:?}");
        for (role, pid) in &self.pids {
            ensure!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "the {role} (pid {pid}) is still there"
            );
        }
        self.detail(format_args!(
            "stop() answered in {}; the new instance (pid {new}) exited 0 {} later; the old \
             one (pid {old}) had exited 0",
            duration(stop_time),
            duration(exit_time)
        ));
        self.detail(format_args!(
            "no process of the demo is left (pids {})",
            self.pids.iter().map(|(_, p)| p.to_string()).collect::<Vec<_>>().join(", ")
        ));
        let home = self.home.clone().context("no home")?;
        let what = if self.keep {
            self.detail(format_args!("kept the temporary home: {}", home.display()));
            "home kept"
        } else {
            let (removed, remove_time) = timed(async { fs::remove_dir_all(&home) }).await;
            removed.with_context(|| format!("remove {}", home.display()))?;
            ensure!(!home.exists(), "{} is still there", home.display());
            self.home_removed = true;
            self.detail(format_args!("removed {} in {}", home.display(), duration(remove_time)));
            "home removed"
        };
        Ok(Done {
            summary: format!(
                "stop answered in {}, the new instance exited 0 {} later, {what}",
                duration(stop_time),
                duration(exit_time)
            ),
            data: json!({
                "stop_ms": millis(stop_time),
                "exit_ms": millis(exit_time),
                "new_exit": status.to_string(),
                "old_exit": old_status.map(|s| s.to_string()),
                "home_removed": self.home_removed,
            }),
        })
    }

    fn server_pid(&self) -> anyhow::Result<u32> {
        let server = self.server.as_ref().context("no server")?;
        Ok(server.pid()?.get().unsigned_abs())
    }

    // ----- cleanup -----

    /// Ends whatever still runs and removes the home: after the last step, a failure or a
    /// signal alike. Bounded: every wait has a limit, then SIGKILL.
    async fn cleanup(&mut self) {
        self.client = None;
        if let Some(successor) = self.successor.as_mut()
            && successor.status.is_none()
        {
            let pid = successor.pid;
            let note = match successor.kill().await {
                Ok(status) => format!("ended the new instance (pid {pid}): {status}"),
                Err(e) => format!("could not end the new instance (pid {pid}): {e:#}"),
            };
            self.cleanup.push(note);
        }
        tokio::task::block_in_place(|| self.cleanup_sync());
        for note in &self.cleanup {
            self.out.line(format_args!("cleanup: {note}"));
        }
    }

    /// The synchronous part of the cleanup: pty commands, the first server and the home.
    fn cleanup_sync(&mut self) {
        // A run of `ave::cmd` that was dropped in the middle (a signal) has ended its
        // command's session and reaped it before the drop returned; this checks it.
        for session in std::mem::take(&mut self.pty_sessions) {
            let left = session_members(session);
            let note = if left.is_empty() {
                format!("the pty command's session {session} was ended")
            } else {
                for pid in &left {
                    let pid = nix::unistd::Pid::from_raw(i32::try_from(*pid).unwrap_or(i32::MAX));
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
                format!(
                    "processes {left:?} of the pty command's session {session} were left: killed"
                )
            };
            self.cleanup.push(note);
        }
        if let Some(server) = self.server.as_mut()
            && let Ok(pid) = server.pid()
            && server.status().is_none()
        {
            let note = match end_process(server) {
                Ok(status) => format!("ended the server (pid {pid}): {status}"),
                Err(e) => format!("could not end the server (pid {pid}): {e:#}"),
            };
            self.cleanup.push(note);
        }
        if let Some(home) = &self.home
            && !self.keep
            && fs::symlink_metadata(home).is_ok()
        {
            let note = match fs::remove_dir_all(home) {
                Ok(()) => {
                    self.home_removed = true;
                    format!("removed {}", home.display())
                }
                Err(e) => format!("could not remove {}: {e}", home.display()),
            };
            self.cleanup.push(note);
        }
    }
}

/// SIGTERM (a clean stop), then SIGKILL if it is still there after a while; reaped.
fn end_process(process: &mut Process) -> anyhow::Result<ExitStatus> {
    process.terminate()?;
    match process.join(Some(Duration::from_secs(3))) {
        Ok(status) => Ok(status),
        Err(_) => {
            process.kill(Signal::KILL)?;
            Ok(process.join(Some(LIMIT))?)
        }
    }
}

/// A new directory of mode 0700 under `$TMPDIR` (or `/tmp`), with a random name.
fn temporary_home() -> anyhow::Result<PathBuf> {
    let name = format!("ave-demo-{}-{}", std::process::id(), ave::config::rand_authkey()?);
    let home = std::env::temp_dir().join(name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&home)
        .with_context(|| format!("create {}", home.display()))?;
    Ok(home)
}

fn mode(path: &Path) -> anyhow::Result<u32> {
    let meta = fs::metadata(path).with_context(|| format!("inspect {}", path.display()))?;
    Ok(meta.permissions().mode() & 0o7777)
}

/// Runs `work` and measures it.
async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let result = work.await;
    (result, started.elapsed())
}

/// The live processes (not zombies) of session `sid`, from `/proc`.
fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // After the command name in parentheses: state, ppid, pgrp, session, ...
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(3) == Some(&sid.to_string().as_str())
        })
        .collect()
}
