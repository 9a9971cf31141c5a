//! `ave::cmd` through the facade: its errors on the wire are the original's, checked
//! against the recorded transcript of a real Control calling `ave.cmd.run`.

use std::time::Duration;

use ave::{
    cmd::{Options, run},
    exceptions::{AveException, Kind},
};
use serde_json::{Map, Value};

/// The exception a recorded row of the control transcript answered with, without its
/// trace (which says where in the server it was raised).
fn recorded_exception(method: &str) -> Map<String, Value> {
    let text = std::fs::read_to_string(tests::vector_path("control-transcript.json")).unwrap();
    let rows: Value = serde_json::from_str(&text).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| {
            let request: Value = serde_json::from_str(row["request"].as_str().unwrap()).unwrap();
            request["method"] == method
        })
        .unwrap_or_else(|| panic!("no recorded call of {method}"));
    let response: Value = serde_json::from_str(row["response"].as_str().unwrap()).unwrap();
    let mut exception = response["exception"].as_object().unwrap().clone();
    exception.remove("trace");
    exception
}

#[test]
fn a_timeout_on_the_wire_is_the_originals() {
    // The original server ran `ave.cmd.run('sleep 10', timeout=1)`.
    let recorded = recorded_exception("raise_timeout");
    let error = run("sleep 10", &Options::new().timeout(Duration::from_millis(200))).unwrap_err();
    let wire = AveException::from(error).to_wire();
    assert_eq!(wire.as_object().unwrap(), &recorded);
    let back = AveException::from_wire(&wire);
    assert_eq!(back.kind(), Kind::Timeout);
    assert_eq!(back.message(), "command timed out");
}

#[test]
fn an_exec_failure_on_the_wire_is_a_run_error() {
    let error = run("no_such_exe", &Options::new()).unwrap_err();
    let wire = AveException::from(error).to_wire();
    let details = wire.as_object().unwrap();
    let mut keys: Vec<&str> = details.keys().map(String::as_str).collect();
    keys.sort_unstable();
    // The original's RunError details (handshake-and-exceptions.json).
    assert_eq!(keys, ["cmd", "message", "out", "ptyout", "type"]);
    assert_eq!(details["type"], "RunError");
    assert_eq!(details["cmd"], serde_json::json!(["no_such_exe"]));
    assert!(details["message"].as_str().unwrap().contains("No such file or directory"));
    let back = AveException::from_wire(&wire);
    assert_eq!(back.kind(), Kind::RunError);
}
