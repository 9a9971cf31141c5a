//! `ave demo`: the whole run through the real binary, its report, and its cleanup, after a
//! normal run and after SIGINT or SIGTERM in the middle.
//!
//! Each run gets its own `TMPDIR`, so "no temporary home left" means that directory is
//! empty afterwards. Every wait is bounded; a run that overstays is killed and fails.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;

use crate::serve::TempDir;

/// The bound on a whole run (the demo takes about a second).
const BOUND: Duration = Duration::from_secs(60);

/// A running `ave demo` whose stdout lines arrive on a channel.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
    tmp: TempDir,
    deadline: Instant,
}

/// How a run ended.
struct Ended {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
    tmp: TempDir,
}

impl Demo {
    fn start(tag: &str, args: &[&str], hold: Option<&str>) -> Demo {
        Demo::start_with(tag, args, hold, &[])
    }

    fn start_with(tag: &str, args: &[&str], hold: Option<&str>, env: &[(&str, &str)]) -> Demo {
        let tmp = TempDir::new(tag);
        let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
        command
            .arg("demo")
            .args(args)
            .env("TMPDIR", tmp.path())
            .env_remove("AVE_DEMO_TEST_HOLD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(hold) = hold {
            command.env("AVE_DEMO_TEST_HOLD", hold);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("start ave demo");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Demo { child, lines, stdout: Vec::new(), stderr, tmp, deadline: Instant::now() + BOUND }
    }

    /// Waits for the first stdout line that starts with `prefix`.
    fn line(&mut self, prefix: &str) -> String {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "no line {prefix:?} ({e:?}); stdout so far:\n{}",
                        self.stdout.join("\n")
                    );
                }
            }
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).expect("signal ave demo");
    }

    /// Reads stdout to its end, then reaps the demo.
    fn finish(mut self) -> Ended {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.stdout.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("ave demo ran over {BOUND:?}; stdout:\n{}", self.stdout.join("\n"));
                }
            }
        }
        let status = self.child.wait().expect("reap ave demo");
        let stderr = self.stderr.join().unwrap();
        Ended { status, stdout: self.stdout, stderr, tmp: self.tmp }
    }
}

impl Ended {
    fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout.join("\n"), self.stderr)
    }

    /// Every pid the progress lines name (`pid N`).
    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for line in &self.stdout {
            for (at, _) in line.match_indices("pid ") {
                let digits: String =
                    line[at + 4..].chars().take_while(char::is_ascii_digit).collect();
                if let Ok(pid) = digits.parse() {
                    pids.push(pid);
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Nothing of the run is left: no process it named, no temporary home.
    fn assert_clean(&self, pids: &[u32]) {
        for pid in pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "pid {pid} of the demo survived it\n{}",
                self.text()
            );
        }
        let left: Vec<_> = std::fs::read_dir(self.tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "the demo left {left:?} in its TMPDIR\n{}", self.text());
    }
}

/// A report line: `  N  name  status  <duration>  what happened`.
fn report_line<'a>(stdout: &'a [String], number: usize, name: &str) -> &'a str {
    let prefix = format!("  {number}  {name} ");
    stdout.iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| {
        panic!("no report line for step {number} {name}:\n{}", stdout.join("\n"))
    })
}

/// Whether `text` holds a measured duration (`123 µs`, `4.5 ms`, `1.23 s`).
fn has_duration(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).any(|w| {
        ["µs", "ms", "s"].contains(&w[1].trim_end_matches(',')) && w[0].parse::<f64>().is_ok()
    })
}

