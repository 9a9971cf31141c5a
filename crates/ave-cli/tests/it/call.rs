//! `ave call`: one RPC, its result as a line of JSON, and the exit codes of design.md.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{ave, serve::Served};

fn call(args: &[&str]) -> (i32, String, String) {
    crate::ave_call(&[], args)
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
    // run_external needs --allow-run and a key (`hardening` has the refusals).
    let runs = Served::start(&["--allow-run", "--authkey", "k"]);
    let r = runs.address();
    assert_eq!(
        result(&["--authkey", "k", &r, "run_external", "echo hi"]),
        json!([0, "hi\r\n", ""])
    );
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
    assert!(stderr.contains("no answer within 300 ms (--timeout)"), "{stderr}");
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

#[test]
fn options_are_options_anywhere_before_the_double_dash() {
    let served = Served::start(&["--authkey", "s3cret"]);
    let a = served.address();
    assert_eq!(result(&[&a, "upper", "hello", "--authkey", "s3cret"]), json!("HELLO"));
    assert_eq!(result(&[&a, "whoami", "--authkey", "s3cret"]), json!("s3cret"));
    assert_eq!(
        result(&["-s", "--authkey", "s3cret", &a, "sync_ping", "--", "--authkey"]),
        json!("--authkey")
    );
    assert_eq!(result(&["--authkey", "s3cret", &a, "sync_ping", "-1.5"]), json!(-1.5));
    let unkeyed = Served::start(&[]);
    let started = Instant::now();
    let (code, _, stderr) = call(&[&unkeyed.address(), "sleep", "3", "--timeout", "300ms"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        stderr,
        format!("ave call: error: {}: no answer within 300 ms (--timeout)\n", unkeyed.address())
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn unknown_options_are_usage_errors_with_a_suggestion() {
    for args in
        [&["--timout", "1", "127.0.0.1:1", "m"][..], &["127.0.0.1:1", "m", "x", "--timout", "1"]]
    {
        let (code, stdout, stderr) = call(args);
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}");
        assert!(
            stderr.starts_with("ave call: error: unexpected argument '--timout' found"),
            "{stderr}"
        );
        assert!(stderr.contains("a similar argument exists: '--timeout'"), "{stderr}");
    }
}

#[test]
fn text_that_starts_like_json_must_be_json() {
    let served = Served::start(&[]);
    let a = served.address();
    let (code, stdout, stderr) = call(&[&a, "sync_ping", "3 apples"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "ave call: error: ARG 1 starts like JSON but is not: trailing characters at line 1 \
         column 3\n    3 apples\n      ^\n    (send it as a string with --string, or write it \
         as a JSON string)\n"
    );
    let (code, _, stderr) = call(&["--kw", "alt=[1, 2", &a, "sync_ping"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("ave call: error: --kw alt starts like JSON but is not: "),
        "{stderr}"
    );
    assert!(stderr.contains("    [1, 2\n        ^\n"), "{stderr}");
    assert_eq!(result(&["--string", &a, "sync_ping", "3 apples"]), json!("3 apples"));
    assert_eq!(result(&["-s", &a, "sync_ping", "42"]), json!("42"));
    assert_eq!(result(&["-s", "--kw", "alt=[1", &a, "sync_ping"]), json!("[1"));
    assert_eq!(result(&[&a, "sync_ping", "nullable"]), json!("nullable"));
}

#[test]
fn the_connect_timeout_is_named() {
    // A listener that never answers: the kernel completes the connection, nobody sends the
    // challenge.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let (code, _, stderr) = call(&["--connect-timeout", "200ms", &address, "sync_ping"]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "ave call: error: {address}: could not connect within 200 ms (--connect-timeout)\n"
        )
    );
    let (code, _, stderr) = call(&["--timeout", "1x", &address, "sync_ping"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("ave call: error: invalid value '1x' for '--timeout <DUR>'"),
        "{stderr}"
    );
}

#[test]
fn host_names_and_ports() {
    let served = Served::start(&["--bind", "localhost"]);
    assert_eq!(result(&[&format!("localhost:{}", served.port), "sync_ping"]), json!("pong"));
    let (code, _, call_err) = call(&["localhost:70000", "sync_ping"]);
    assert_eq!(code, 2);
    let serve = ave(&["serve", "--port", "70000"]);
    assert_eq!(serve.status.code(), Some(2));
    let serve_err = String::from_utf8_lossy(&serve.stderr);
    for stderr in [call_err.as_str(), &serve_err] {
        assert!(stderr.contains(": port 70000 is out of range (0-65535)\n"), "{stderr}");
    }
    assert!(call_err.starts_with("ave call: error: invalid value 'localhost:70000'"), "{call_err}");
    assert!(serve_err.starts_with("ave serve: error: invalid value '70000'"), "{serve_err}");
}

/// A server that completes the handshake (no key), reads one request and answers it with
/// `reply`; its thread ends with the connection.
fn one_reply_server(reply: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let frame = |stream: &mut std::net::TcpStream, payload: &[u8]| {
            let header = u32::try_from(payload.len()).unwrap().to_be_bytes();
            stream.write_all(&header).unwrap();
            stream.write_all(payload).unwrap();
        };
        let read_frame = |stream: &mut std::net::TcpStream| {
            let mut header = [0u8; 4];
            stream.read_exact(&mut header).unwrap();
            let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
            stream.read_exact(&mut payload).unwrap();
        };
        frame(&mut stream, b"#CHALLENGE#01234567890123456789");
        read_frame(&mut stream);
        frame(&mut stream, br#"{"authenticated": false}"#);
        read_frame(&mut stream);
        frame(&mut stream, &reply);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    (address, thread)
}

#[test]
fn a_malformed_reply_is_shown_in_a_few_hundred_bytes() {
    let mut garbage = b"not json ".to_vec();
    garbage.resize(1 << 20, b'\x01');
    let mut big_but_wrong = br#"{"neither": ""#.to_vec();
    big_but_wrong.resize(1 << 20, b'x');
    big_but_wrong.extend_from_slice(br#""}"#);
    for reply in [garbage, big_but_wrong] {
        let (address, server) = one_reply_server(reply);
        let (code, stdout, stderr) = call(&[&address, "sync_ping"]);
        server.join().unwrap();
        assert_eq!((code, stdout.as_str()), (3, ""), "{}", &stderr[..stderr.len().min(500)]);
        assert!(stderr.len() < 600, "{} bytes: {}", stderr.len(), &stderr[..600]);
        assert!(stderr.trim_end().ends_with(" bytes in all)"), "{stderr}");
    }
}
