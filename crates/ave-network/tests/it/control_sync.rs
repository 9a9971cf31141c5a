//! The original's `control_sync` tests (raw protocol probes against the server) and the
//! framing and handshake acceptance scenarios (spec/ave-tests.md, A and B).

use std::time::Duration;

use ave_network::{
    Address,
    connection::BlockingConnection,
    control::Stopped,
    diagnostic::Event,
    wire::{
        handshake::{Algorithm, CHALLENGE_PREFIX, digest},
        json,
    },
};
use serde_json::{Value, json};

use crate::{Probe, T, diagnostic};

#[test]
fn a1_challenge_format() {
    let (server, _events) = diagnostic(|b| b.authkey(Some("password")));
    let mut a = Probe::connect(server.port);
    let mut b = Probe::connect(server.port);
    let raw = a.conn.read(4, T).unwrap();
    assert_eq!(raw, [0, 0, 0, 31]);
    let challenge = a.conn.read(31, T).unwrap();
    assert!(challenge.starts_with(CHALLENGE_PREFIX));
    assert_ne!(challenge, b.recv());
}

#[test]
fn a2_right_and_wrong_keys() {
    let (server, events) = diagnostic(|b| b.authkey(Some("password")));
    let mut right = Probe::connect(server.port);
    assert_eq!(right.handshake(Some("password")), br#"{"authenticated": true}"#);
    events.wait(
        Duration::from_secs(1),
        "new_connection",
        |e| matches!(e, Event::NewConnection(info) if info.identity.as_deref() == Some("password")),
    );
    assert_eq!(right.call("whoami", json!([]), json!({})), json!({"result": "password"}));

    let mut wrong = Probe::connect(server.port);
    assert_eq!(wrong.handshake(Some("wrong")), br#"{"authenticated": false}"#);
    assert_eq!(wrong.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
    assert_eq!(wrong.call("whoami", json!([]), json!({})), json!({"result": null}));
}

#[test]
fn b9_sync_and_one_way_calls() {
    let (server, events) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(server.port, None);
    assert_eq!(
        probe.request(r#"{"method": "sync_ping", "params": {"vargs": [], "kwargs": {}}}"#),
        json!({"result": "pong"})
    );
    assert_eq!(probe.call("sync_ping", json!([]), json!({"alt": "zz"})), json!({"result": "zz"}));
    probe.call_one_way("async_ping", json!([]));
    events.wait(Duration::from_secs(1), "pong", |e| *e == Event::Pong);
    assert!(probe.silent_for(Duration::from_millis(500)));
    assert_eq!(probe.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
}

#[test]
fn b14_exit_is_answered_then_the_server_is_gone() {
    let (mut server, events) = diagnostic(|b| b.authkey(Some("password")));
    let mut probe = Probe::authenticated(server.port, Some("password"));
    probe.send(br#"{"params": {"vargs": [], "kwargs": {}}, "resource": null, "method": "raise_exit", "async": false}"#);
    assert_eq!(probe.recv(), br#"{"exception": {"message": "passed to client", "type": "Exit"}}"#);
    assert!(probe.closed_within(Duration::from_secs(2)));
    let stopped = server.join();
    assert!(
        matches!(&stopped, Stopped::Exit(e) if e.message() == "passed to client"),
        "{stopped:?}"
    );
    events.wait(Duration::from_secs(1), "shutdown", |e| matches!(e, Event::Shutdown(_)));
    let address = server.address();
    for timeout in [None, Some(Duration::from_secs(1))] {
        let err = BlockingConnection::connect(&address, timeout, false).unwrap_err();
        assert!(err.is_refused(), "{err}");
    }
}

#[test]
fn b14_exit_keeps_non_ascii_text() {
    let (_server, _events) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(_server.port, None);
    let reply = probe.call("raise_exit", json!(["åäö"]), json!({}));
    assert_eq!(reply, json!({"exception": {"message": "åäö", "type": "Exit"}}));
}

/// Sends a frame in four pieces (header bytes 0-1, 2-3, 5 payload bytes, the rest), with
/// a call from another client served between the pieces.
fn send_in_pieces(conn: &mut BlockingConnection, payload: &[u8], other: &mut Probe) {
    let mut framed = Vec::new();
    ave_network::wire::frame::encode(payload, &mut framed).unwrap();
    let pieces = [&framed[..2], &framed[2..4], &framed[4..9], &framed[9..]];
    for piece in pieces {
        conn.write(piece, T).unwrap();
        assert_eq!(other.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
    }
}

#[test]
fn a5_fragmented_frames() {
    let (server, _events) = diagnostic(|b| b.authkey(Some("password")));
    let mut other = Probe::authenticated(server.port, None);
    let mut probe = Probe::connect(server.port);
    let challenge = probe.recv();
    let answer = digest(Algorithm::Md5, b"password", &challenge[CHALLENGE_PREFIX.len()..]);
    send_in_pieces(&mut probe.conn, &answer, &mut other);
    assert_eq!(probe.recv(), br#"{"authenticated": true}"#);
    let request = br#"{"params": {"vargs": [], "kwargs": {}}, "resource": null, "method": "sync_ping", "async": false}"#;
    send_in_pieces(&mut probe.conn, request, &mut other);
    assert_eq!(probe.recv(), br#"{"result": "pong"}"#);
}

#[test]
fn a7_large_replies_are_written_across_many_writes() {
    let (server, _events) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(server.port, None);
    let chunk = 8192;
    let alt = ".".repeat(chunk * 300);
    probe.send(
        json!({"method": "sync_ping", "params": {"vargs": [alt], "kwargs": {}}})
            .to_string()
            .as_bytes(),
    );
    let header = probe.conn.read(4, T).unwrap();
    let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
    let mut body = Vec::new();
    while body.len() < len {
        let n = (len - body.len()).min(chunk);
        body.extend(probe.conn.read(n, T).unwrap());
    }
    assert_eq!(json::parse(&body).unwrap(), json!({"result": alt}));
}

#[test]
fn b15_awkward_results_are_valid_ascii_json() {
    let (server, _events) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(server.port, None);
    let garbage: String =
        (0u32..=0x2ff).chain([0xfffd, 0x1d11e]).filter_map(char::from_u32).collect();
    probe.send(
        json!({"method": "sync_ping", "params": {"vargs": [garbage], "kwargs": {}}})
            .to_string()
            .as_bytes(),
    );
    let raw = probe.recv();
    assert!(raw.is_ascii(), "the reply is ASCII only");
    assert!(String::from_utf8_lossy(&raw).contains(r"\u0001"));
    assert_eq!(json::parse(&raw).unwrap(), json!({"result": garbage}));
}

#[test]
fn b10_validation_errors_keep_the_connection() {
    let (server, _events) = diagnostic(|b| b);
    let mut p = Probe::authenticated(server.port, None);
    let cases: [(&str, Value); 8] = [
        (
            r#"{"method": "bla_bla_bla", "params": {"vargs": [], "kwargs": {}}}"#,
            json!("no such RPC: bla_bla_bla"),
        ),
        (r#"{"method": "åäö", "params": {"vargs": [], "kwargs": {}}}"#, json!("no such RPC: åäö")),
        ("not json", json!("malformed JSON: not json")),
        (r#"{"params": {}}"#, json!("the \"method\" attribute is missing")),
        (r#"{"method": "sync_ping"}"#, json!("the \"params\" attribute is missing")),
        (r#"{"method": "sync_ping", "params": {}}"#, json!("malformed arguments: {}")),
        (r#"{"method": "stop_listening", "params": {}, "async": 1}"#, Value::Null),
        (r#"{"method": "upper", "params": {"vargs": ["a", "b"], "kwargs": {}}}"#, Value::Null),
    ];
    for (payload, expected) in cases {
        let reply = p.request(payload);
        match expected {
            Value::Null if payload.contains("\"async\": 1") => {
                let text = reply["exception"].as_str().unwrap();
                assert!(
                    text.starts_with("RPC async flag is not a boolean: {u'async': 1"),
                    "{text}"
                );
            }
            Value::Null => {
                assert_eq!(reply["exception"]["type"], "TypeError", "{reply}");
                assert_eq!(reply["exception"]["trace"], json!([]));
                assert_eq!(
                    reply["exception"]["message"],
                    "upper() takes 1 positional argument but 2 were given"
                );
            }
            text => assert_eq!(reply, json!({"exception": text}), "{payload}"),
        }
    }
    assert_eq!(p.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
}

#[test]
fn b16_run_external() {
    let (server, _events) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(server.port, None);
    assert_eq!(
        probe.call("run_external", json!(["echo hello"]), json!({})),
        json!({"result": [0, "hello\r\n", ""]})
    );
    probe.call_one_way("run_external", json!(["sleep 1"]));
    assert!(probe.silent_for(Duration::from_millis(300)));
    // The connection is ordered: the next call is answered after the one-way one ends.
    assert_eq!(probe.call("get_pid", json!([]), json!({})), json!({"result": std::process::id()}));
}

#[test]
fn sha256_is_offered_when_configured() {
    use ave_network::wire::handshake::{DigestPolicy, SHA256_MARKER, respond};
    for (policy, md5_ok) in [(DigestPolicy::Any, true), (DigestPolicy::Sha256, false)] {
        let (server, _events) = diagnostic(|b| b.authkey(Some("k")).digest(policy));
        let mut new = Probe::connect(server.port);
        let challenge = new.recv();
        assert!(challenge.ends_with(SHA256_MARKER));
        let answer = respond(&challenge, Some("k")).unwrap();
        assert_eq!(answer.len(), 32);
        new.send(&answer);
        assert_eq!(new.recv(), br#"{"authenticated": true}"#);
        let mut old = Probe::connect(server.port);
        let verdict = old.handshake(Some("k"));
        let expected: &[u8] =
            if md5_ok { br#"{"authenticated": true}"# } else { br#"{"authenticated": false}"# };
        assert_eq!(verdict, expected, "{policy}");
    }
}

#[test]
fn lost_connection_on_end_of_stream() {
    let (server, events) = diagnostic(|b| b);
    let probe = Probe::authenticated(server.port, None);
    let port = probe.conn.stream().local_addr().unwrap().port();
    drop(probe);
    let lost = events
        .wait(Duration::from_secs(2), "lost_connection", |e| matches!(e, Event::LostConnection(_)));
    let Event::LostConnection(info) = lost else { unreachable!() };
    assert_eq!(info.address, Address::new("127.0.0.1", port));
}