#[test]
fn demo_runs_every_step_and_leaves_nothing_behind() {
    let ended = Demo::start("demo-text", &[], None).finish();
    assert!(ended.status.success(), "ave demo failed\n{}", ended.text());
    let steps = ["bootstrap", "start", "call", "pty", "replace", "stop"];
    for (i, name) in steps.iter().enumerate() {
        let n = i + 1;
        assert!(
            ended
                .stdout
                .iter()
                .any(|l| l.starts_with(&format!("[{n}/6] ")) && !l.contains(" ok in")),
            "step {n} did not announce itself\n{}",
            ended.text()
        );
        let done = format!("[{n}/6] ok in ");
        let end = ended.stdout.iter().find(|l| l.starts_with(&done));
        assert!(end.is_some_and(|l| has_duration(l)), "step {n} did not end ok\n{}", ended.text());
        let line = report_line(&ended.stdout, n, name);
        assert!(line.contains(" ok "), "{line}");
        assert!(has_duration(line), "no duration in {line:?}");
        assert!(line.chars().any(|c| c.is_ascii_digit()), "{line}");
    }
    let total = ended.stdout.iter().find(|l| l.trim_start().starts_with("total")).expect("a total");
    assert!(total.contains(" ok ") && has_duration(total), "{total}");
    let replace = report_line(&ended.stdout, 5, "replace");
    assert!(replace.contains(" 0 failed"), "{replace}");
    // The server, the two pty commands and the new instance, at least.
    let pids = ended.pids();
    assert!(pids.len() >= 4, "the demo named {pids:?}\n{}", ended.text());
    ended.assert_clean(&pids);
}

