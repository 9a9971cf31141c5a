//! The harness role: starts the server, then the clients back to back, shows progress,
//! waits for every process within the overall bound (killing everything if it runs out),
//! and judges the run.
//!
//! The verdict passes only if every check holds: every client ended on the server's
//! `Exit` (0) or found it gone (3), at least one on the `Exit`; clients that found it gone
//! did so after the shutdown began; the server served exactly limit-1 calls and every one
//! of them was answered to its client; no call took as long as the timeout; the server's
//! descriptors and resident memory stayed under their bounds; the server stopped on its
//! shutdown and exited cleanly; all within the overall bound.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, ChildStdin, Command, ExitCode, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    Fault, HarnessArgs, Kind, LIMIT_MESSAGE,
    report::{
        Check, ClientOutcome, ClientReport, End, HarnessReport, KindTotals, ServerEvent,
        ServerResult,
    },
};

/// What the reader threads tell the harness.
enum Message {
    /// A line of the server's stdout.
    Server(ServerEvent),
    /// A line of the server's stdout that is not an event.
    ServerText(String),
    /// The server's stdout ended.
    ServerEof,
    /// A client's stdout ended, with everything it printed.
    Client(usize, String),
}

/// A child process and the stdin that keeps it alive (it exits when stdin closes).
struct Proc {
    child: Child,
    _stdin: Option<ChildStdin>,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(command: &mut Command) -> std::io::Result<Proc> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take();
        Ok(Proc { child, _stdin: stdin, status: None })
    }

    fn wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        self.status
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            // Our own child, not reaped yet: its pid cannot have been reused.
            let _ = self.child.kill();
            self.wait();
        }
    }
}

/// The derived settings of a run.
struct Plan {
    seed: u64,
    progress_every: u64,
    max_fds: u64,
    max_rss_mib: u64,
    stall: Duration,
    total_clients: usize,
}

impl Plan {
    fn new(args: &HarnessArgs) -> Plan {
        let total_clients = args.clients as usize * Kind::ALL.len();
        // Each client holds at most one connection, and briefly a second one that the
        // server has not yet seen close after a reconnect; 32 covers the runtime, the
        // listener, the standard streams and the sampler.
        let max_fds = args.max_fds.unwrap_or(2 * total_clients as u64 + 32);
        // An `upper` call holds about five copies of the payload at once (the request
        // frame, the parsed argument, the result, its JSON value, the reply frame); ten
        // per upper client leaves room for the allocator, and 64 MiB for the rest.
        let upper_bytes = 10 * args.payload as u64 * u64::from(args.clients);
        let max_rss_mib = args.max_rss_mib.unwrap_or(64 + upper_bytes.div_ceil(1 << 20));
        Plan {
            seed: args
                .seed
                .unwrap_or_else(|| crate::monotonic_ns() ^ u64::from(std::process::id())),
            progress_every: args.progress_every.unwrap_or((args.limit / 20).max(1)),
            max_fds,
            max_rss_mib,
            stall: args.stall.unwrap_or(args.timeout.mul_f64(1.5)),
            total_clients,
        }
    }

    fn reconnect(args: &HarnessArgs, kind: Kind) -> f64 {
        match kind {
            Kind::Ping => args.ping_reconnect,
            Kind::Upper => args.upper_reconnect,
            Kind::Raise => args.raise_reconnect,
        }
    }
}

