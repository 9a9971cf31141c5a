//! `ave call`: one RPC, its result as a line of JSON, and the exit codes of design.md.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{ave, serve::Served};

fn call(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let out = ave(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn result(args: &[&str]) -> Value {
    let (code, stdout, stderr) = call(args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn arguments_are_json_or_strings() {
    let served = Served::start(&[]);
    let a = served.address();
    assert_eq!(result(&[&a, "upper", "hello world"]), json!("HELLO WORLD"));
    assert_eq!(result(&[&a, "sync_ping", "[1, {\"x\": null}]"]), json!([1, {"x": null}]));
    assert_eq!(result(&[&a, "sync_ping", "42"]), json!(42));
    assert_eq!(result(&[&a, "sync_ping", "\"42\""]), json!("42"));
    assert_eq!(result(&["--kw", "alt=åäö", &a, "sync_ping"]), json!("åäö"));
    assert_eq!(result(&["--kw", "alt={\"k\": [true]}", &a, "sync_ping"]), json!({"k": [true]}));
    assert!(result(&["--resource", "{\"type\": \"handset\"}", &a, "get_pid"]).as_u64().is_some());
    assert_eq!(result(&[&a, "run_external", "echo hi"]), json!([0, "hi\r\n", ""]));
}

#[test]
fn remote_exceptions_exit_1() {
    let served = Served::start(&[]);
    let (code, stdout, stderr) =
        call(&[&served.address(), "raise_ave_exception", "{\"message\": \"cow\", \"extra\": 1}"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    let exception: Value = serde_json::from_str(&stderr).unwrap();
    assert_eq!(exception["message"], "cow");
    assert_eq!(exception["extra"], 1);
    assert_eq!(exception["type"], "AveException");
    assert_eq!(exception["trace"][0][2], "raise_ave_exception");
    let (code, _, stderr) = call(&[&served.address(), "no_such"]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&stderr).unwrap(),
        json!({"message": "no such RPC: no_such", "type": "Exception"})
    );
}

#[test]
fn one_way_calls_return_at_once() {
    let served = Served::start(&[]);
    let started = Instant::now();
    assert_eq!(result(&["--async", &served.address(), "sleep", "3"]), Value::Null);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn connection_failures_exit_3() {
    let served = Served::start(&[]);
    let (code, _, stderr) = call(&["--timeout", "0.3", &served.address(), "sleep", "2"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = bound.local_addr().unwrap().port();
    drop(bound);
    let (code, _, stderr) = call(&[&format!("127.0.0.1:{port}"), "sync_ping"]);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["nohost", "m"][..],
        &["--kw", "novalue", "127.0.0.1:1", "m"],
        &["--resource", "[1]", "127.0.0.1:1", "m"],
        &["--resource", "{bad", "127.0.0.1:1", "m"],
        &["--timeout", "-2", "127.0.0.1:1", "m"],
        &["127.0.0.1:1"],
    ] {
        let (code, _, stderr) = call(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
}