#[test]
fn demo_json_report_is_measured_and_true() {
    let ended = Demo::start("demo-json", &["--json"], None).finish();
    assert!(ended.status.success(), "ave demo --json failed\n{}", ended.text());
    // Progress goes to stderr: stdout is the report alone.
    assert_eq!(ended.stdout.len(), 1, "{}", ended.text());
    let report: Value = serde_json::from_str(&ended.stdout[0]).expect("one JSON object");
    assert_eq!(report["ok"], true);
    assert_eq!(report["home_removed"], true);
    assert!(report["total_ms"].as_f64().unwrap() > 500.0, "the 0.5 s timeout is in the total");
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bootstrap", "start", "call", "pty", "replace", "stop"]);
    for step in steps {
        assert_eq!(step["status"], "ok", "{step}");
        assert!(step["ms"].as_f64().unwrap() > 0.0, "{step}");
    }
    let data = |n: usize| &steps[n - 1]["data"];
    assert_eq!(data(1)["authkeys_mode"], "0600");
    assert_eq!(data(1)["home_mode"], "0700");
    assert_eq!(data(1)["files"].as_array().unwrap().len(), 8);
    assert_eq!(data(3)["exception"]["type"], "Offline");
    assert_eq!(data(3)["exception"]["trace_frames"], 3);
    assert_eq!(data(3)["pongs"], 1);
    let pty = data(4);
    assert_eq!(pty["timeout_exception"], "Timeout");
    assert_eq!(pty["session_left"], 0);
    let timed_out = pty["timed_out_after_ms"].as_f64().unwrap();
    assert!(timed_out >= 500.0, "ended before its timeout: {timed_out} ms");
    let replace = data(5);
    assert_eq!(replace["failed_calls"], 0);
    assert_eq!(replace["connections_moved"], 1);
    assert_eq!(replace["same_connection"], true);
    assert!(replace["calls_during_replace"].as_u64().unwrap() > 0, "{replace}");
    assert_eq!(replace["pid_before"], replace["old_pid"]);
    assert_eq!(replace["pid_after"], replace["new_pid"]);
    assert_ne!(replace["old_pid"], replace["new_pid"]);
    assert_eq!(replace["old_exit"], "exited 0");
    assert!(replace["handover_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(data(6)["home_removed"], true);

    let pids: Vec<u32> = report["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| u32::try_from(p["pid"].as_u64().unwrap()).unwrap())
        .collect();
    let roles: Vec<&str> =
        report["pids"].as_array().unwrap().iter().map(|p| p["role"].as_str().unwrap()).collect();
    for role in ["server", "new instance", "pty command", "timed-out pty command"] {
        assert!(roles.contains(&role), "no {role} in {roles:?}");
    }
    assert!(pids.contains(&u32::try_from(replace["new_pid"].as_u64().unwrap()).unwrap()));
    ended.assert_clean(&pids);
}

#[test]
fn sigint_in_the_middle_of_the_replace_cleans_up() {
    let mut demo = Demo::start("demo-sigint", &[], Some("replace"));
    let home = demo.line("      home ");
    let home =
        home.trim_start().trim_start_matches("home ").split(" (mode").next().unwrap().to_owned();
    demo.line("[hold] in step 5");
    // Something to clean up: the home, the server and the new instance.
    assert!(Path::new(&home).is_dir(), "{home}");
    let started = demo.stdout.iter().find(|l| l.contains("ave serve --replace")).unwrap().clone();
    let new: u32 = started.rsplit("pid ").next().unwrap().parse().unwrap();
    assert!(Path::new(&format!("/proc/{new}")).exists(), "the new instance is not running");
    demo.signal(Signal::SIGINT);
    let ended = demo.finish();
    assert_eq!(ended.status.code(), Some(130), "{}", ended.text());
    assert!(
        ended.stdout.iter().any(|l| l.starts_with("[5/6] interrupted by SIGINT after")),
        "{}",
        ended.text()
    );
    let line = report_line(&ended.stdout, 5, "replace");
    assert!(line.contains("INTERRUPTED"), "{line}");
    let line = report_line(&ended.stdout, 6, "stop");
    assert!(line.contains("skipped"), "{line}");
    assert!(ended.stdout.iter().any(|l| l.contains("INTERRUPTED by SIGINT")));
    assert!(!Path::new(&home).exists(), "{home} was not removed");
    let pids = ended.pids();
    assert!(pids.contains(&new));
    ended.assert_clean(&pids);
}

#[test]
fn sigterm_between_steps_cleans_up() {
    let mut demo = Demo::start("demo-sigterm", &["--keep"], Some("3"));
    let server = demo.line("      pid ");
    let server: u32 = server.trim_start()[4..].split(' ').next().unwrap().parse().unwrap();
    demo.line("[hold] before step 3");
    assert!(Path::new(&format!("/proc/{server}")).exists(), "the server is not running");
    demo.signal(Signal::SIGTERM);
    let ended = demo.finish();
    assert_eq!(ended.status.code(), Some(143), "{}", ended.text());
    assert!(ended.stdout.iter().any(|l| l.contains(&format!("ended the server (pid {server})"))));
    for (n, name) in [(3, "call"), (4, "pty"), (5, "replace"), (6, "stop")] {
        assert!(report_line(&ended.stdout, n, name).contains("skipped"));
    }
    // `--keep` keeps the home even then, and says where it is.
    let kept: Vec<_> =
        std::fs::read_dir(ended.tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].join(".ave/config/authkeys.json").is_file());
    let shown = format!("the temporary home is kept: {}", kept[0].display());
    assert!(ended.stdout.iter().any(|l| l.contains(&shown)), "{}", ended.text());
    std::fs::remove_dir_all(&kept[0]).unwrap();
    ended.assert_clean(&ended.pids());
}

#[test]
fn a_failed_step_says_so_and_still_cleans_up() {
    // The new instance inherits this and crashes mid-handover (`ave serve`'s test hook):
    // the old one takes everything back and serves on, and the replace step fails.
    let ended =
        Demo::start_with("demo-fail", &[], None, &[("AVE_TEST_HANDOVER_ABORT", "1")]).finish();
    assert_eq!(ended.status.code(), Some(1), "{}", ended.text());
    assert!(ended.stdout.iter().any(|l| l.starts_with("[5/6] FAILED after")), "{}", ended.text());
    let line = report_line(&ended.stdout, 5, "replace");
    assert!(line.contains("FAILED") && line.contains("SIGABRT"), "{line}");
    assert!(report_line(&ended.stdout, 4, "pty").contains(" ok "));
    assert!(report_line(&ended.stdout, 6, "stop").contains("skipped"));
    let total = ended.stdout.iter().find(|l| l.trim_start().starts_with("total")).expect("a total");
    assert!(total.contains("FAILED"), "{total}");
    ended.assert_clean(&ended.pids());
}

#[test]
fn a_home_that_cannot_be_made_fails_the_first_step() {
    let tmp = TempDir::new("demo-notmp");
    let out = Command::new(env!("CARGO_BIN_EXE_ave"))
        .args(["demo", "--json"])
        .env("TMPDIR", tmp.path().join("missing"))
        .env_remove("AVE_DEMO_TEST_HOLD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["ok"], false);
    assert_eq!(report["steps"][0]["status"], "failed");
    assert!(report["steps"][0]["error"].as_str().unwrap().contains("missing"), "{report}");
    for step in &report["steps"].as_array().unwrap()[1..] {
        assert_eq!(step["status"], "skipped", "{step}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("[1/6] FAILED"));
}