/// Runs the harness role.
pub(crate) fn run(args: &HarnessArgs) -> ExitCode {
    if let Err(e) = ave::network::raise_fd_limit() {
        eprintln!("stress: cannot raise the descriptor limit: {e}");
    }
    let report = match Run::execute(args) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("stress: {message}");
            return ExitCode::from(2);
        }
    };
    print_report(args, &report);
    if let Some(path) = &args.report {
        if let Err(e) = write_report(path, &report) {
            eprintln!("stress: cannot write the report to {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.pass { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn write_report(path: &Path, report: &HarnessReport) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// One run: the processes and what they reported.
struct Run<'a> {
    args: &'a HarnessArgs,
    plan: Plan,
    started: Instant,
    deadline: Instant,
    server: Proc,
    server_pid: u32,
    clients: Vec<(Kind, Proc)>,
    outputs: Vec<Option<String>>,
    result: Option<ServerResult>,
    limit_seen: bool,
    server_eof: bool,
    deadline_exceeded: bool,
}

impl Run<'_> {
    fn execute(args: &HarnessArgs) -> Result<HarnessReport, String> {
        let plan = Plan::new(args);
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let started = Instant::now();
        let deadline = started + args.deadline;
        let (tx, rx) = mpsc::channel();

        let mut server_cmd = Command::new(&exe);
        server_cmd
            .arg("server")
            .args(["--limit", &args.limit.to_string()])
            .args(["--progress-every", &plan.progress_every.to_string()])
            .args(["--sockbuf", &args.sockbuf.to_string()])
            .args(["--linger", &args.linger.as_secs_f64().to_string()])
            .args(["--stall", &plan.stall.as_secs_f64().to_string()])
            .arg("--inject-fault")
            .arg(fault_name(args.inject_fault))
            .arg("--watch-stdin");
        let mut server =
            Proc::spawn(&mut server_cmd).map_err(|e| format!("cannot start the server: {e}"))?;
        let server_pid = server.child.id();
        let stdout = server.child.stdout.take().expect("the server's stdout is piped");
        let server_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let message = match serde_json::from_str(&line) {
                    Ok(event) => Message::Server(event),
                    Err(_) => Message::ServerText(line),
                };
                if server_tx.send(message).is_err() {
                    return;
                }
            }
            let _ = server_tx.send(Message::ServerEof);
        });

        // The server's readiness line: its port.
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Message::Server(ServerEvent::Listening { port, .. })) => break port,
                Ok(Message::ServerText(line)) => println!("stress: server: {line}"),
                Ok(Message::ServerEof) => {
                    let status = server.wait();
                    return Err(format!("the server ended before it listened ({status:?})"));
                }
                Ok(_) => {}
                Err(_) => {
                    server.kill();
                    return Err("the server did not start listening within the bound".to_owned());
                }
            }
        };
        println!(
            "stress: server (pid {server_pid}) on 127.0.0.1:{port}, limit {}, sockets of {} bytes{}",
            args.limit,
            args.sockbuf,
            match args.inject_fault {
                Fault::None => String::new(),
                fault => format!(", injected fault: {}", fault_name(fault)),
            }
        );

        let mut run = Run {
            args,
            plan,
            started,
            deadline,
            server,
            server_pid,
            clients: Vec::new(),
            outputs: Vec::new(),
            result: None,
            limit_seen: false,
            server_eof: false,
            deadline_exceeded: false,
        };
        if let Err(message) = run.start_clients(&exe, port, &tx) {
            run.kill_everything();
            return Err(message);
        }
        drop(tx);
        run.wait_for_everything(&rx);
        Ok(run.judge())
    }

    fn start_clients(
        &mut self,
        exe: &Path,
        port: u16,
        tx: &mpsc::Sender<Message>,
    ) -> Result<(), String> {
        let args = self.args;
        println!(
            "stress: starting {} clients: {} ping (reconnect {}), {} upper of {} bytes \
             (reconnect {}), {} raise (reconnect {}); timeout {:?}, seed {}",
            self.plan.total_clients,
            args.clients,
            args.ping_reconnect,
            args.clients,
            args.payload,
            args.upper_reconnect,
            args.clients,
            args.raise_reconnect,
            args.timeout,
            self.plan.seed
        );
        let spawning = Instant::now();
        for kind in Kind::ALL {
            for _ in 0..args.clients {
                let index = self.clients.len();
                let mut cmd = Command::new(exe);
                cmd.arg("client")
                    .arg(kind.name())
                    .args(["--port", &port.to_string()])
                    .args(["--reconnect", &Plan::reconnect(args, kind).to_string()])
                    .args(["--payload", &args.payload.to_string()])
                    .args(["--timeout", &args.timeout.as_secs_f64().to_string()])
                    .args(["--seed", &self.plan.seed.wrapping_add(index as u64).to_string()])
                    .arg("--watch-stdin");
                let mut proc = Proc::spawn(&mut cmd)
                    .map_err(|e| format!("cannot start client {index} ({}): {e}", kind.name()))?;
                let mut stdout = proc.child.stdout.take().expect("the client's stdout is piped");
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut output = String::new();
                    let _ = stdout.read_to_string(&mut output);
                    let _ = tx.send(Message::Client(index, output));
                });
                self.clients.push((kind, proc));
                self.outputs.push(None);
            }
        }
        println!(
            "stress: {} clients started in {:.2} s",
            self.clients.len(),
            spawning.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn finished(&self) -> usize {
        self.outputs.iter().filter(|o| o.is_some()).count()
    }

    fn wait_for_everything(&mut self, rx: &mpsc::Receiver<Message>) {
        let total = self.clients.len();
        let step = (total / 10).max(1);
        let mut server_stopped_by_us = false;
        loop {
            let finished = self.finished();
            if finished == total && self.server_eof {
                break;
            }
            if finished == total && !self.limit_seen && !server_stopped_by_us {
                println!(
                    "stress: [{:7.1} s] every client ended before the server reached its limit; \
                     stopping the server",
                    self.elapsed()
                );
                self.server.kill();
                server_stopped_by_us = true;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            let message = match rx.recv_timeout(left) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.deadline_exceeded = true;
                    println!(
                        "stress: [{:7.1} s] the overall bound of {:?} ran out: killing every process \
                         ({} of {total} clients finished, server {})",
                        self.elapsed(),
                        self.args.deadline,
                        self.finished(),
                        if self.server_eof { "ended" } else { "running" }
                    );
                    self.kill_everything();
                    // Every process is gone, so the reader threads end: take in what
                    // they still have.
                    while let Ok(message) = rx.recv() {
                        self.handle(message, step);
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            self.handle(message, step);
        }
    }

    /// Takes in one message from the reader threads.
    fn handle(&mut self, message: Message, step: usize) {
        let total = self.clients.len();
        match message {
            Message::Server(ServerEvent::Progress { served, fds, rss_kib }) => println!(
                "stress: [{:7.1} s] server served {served}/{} calls, {fds} fds, {} MiB resident; \
                 clients finished {}/{total}",
                self.elapsed(),
                self.args.limit - 1,
                rss_kib / 1024,
                self.finished()
            ),
            Message::Server(ServerEvent::Limit { .. }) => {
                self.limit_seen = true;
                println!(
                    "stress: [{:7.1} s] call {} arrived: the server shuts down with \
                     Exit('{LIMIT_MESSAGE}')",
                    self.elapsed(),
                    self.args.limit
                );
            }
            Message::Server(ServerEvent::Result(result)) => {
                println!(
                    "stress: [{:7.1} s] the server stopped ({}) after serving {} calls",
                    self.elapsed(),
                    result.stopped,
                    result.served
                );
                self.result = Some(result);
            }
            Message::Server(ServerEvent::Listening { .. }) => {}
            Message::ServerText(line) => println!("stress: server: {line}"),
            Message::ServerEof => {
                self.server_eof = true;
                self.server.wait();
            }
            Message::Client(index, output) => {
                let (kind, proc) = &mut self.clients[index];
                let kind = *kind;
                let status = proc.wait();
                self.outputs[index] = Some(output);
                let code = status.and_then(|s| s.code());
                if !matches!(code, Some(0 | 3)) {
                    let detail = self.outputs[index]
                        .as_deref()
                        .and_then(parse_client_report)
                        .map_or_else(|| "no report".to_owned(), |r| r.detail);
                    println!(
                        "stress: [{:7.1} s] client {index} ({}) failed with {}: {detail}",
                        self.elapsed(),
                        kind.name(),
                        describe_status(status)
                    );
                }
                let finished = self.finished();
                if finished % step == 0 || finished == total {
                    println!(
                        "stress: [{:7.1} s] clients finished {finished}/{total}",
                        self.elapsed()
                    );
                }
            }
        }
    }

    fn kill_everything(&mut self) {
        for (_, proc) in &mut self.clients {
            proc.kill();
        }
        self.server.kill();
    }

    fn judge(self) -> HarnessReport {
        let args = self.args;
        let plan = &self.plan;
        let duration_s = self.elapsed();
        let clients: Vec<ClientOutcome> = self
            .clients
            .iter()
            .zip(&self.outputs)
            .enumerate()
            .map(|(index, ((kind, proc), output))| ClientOutcome {
                index,
                kind: *kind,
                pid: proc.child.id(),
                exit_code: proc.status.and_then(|s| s.code()),
                signal: proc.status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
                report: output.as_deref().and_then(parse_client_report),
            })
            .collect();

        let mut totals: BTreeMap<String, KindTotals> = BTreeMap::new();
        for kind in Kind::ALL {
            totals.insert(kind.name().to_owned(), KindTotals::default());
        }
        for client in &clients {
            let t = totals.get_mut(client.kind.name()).expect("every kind has totals");
            t.clients += 1;
            match client.exit_code {
                Some(0) => t.exit_0 += 1,
                Some(3) => t.exit_3 += 1,
                _ => t.other += 1,
            }
            if let Some(r) = &client.report {
                t.calls += r.calls;
                t.answered += r.answered;
                t.reconnects += r.reconnects;
                t.slowest_call_us = t.slowest_call_us.max(r.slowest_call_us);
            }
        }

        let mut checks = Vec::new();
        let mut check = |name: &str, ok: bool, detail: String| {
            checks.push(Check { name: name.to_owned(), ok, detail });
        };

        check(
            "the run ended within the overall bound",
            !self.deadline_exceeded,
            format!("{duration_s:.1} s of at most {:?}", args.deadline),
        );

        let bad: Vec<&ClientOutcome> = clients
            .iter()
            .filter(|c| {
                !matches!(c.exit_code, Some(0 | 3))
                    || c.report.as_ref().map(|r| i32::from(r.end.code())) != c.exit_code
            })
            .collect();
        let exit_0 = clients.iter().filter(|c| c.exit_code == Some(0)).count();
        let exit_3 = clients.iter().filter(|c| c.exit_code == Some(3)).count();
        check(
            "every client ended on the server's Exit (0) or found it gone (3)",
            bad.is_empty() && !clients.is_empty(),
            if bad.is_empty() {
                format!("{exit_0} on the Exit, {exit_3} found it gone")
            } else {
                let first: Vec<String> = bad
                    .iter()
                    .take(5)
                    .map(|c| {
                        format!(
                            "client {} ({}) {}: {}",
                            c.index,
                            c.kind.name(),
                            describe_code(c.exit_code, c.signal),
                            c.report.as_ref().map_or("no report", |r| r.detail.as_str())
                        )
                    })
                    .collect();
                format!("{} of {} did not: {}", bad.len(), clients.len(), first.join("; "))
            },
        );

        let wrong_message: Vec<&ClientOutcome> = clients
            .iter()
            .filter(|c| c.report.as_ref().is_some_and(|r| r.end == End::Exit))
            .filter(|c| {
                c.report.as_ref().and_then(|r| r.exit_message.as_deref()) != Some(LIMIT_MESSAGE)
            })
            .collect();
        check(
            "at least one client received the Exit, and every Exit said why",
            exit_0 > 0 && wrong_message.is_empty(),
            format!(
                "{exit_0} clients received Exit('{LIMIT_MESSAGE}'){}",
                if wrong_message.is_empty() {
                    String::new()
                } else {
                    format!(", {} another message", wrong_message.len())
                }
            ),
        );

        let limit_at = self.result.as_ref().and_then(|r| r.limit_at_ns);
        let gone: Vec<&ClientReport> = clients
            .iter()
            .filter_map(|c| c.report.as_ref())
            .filter(|r| r.end == End::Gone)
            .collect();
        let early = gone.iter().filter(|r| limit_at.is_none_or(|at| r.at_ns < at)).count();
        check(
            "clients found the server gone only after its shutdown began",
            early == 0,
            if gone.is_empty() {
                "no client found it gone".to_owned()
            } else {
                format!("{} found it gone, {early} of them before the limit call", gone.len())
            },
        );

        let served = self.result.as_ref().map(|r| r.served);
        check(
            "the server served exactly limit-1 calls",
            served == Some(args.limit - 1),
            match &self.result {
                Some(r) => format!(
                    "{} served (limit {}), {} turned away after the limit",
                    r.served, args.limit, r.turned_away
                ),
                None => "the server reported no result".to_owned(),
            },
        );

        let answered: u64 = totals.values().map(|t| t.answered).sum();
        check(
            "every served call was answered to its client",
            served == Some(answered),
            format!(
                "clients got {answered} answers, the server served {}",
                served.map_or_else(|| "?".to_owned(), |s| s.to_string())
            ),
        );

        let slowest_us = totals.values().map(|t| t.slowest_call_us).max().unwrap_or(0);
        let calls: u64 = totals.values().map(|t| t.calls).sum();
        check(
            "no call stalled as long as the timeout",
            calls > 0 && Duration::from_micros(slowest_us) < args.timeout,
            format!(
                "the slowest of {calls} calls took {:.3} s (timeout {:?})",
                slowest_us as f64 / 1e6,
                args.timeout
            ),
        );

        let peak_fds = self.result.as_ref().map(|r| r.peak_fds);
        check(
            "the server's descriptors stayed bounded",
            peak_fds.is_some_and(|f| f <= plan.max_fds),
            match &self.result {
                Some(r) => format!(
                    "peak {} fds (bound {}), peak {} connections, {} connections in all",
                    r.peak_fds, plan.max_fds, r.peak_connections, r.connections
                ),
                None => "the server reported no result".to_owned(),
            },
        );

        let peak_rss_kib = self.result.as_ref().map(|r| r.peak_rss_kib);
        check(
            "the server's resident memory stayed bounded",
            peak_rss_kib.is_some_and(|k| k > 0 && k <= plan.max_rss_mib * 1024),
            format!(
                "peak {} MiB (bound {} MiB)",
                peak_rss_kib
                    .map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
                plan.max_rss_mib
            ),
        );

        let server_code = self.server.status.and_then(|s| s.code());
        let stopped = self.result.as_ref().map(|r| r.stopped.clone());
        check(
            "the server stopped on its shutdown and exited cleanly",
            server_code == Some(0)
                && stopped.as_deref().is_some_and(|s| s.starts_with("shutdown with Exit")),
            format!(
                "{}, {}",
                stopped.unwrap_or_else(|| "no result".to_owned()),
                describe_code(
                    server_code,
                    self.server
                        .status
                        .and_then(|s| { std::os::unix::process::ExitStatusExt::signal(&s) })
                )
            ),
        );

        let pass = checks.iter().all(|c| c.ok);
        HarnessReport {
            parameters: json!({
                "clients_per_kind": args.clients,
                "limit": args.limit,
                "payload": args.payload,
                "reconnect": {
                    "ping": args.ping_reconnect,
                    "upper": args.upper_reconnect,
                    "raise": args.raise_reconnect,
                },
                "timeout_s": args.timeout.as_secs_f64(),
                "deadline_s": args.deadline.as_secs_f64(),
                "seed": plan.seed,
                "sockbuf": args.sockbuf,
                "linger_s": args.linger.as_secs_f64(),
                "max_fds": plan.max_fds,
                "max_rss_mib": plan.max_rss_mib,
                "inject_fault": args.inject_fault,
            }),
            server_pid: Some(self.server_pid),
            server_exit_code: server_code,
            server: self.result.clone(),
            clients,
            totals,
            duration_s,
            deadline_exceeded: self.deadline_exceeded,
            checks,
            pass,
        }
    }
}

fn fault_name(fault: Fault) -> &'static str {
    match fault {
        Fault::None => "none",
        Fault::StripRecognize => "strip-recognize",
        Fault::Stall => "stall",
        Fault::NoLimit => "no-limit",
        Fault::LeakFds => "leak-fds",
        Fault::LeakMemory => "leak-memory",
    }
}

/// The report a client printed as its last line.
fn parse_client_report(output: &str) -> Option<ClientReport> {
    output.lines().rev().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str(l).ok())
}

