//! The original's stress scenario (spec/ave-tests.md, "stress t1"), scaled down: the
//! `stress` program's harness with 3 clients of each kind and a limit of a few thousand
//! calls must pass its verdict, and injected faults (a reply without `recognize`, a call
//! stalled past the timeout, a server that never stops) must make it fail. The full-size
//! run is `cargo xtask stress`.

use std::{
    collections::BTreeSet,
    process::{Command, Output},
};

use ave_test_support::TempDir;
use serde_json::Value;

/// Runs the harness with `args` and returns its output and its JSON report.
fn harness(name: &str, args: &[&str]) -> (Output, Value) {
    let dir = TempDir::new(&format!("e2e-stress-{name}"));
    let path = dir.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_stress"))
        .args(args)
        .arg("--report")
        .arg(&path)
        .output()
        .expect("run the stress harness");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&text).expect("the report is JSON"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The check of the verdict with this name.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check named {name:?} in {report:#}"))
}

fn clients(report: &Value) -> &Vec<Value> {
    report["clients"].as_array().expect("clients")
}

#[test]
fn the_scaled_down_scenario_passes() {
    let (output, report) = harness(
        "pass",
        &["--clients", "3", "--limit", "3000", "--payload", "20000", "--deadline", "120"],
    );
    let text = stdout(&output);
    assert!(output.status.success(), "the verdict failed:\n{text}");
    assert_eq!(report["pass"], true);
    assert!(text.contains("verdict: PASS"), "{text}");
    // Progress was shown as it went: the server's, then the clients finishing.
    assert!(text.contains("server served"), "{text}");
    assert!(text.contains("clients finished 9/9"), "{text}");

    // The numbers behind the verdict, checked here independently of the harness.
    let server = &report["server"];
    assert_eq!(server["served"], 2999);
    assert!(server["stopped"].as_str().unwrap().starts_with("shutdown with Exit"));
    assert_eq!(report["server_exit_code"], 0);
    let clients = clients(&report);
    assert_eq!(clients.len(), 9);
    let kinds: BTreeSet<&str> = clients.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["ping", "raise", "upper"]));
    let mut answered = 0;
    let mut on_exit = 0;
    for client in clients {
        let code = client["exit_code"].as_i64().expect("every client exited");
        assert!(code == 0 || code == 3, "client ended with {code}: {client:#}");
        let r = &client["report"];
        assert_eq!(r["end"], if code == 0 { "exit" } else { "gone" });
        if code == 0 {
            on_exit += 1;
            assert_eq!(r["exit_message"], "max transactions limit reached");
        }
        assert!(r["slowest_call_us"].as_u64().unwrap() < 10_000_000);
        answered += r["answered"].as_u64().unwrap();
    }
    assert!(on_exit >= 1);
    assert_eq!(answered, 2999, "every served call reached its client");
    let reconnects: u64 = report["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t["reconnects"].as_u64().unwrap())
        .sum();
    assert!(reconnects > 0, "clients reconnected: {report:#}");
    assert!(
        server["peak_fds"].as_u64().unwrap() <= report["parameters"]["max_fds"].as_u64().unwrap()
    );
    assert!(check(&report, "the server served exactly limit-1 calls")["ok"].as_bool().unwrap());
}

#[test]
fn a_reply_without_recognize_fails_the_verdict() {
    let (output, report) =
        harness("recognize", &small_run("strip-recognize", &["--deadline", "120"]));
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(report["pass"], false);
    let stripped: Vec<&Value> = clients(&report).iter().filter(|c| c["exit_code"] == 2).collect();
    assert_eq!(stripped.len(), 1, "one raise client saw the reply without recognize");
    assert_eq!(stripped[0]["kind"], "raise");
    assert_eq!(stripped[0]["report"]["end"], "missing_recognize");
    let every_client =
        check(&report, "every client ended on the server's Exit (0) or found it gone (3)");
    assert_eq!(every_client["ok"], false);
    assert!(every_client["detail"].as_str().unwrap().contains("exit status 2"));
    // The others ran on to the limit.
    assert_eq!(report["server"]["served"], 599);
}

/// The arguments of a small run (2 clients per kind, a limit of 600, 1,000-byte payloads)
/// with one injected fault and any other arguments.
fn small_run<'a>(fault: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--clients", "2", "--limit", "600", "--payload", "1000"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--inject-fault", fault]);
    args
}

#[test]
fn a_call_stalled_past_the_timeout_fails_the_verdict() {
    let (output, report) =
        harness("stall", &small_run("stall", &["--timeout", "2", "--deadline", "120"]));
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(report["pass"], false);
    let timed_out: Vec<&Value> = clients(&report).iter().filter(|c| c["exit_code"] == 1).collect();
    assert_eq!(timed_out.len(), 1, "{report:#}");
    let detail = timed_out[0]["report"]["detail"].as_str().unwrap();
    assert!(detail.contains("timed out"), "{detail}");
    assert_eq!(check(&report, "no call stalled as long as the timeout")["ok"], false);
}

#[test]
fn a_descriptor_leak_fails_the_verdict() {
    let (output, report) = harness("leak-fds", &small_run("leak-fds", &["--deadline", "120"]));
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    // One descriptor per served call, far beyond two per client plus 32.
    assert!(report["server"]["peak_fds"].as_u64().unwrap() > 599, "{report:#}");
    assert_eq!(check(&report, "the server's descriptors stayed bounded")["ok"], false);
    // Everything else held.
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["the server's descriptors stayed bounded"]);
}

#[test]
fn a_memory_leak_fails_the_verdict() {
    let (output, report) = harness(
        "leak-memory",
        &small_run("leak-memory", &["--deadline", "120", "--max-rss-mib", "40"]),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    // 100 KiB kept per served call: about 60 MiB over a bound of 40.
    assert!(report["server"]["peak_rss_kib"].as_u64().unwrap() > 40 << 10, "{report:#}");
    assert_eq!(check(&report, "the server's resident memory stayed bounded")["ok"], false);
}

#[test]
fn the_overall_bound_kills_every_process() {
    let (output, report) = harness(
        "bound",
        &["--clients", "1", "--payload", "1000", "--deadline", "3", "--inject-fault", "no-limit"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(report["deadline_exceeded"], true);
    assert_eq!(check(&report, "the run ended within the overall bound")["ok"], false);
    assert!(stdout(&output).contains("ran out: killing every process"));
    // Every process was killed (SIGKILL) and reaped by the harness.
    let mut pids = vec![report["server_pid"].as_u64().unwrap()];
    for client in clients(&report) {
        assert_eq!(client["signal"], 9, "{client:#}");
        pids.push(client["pid"].as_u64().unwrap());
    }
    assert!(report["server_exit_code"].is_null());
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("--watch-stdin"),
            "process {pid} of the run is still there"
        );
    }
}

#[test]
fn a_client_that_finds_no_server_exits_3() {
    // A port that was free a moment ago, with nothing listening on it now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_stress"))
        .args(["client", "ping", "--port", &port.to_string(), "--timeout", "5"])
        .output()
        .expect("run a stress client");
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!(report["end"], "gone");
    assert_eq!(report["calls"], 1);
    assert_eq!(report["answered"], 0);
}
