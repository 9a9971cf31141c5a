//! What `ave demo` prints: progress as it goes, and the report at the end (text, or one
//! JSON object with `--json`). Every number in it is a measurement of this run.

use std::{
    fmt,
    io::{self, Write},
    path::PathBuf,
    time::Duration,
};

use serde_json::{Value, json};

/// The steps, in order: a short name (the report's and the JSON's) and what it does.
pub(super) const STEPS: [(&str, &str); 6] = [
    ("bootstrap", "bootstrap the config on a temporary home"),
    ("start", "start the diagnostic service as a synchronized child process"),
    ("call", "call it from a client: a ping, an authenticated call, an error, a one-way call"),
    ("pty", "run commands on a pty, one of them with a timeout"),
    ("replace", "replace the service live while a client keeps calling"),
    ("stop", "stop the service and remove the temporary home"),
];

/// Where progress goes: stdout, or stderr when stdout carries the JSON report. Write
/// errors (a closed pipe) are ignored, so that the demo still cleans up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Out {
    pub(super) json: bool,
}

impl Out {
    /// One line of progress.
    pub(super) fn line(self, text: impl fmt::Display) {
        if self.json {
            let _ = writeln!(io::stderr(), "{text}");
        } else {
            let _ = writeln!(io::stdout(), "{text}");
        }
    }

    /// A detail of the step under way, indented under its line.
    pub(super) fn detail(self, text: impl fmt::Display) {
        self.line(format_args!("      {text}"));
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    Failed(String),
    Interrupted(String),
}

/// A step that started.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) number: usize,
    pub(super) status: Status,
    pub(super) duration: Duration,
    /// What happened, in one line.
    pub(super) summary: String,
    /// The step's measurements.
    pub(super) data: Value,
}

/// Everything the report says.
pub(super) struct Report<'a> {
    pub(super) steps: &'a [Step],
    pub(super) total: Duration,
    pub(super) interrupted: Option<&'a str>,
    pub(super) home: Option<&'a PathBuf>,
    pub(super) home_kept: bool,
    pub(super) home_removed: bool,
    pub(super) pids: &'a [(&'static str, u32)],
    pub(super) cleanup: &'a [String],
}

impl Report<'_> {
    /// Whether every step ran and succeeded.
    pub(super) fn ok(&self) -> bool {
        self.interrupted.is_none()
            && self.steps.len() == STEPS.len()
            && self.steps.iter().all(|s| s.status == Status::Ok)
    }

    /// The report as text: one line per step, then the total.
    pub(super) fn text(&self) -> String {
        let mut text = String::from("\nreport\n");
        for (i, (name, _)) in STEPS.iter().enumerate() {
            let line = match self.steps.iter().find(|s| s.number == i + 1) {
                Some(step) => {
                    let (status, what) = match &step.status {
                        Status::Ok => ("ok", step.summary.clone()),
                        Status::Failed(error) => ("FAILED", error.clone()),
                        Status::Interrupted(signal) => ("INTERRUPTED", format!("by {signal}")),
                    };
                    format!(
                        "  {}  {name:<9}  {status:<11}  {:>9}  {what}",
                        i + 1,
                        duration(step.duration)
                    )
                }
                None => format!("  {}  {name:<9}  {:<11}  {:>9}  -", i + 1, "skipped", "-"),
            };
            text.push_str(&line);
            text.push('\n');
        }
        for note in self.cleanup {
            text.push_str(&format!("     cleanup: {note}\n"));
        }
        let verdict = match (self.ok(), self.interrupted) {
            (true, _) => "ok".to_owned(),
            (false, Some(signal)) => format!("INTERRUPTED by {signal}"),
            (false, None) => "FAILED".to_owned(),
        };
        text.push_str(&format!("     {:<9}  {verdict:<11}  {:>9}", "total", duration(self.total)));
        if self.home_kept {
            if let Some(home) = self.home {
                text.push_str(&format!("\n     the temporary home is kept: {}", home.display()));
            }
        }
        text
    }

    /// The report as one JSON object.
    pub(super) fn json(&self) -> Value {
        let steps: Vec<Value> = STEPS
            .iter()
            .enumerate()
            .map(|(i, (name, title))| {
                let Some(step) = self.steps.iter().find(|s| s.number == i + 1) else {
                    return json!({ "step": i + 1, "name": name, "title": title, "status": "skipped" });
                };
                let (status, error) = match &step.status {
                    Status::Ok => ("ok", Value::Null),
                    Status::Failed(error) => ("failed", Value::from(error.as_str())),
                    Status::Interrupted(signal) => ("interrupted", Value::from(signal.as_str())),
                };
                json!({
                    "step": i + 1,
                    "name": name,
                    "title": title,
                    "status": status,
                    "error": error,
                    "ms": millis(step.duration),
                    "summary": step.summary,
                    "data": step.data,
                })
            })
            .collect();
        let pids: Vec<Value> =
            self.pids.iter().map(|(role, pid)| json!({ "role": role, "pid": pid })).collect();
        json!({
            "ok": self.ok(),
            "interrupted": self.interrupted,
            "total_ms": millis(self.total),
            "home": self.home,
            "home_kept": self.home_kept,
            "home_removed": self.home_removed,
            "steps": steps,
            "pids": pids,
            "cleanup": self.cleanup,
        })
    }
}

/// Milliseconds, for the JSON report.
pub(super) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A duration for people: microseconds below a millisecond, milliseconds below a second.
pub(super) fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1e-3 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}
