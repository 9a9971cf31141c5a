//! The recorded vectors of the original (tests/data/vectors): handshake digests byte for
//! byte, the original client's request payloads, and every row of the control transcript
//! replayed against our server.

use std::time::Duration;

use ave_network::{
    connection::BlockingConnection,
    control::Params,
    wire::{
        handshake::{self, Algorithm, DigestPolicy, Keys, SALT_LEN},
        json,
    },
};
use serde_json::{Value, json};

use crate::{Probe, Server, T, diagnostic_service};

fn vectors(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/vectors")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn handshake_digests_are_byte_exact() {
    let v = vectors("handshake-and-exceptions.json");
    assert_eq!(v["handshake"]["challenge_prefix"], "#CHALLENGE#");
    let cases = v["handshake"]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let salt: [u8; SALT_LEN] = hex(case["salt_hex"].as_str().unwrap()).try_into().unwrap();
        let key = case["key"].as_str().unwrap();
        let expected = hex(case["digest_hex"].as_str().unwrap());
        assert_eq!(handshake::digest(Algorithm::Md5, key.as_bytes(), &salt), expected, "{case}");
        let challenge = handshake::challenge_with_salt(&salt, DigestPolicy::Md5);
        assert_eq!(handshake::respond(&challenge, Some(key)).unwrap(), expected);
        let keys = Keys::new(Some("other")).with_account("x", Some(key));
        assert_eq!(keys.verify(&challenge, &expected, DigestPolicy::Md5).as_deref(), Some(key));
    }
}

#[test]
fn the_original_clients_requests_are_served() {
    let v = vectors("handshake-and-exceptions.json");
    let (options, _events) = diagnostic_service();
    let server = Server::start(ave_network::diagnostic::service(options), |b| b);
    let mut probe = Probe::authenticated(server.port, None);
    for case in v["requests"].as_array().unwrap() {
        let payload = case["frame_payload"].as_str().unwrap();
        let call = &case["call"];
        // Our client writes the same request.
        let mut ours = ave_network::client::Call::new(call["method"].as_str().unwrap())
            .args(call["vargs"].as_array().unwrap().iter().cloned());
        for (k, value) in call["kwargs"].as_object().unwrap() {
            if k == "__async__" {
                ours = ours.one_way(value.as_bool().unwrap());
            } else {
                ours = ours.kwarg(k.clone(), value.clone());
            }
        }
        assert_eq!(ours.request(&call["resource"]), json::parse(payload.as_bytes()).unwrap());
        // Our server answers it byte for byte as sent.
        probe.send(payload.as_bytes());
        if call["kwargs"]["__async__"] == true {
            assert!(probe.silent_for(Duration::from_millis(200)));
            continue;
        }
        let reply = json::parse(&probe.recv()).unwrap();
        assert!(reply.get("result").is_some(), "{payload} -> {reply}");
    }
}

/// The transcript's server: primary key `password`, account `admin` = `adminkey`, and the
/// extra methods its script had.
fn transcript_server() -> Server {
    let (options, _events) = diagnostic_service();
    let service = ave_network::diagnostic::builder(options)
        .rpc("get_tuple", Params::none(), |_, ()| async { Ok((1, "two", (3.5, (), true))) })
        .hidden("not_rpc")
        .build();
    Server::start(service, |b| b.authkey(Some("password")).account("admin", Some("adminkey")))
}