fn describe_status(status: Option<ExitStatus>) -> String {
    describe_code(
        status.and_then(|s| s.code()),
        status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)),
    )
}

fn describe_code(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "no exit status".to_owned(),
    }
}

fn print_report(args: &HarnessArgs, report: &HarnessReport) {
    println!();
    println!("stress: report");
    println!(
        "  {:<6} {:>7} {:>10} {:>10} {:>10} {:>7} {:>7} {:>7} {:>9}",
        "kind",
        "clients",
        "calls",
        "answered",
        "reconnects",
        "exit 0",
        "exit 3",
        "other",
        "slowest"
    );
    let mut all = KindTotals::default();
    let mut rows: Vec<(&str, &KindTotals)> =
        Kind::ALL.iter().filter_map(|k| Some((k.name(), report.totals.get(k.name())?))).collect();
    for (_, t) in &rows {
        all.clients += t.clients;
        all.calls += t.calls;
        all.answered += t.answered;
        all.reconnects += t.reconnects;
        all.exit_0 += t.exit_0;
        all.exit_3 += t.exit_3;
        all.other += t.other;
        all.slowest_call_us = all.slowest_call_us.max(t.slowest_call_us);
    }
    rows.push(("total", &all));
    for (name, t) in rows {
        println!(
            "  {:<6} {:>7} {:>10} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7.3} s",
            name,
            t.clients,
            t.calls,
            t.answered,
            t.reconnects,
            t.exit_0,
            t.exit_3,
            t.other,
            t.slowest_call_us as f64 / 1e6
        );
    }
    let rate = match &report.server {
        Some(r) if report.duration_s > 0.0 => r.served as f64 / report.duration_s,
        _ => 0.0,
    };
    println!(
        "  duration {:.1} s, {rate:.0} calls/s served; limit {}, payload {} bytes, seed {}",
        report.duration_s, args.limit, args.payload, report.parameters["seed"]
    );
    if let Some(r) = &report.server {
        println!(
            "  server: peak {} fds, peak {:.1} MiB resident, peak {} connections ({} in all)",
            r.peak_fds,
            r.peak_rss_kib as f64 / 1024.0,
            r.peak_connections,
            r.connections
        );
    }
    println!("checks:");
    for c in &report.checks {
        println!("  {} {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
    }
    println!("verdict: {}", if report.pass { "PASS" } else { "FAIL" });
}
