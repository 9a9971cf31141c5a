//! The moving parts of the demo's live replace: a client that keeps calling on one
//! connection and records when each answer came, and the new instance (`ave serve
//! --replace`) run on a pty, whose lines are passed on as they come.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ave::{
    cmd::{Background, ExitStatus, Options},
    network::RemoteControl,
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

/// At most this many answers are recorded; the loop stops there (the demo needs a few
/// thousand at most).
const MAX_CALLS: usize = 1_000_000;

/// A client calling `sync_ping` in a loop on its one connection. It stops at the first
/// failure: a failed call drops the connection, and the next call would make a new one.
pub(super) struct PingLoop {
    stop: watch::Sender<bool>,
    answered: watch::Receiver<usize>,
    task: JoinHandle<(RemoteControl, Pings)>,
}

/// What the loop saw.
pub(super) struct Pings {
    /// When the loop started.
    pub(super) started: Instant,
    /// When each answer arrived, in order.
    pub(super) answers: Vec<Instant>,
    /// The first failed call, which ended the loop.
    pub(super) failure: Option<String>,
}

impl PingLoop {
    /// Starts calling.
    pub(super) fn start(client: RemoteControl) -> PingLoop {
        let (stop, stop_rx) = watch::channel(false);
        let (answered_tx, answered) = watch::channel(0);
        let task = tokio::spawn(async move {
            let mut pings = Pings { started: Instant::now(), answers: Vec::new(), failure: None };
            while !*stop_rx.borrow() && pings.answers.len() < MAX_CALLS {
                match client.call("sync_ping", ()).await {
                    Ok(answer) if answer == "pong" => {
                        pings.answers.push(Instant::now());
                        answered_tx.send_replace(pings.answers.len());
                    }
                    Ok(other) => {
                        pings.failure = Some(format!("sync_ping answered {other}"));
                        break;
                    }
                    Err(e) => {
                        pings.failure = Some(format!("sync_ping failed: {e}"));
                        break;
                    }
                }
            }
            (client, pings)
        });
        PingLoop { stop, answered, task }
    }

    /// How many calls have been answered so far.
    pub(super) fn answered(&self) -> usize {
        *self.answered.borrow()
    }

    /// Waits until `count` calls have been answered, at most `within`.
    ///
    /// # Errors
    ///
    /// If the loop ended first (a call failed) or the time ran out.
    pub(super) async fn wait_for(&mut self, count: usize, within: Duration) -> anyhow::Result<()> {
        let reached = tokio::time::timeout(within, self.answered.wait_for(|n| *n >= count))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => bail!("the calling client stopped after {} answers", self.answered()),
            Err(_) => bail!(
                "{} answers in {:?}, {count} expected: the calls stalled",
                self.answered(),
                within
            ),
        }
    }

    /// Stops the loop after the call in progress and returns the client and the record.
    ///
    /// # Errors
    ///
    /// If the loop's task failed.
    pub(super) async fn finish(self) -> anyhow::Result<(RemoteControl, Pings)> {
        self.stop.send_replace(true);
        self.task.await.context("the calling client's task failed")
    }
}

impl Pings {
    /// How many answers arrived between `from` and `to`.
    pub(super) fn between(&self, from: Instant, to: Instant) -> usize {
        self.answers.iter().filter(|t| **t >= from && **t <= to).count()
    }

    /// The longest wait for an answer: between two answers, or from the start to the
    /// first.
    pub(super) fn longest_gap(&self) -> Duration {
        let mut last = self.started;
        let mut longest = Duration::ZERO;
        for &t in &self.answers {
            longest = longest.max(t.saturating_duration_since(last));
            last = t;
        }
        longest
    }
}

/// A program run on a pty in the background (the new instance), its output passed on line
/// by line. Ended explicitly with [`Supervised::kill`]; dropping it kills the program's
/// session too (`ave::cmd::Background`).
pub(super) struct Supervised {
    /// The program's pid (also its session id).
    pub(super) pid: u32,
    /// Its exit status once it has ended and been reaped.
    pub(super) status: Option<ExitStatus>,
    /// Every line it wrote so far that was read with [`Supervised::line`].
    pub(super) log: Vec<String>,
    lines: mpsc::UnboundedReceiver<String>,
    kill: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<ExitStatus, ave::cmd::Error>>,
}

impl Supervised {
    /// Starts `argv` on a new pty.
    ///
    /// # Errors
    ///
    /// If it cannot be started.
    pub(super) fn start(argv: Vec<String>) -> anyhow::Result<Supervised> {
        let background = ave::cmd::run_bg(argv, &Options::new())?;
        let pid = background.pid().as_u32();
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let (kill, kill_rx) = oneshot::channel();
        let task = tokio::spawn(supervise(background, lines_tx, kill_rx));
        Ok(Supervised { pid, status: None, log: Vec::new(), lines, kill: Some(kill), task })
    }

    /// The first line from now on that contains `needle`, within `within`.
    ///
    /// # Errors
    ///
    /// If the program ends or the time runs out first.
    pub(super) async fn line(&mut self, needle: &str, within: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Ok(None) => bail!("it ended without saying {needle:?}; it said: {:?}", self.log),
                Err(_) => {
                    bail!("it did not say {needle:?} within {within:?}; it said: {:?}", self.log)
                }
            }
        }
    }

    /// Every line it wrote so far, the ones not read with [`Supervised::line`] included.
    pub(super) fn said(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.clone()
    }

    /// Waits for the program to end by itself, at most `within`, and reaps it.
    ///
    /// # Errors
    ///
    /// If it is still running after `within`, or waiting failed.
    pub(super) async fn wait(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let ended = tokio::time::timeout(within, &mut self.task)
            .await
            .with_context(|| format!("pid {} still runs after {within:?}", self.pid))?;
        let status = ended.context("the supervising task failed")??;
        self.status = Some(status);
        Ok(status)
    }

    /// Ends the program's whole session (SIGTERM, then SIGKILL after a grace) and reaps it.
    ///
    /// # Errors
    ///
    /// If that fails.
    pub(super) async fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.wait(Duration::from_secs(30)).await
    }
}

/// Owns the program: passes its lines on, and ends it when told to (or when the demo drops
/// the sender).
async fn supervise(
    mut program: Background,
    lines: mpsc::UnboundedSender<String>,
    mut kill: oneshot::Receiver<()>,
) -> Result<ExitStatus, ave::cmd::Error> {
    let mut buf = vec![0u8; 4096];
    let mut partial = Vec::new();
    // Until the end of its output (it has closed its terminal, normally by exiting).
    loop {
        tokio::select! {
            _ = &mut kill => return program.kill_async().await,
            read = program.read_async(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    partial.extend_from_slice(&buf[..n]);
                    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=end).collect();
                        let _ = lines.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                    }
                }
            },
        }
    }
    tokio::select! {
        _ = &mut kill => program.kill_async().await,
        status = program.wait_async() => status,
    }
}