/// Compares our reply with the recorded one, by the contract of README.md: results,
/// exception types, extra fields and fixed texts; not Python's reprs, Python's TypeError
/// wording, or trace file names and lines.
fn assert_matches(ours: &Value, recorded: &Value, note: &str) {
    if let Some(result) = recorded.get("result") {
        assert_eq!(ours.get("result"), Some(result), "{note}");
        return;
    }
    let recorded = &recorded["exception"];
    let ours = &ours["exception"];
    if let Some(text) = recorded.as_str() {
        let ours = ours.as_str().unwrap_or_else(|| panic!("{note}: {ours}"));
        for prefix in ["not an RPC: ", "RPC async flag is not a boolean: ", "malformed arguments: "]
        {
            if let Some(rest) = text.strip_prefix(prefix) {
                let our_rest =
                    ours.strip_prefix(prefix).unwrap_or_else(|| panic!("{note}: {ours}"));
                // The same Python 2 repr, keys possibly in another order.
                let mut a: Vec<char> = rest.chars().collect();
                let mut b: Vec<char> = our_rest.chars().collect();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "{note}: {ours}");
                return;
            }
        }
        assert_eq!(ours, text, "{note}");
        return;
    }
    assert_eq!(ours["type"], recorded["type"], "{note}");
    if recorded["type"] != "TypeError" {
        assert_eq!(ours["message"], recorded["message"], "{note}");
    }
    for (key, value) in recorded.as_object().unwrap() {
        if !matches!(key.as_str(), "trace" | "message" | "type") {
            assert_eq!(ours.get(key), Some(value), "{note}: field {key}");
        }
    }
    match recorded.get("trace") {
        None => assert!(ours.get("trace").is_none(), "{note}: no trace expected"),
        Some(Value::Array(frames)) if frames.is_empty() => {
            assert_eq!(ours["trace"], json!([]), "{note}")
        }
        Some(Value::Array(frames)) => {
            let our_frames = ours["trace"].as_array().unwrap_or_else(|| panic!("{note}: {ours}"));
            assert!(
                our_frames.iter().all(|f| f.as_array().is_some_and(|f| f.len() == 4)),
                "{note}"
            );
            assert_eq!(our_frames[0][2], frames[0][2], "{note}: the method is the first frame");
        }
        Some(other) => panic!("{note}: odd recorded trace {other}"),
    }
}

#[test]
fn the_control_transcript_replays() {
    let rows = vectors("control-transcript.json");
    let mut server = transcript_server();
    let address = server.address();
    let mut exited = false;
    for row in rows.as_array().unwrap() {
        let note = row["note"].as_str().unwrap();
        if row.get("authkey").is_none() {
            // "connect after Exit"
            assert!(exited, "{note}");
            let err = BlockingConnection::connect(&address, T, false).unwrap_err();
            assert!(err.is_refused(), "{note}: {err}");
            assert!(row["response"].as_str().unwrap().starts_with("refused"));
            continue;
        }
        let key = row["authkey"].as_str().unwrap();
        let mut probe = Probe::connect(server.port);
        let verdict = probe.handshake(if key.is_empty() { None } else { Some(key) });
        assert_eq!(verdict, row["auth_verdict"].as_str().unwrap().as_bytes(), "{note}");
        match (&row["request"], &row["response"]) {
            (Value::Array(requests), response) => {
                for request in requests {
                    probe.send(request.as_str().unwrap().as_bytes());
                }
                let reply = json::parse(&probe.recv()).unwrap();
                assert_matches(
                    &reply,
                    &json::parse(response.as_str().unwrap().as_bytes()).unwrap(),
                    note,
                );
                assert!(probe.silent_for(Duration::from_millis(100)), "{note}: one reply only");
            }
            (Value::String(request), Value::Array(responses)) if request == "header 0x80000000" => {
                probe.conn.write(&0x8000_0000u32.to_be_bytes(), T).unwrap();
                let reply = probe.recv();
                assert_eq!(
                    reply,
                    responses[0].as_str().unwrap().as_bytes(),
                    "{note}: byte for byte"
                );
                assert_eq!(responses[1], "<EOFError>");
                assert!(probe.closed_within(Duration::from_secs(2)), "{note}");
            }
            (Value::String(request), Value::String(response)) => {
                probe.send(request.as_bytes());
                let reply = json::parse(&probe.recv()).unwrap();
                assert_matches(&reply, &json::parse(response.as_bytes()).unwrap(), note);
                if note.starts_with("Exit") {
                    assert!(probe.closed_within(Duration::from_secs(2)), "{note}");
                    assert!(matches!(server.join(), ave_network::control::Stopped::Exit(_)));
                    exited = true;
                }
            }
            other => panic!("unexpected row shape {other:?}"),
        }
    }
    assert!(exited);
}
