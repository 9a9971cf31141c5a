//! Hardening at the library level (the binary's side is in ave-cli's `hardening` tests):
//! the bounds of [`ave_network::control::Limits`], each test named after the finding it covers.

use std::time::Duration;

use serde_json::json;

use crate::{Probe, diagnostic};

#[test]
fn f2_replies_never_exceed_the_frame_limit() {
    let (server, _) = diagnostic(|b| b.max_frame(64 * 1024));
    let mut probe = Probe::authenticated(server.port, None);
    // 12 KB of text upper-cases to 3 characters each, 18 bytes each once escaped: 108 KB.
    let reply = probe.call("upper", json!(["\u{390}".repeat(6000)]), json!({}));
    let message = reply["exception"]["message"].as_str().unwrap_or_else(|| panic!("{reply}"));
    assert!(message.starts_with("the reply of "), "{message}");
    assert!(message.ends_with("is above the frame limit of 65536"), "{message}");
    // Small replies go on.
    assert_eq!(
        probe.call("upper", json!(["\u{390}"]), json!({})),
        json!({"result": "\u{399}\u{308}\u{301}"})
    );
}

#[test]
fn f1_method_limits_are_settings() {
    let (server, _) =
        diagnostic(|b| b.max_depth(3).max_sleep(Duration::from_millis(10)).max_text(8));
    let mut probe = Probe::authenticated(server.port, None);
    let deep = probe.call("raise_ave_exception", json!([{"message": "m"}, 4]), json!({}));
    assert_eq!(deep["exception"]["type"], "ValueError", "{deep}");
    assert_eq!(deep["exception"]["message"], "depth 4 is above the limit of 3");
    let ok = probe.call("raise_ave_exception", json!([{"message": "m"}, 3]), json!({}));
    assert_eq!(ok["exception"]["trace"].as_array().map(Vec::len), Some(4), "{ok}");
    let long = probe.call("sleep", json!([0.5]), json!({}));
    assert_eq!(long["exception"]["type"], "ValueError", "{long}");
    assert_eq!(probe.call("sleep", json!([0.001]), json!({})), json!({"result": null}));
    let text = probe.call("upper", json!(["123456789"]), json!({}));
    assert_eq!(text["exception"]["message"], "message of 9 bytes is above the limit of 8");
    assert_eq!(probe.call("upper", json!(["abc"]), json!({})), json!({"result": "ABC"}));
    assert_eq!(server.handle.limits().max_depth, 3);
}

#[test]
fn f4_at_the_connection_cap_the_longest_idle_anonymous_connection_makes_room() {
    let (server, _) = diagnostic(|b| b.authkey(Some("k")).max_connections(3));
    let mut keyed = Probe::authenticated(server.port, Some("k"));
    let mut first = Probe::authenticated(server.port, Some("wrong"));
    let mut second = Probe::authenticated(server.port, Some("wrong"));
    // `first` is the older, but `second` has been idle the longer once `first` calls.
    assert_eq!(first.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
    // At the cap, a key holder is still served: `second` made room.
    let mut newcomer = Probe::authenticated(server.port, Some("k"));
    assert_eq!(newcomer.call("whoami", json!([]), json!({})), json!({"result": "k"}));
    let err = second.conn.get(crate::T).unwrap_err();
    assert!(err.is_closed(), "{err}");
    // Everyone else is still served: an identity protects a connection, activity an
    // anonymous one.
    assert_eq!(first.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
    assert_eq!(keyed.call("whoami", json!([]), json!({})), json!({"result": "k"}));
    assert_eq!(server.handle.connections().len(), 3);
}

#[test]
fn f4_at_the_cap_with_only_identities_a_newcomer_waits_for_room() {
    let (server, _) = diagnostic(|b| b.authkey(Some("k")).max_connections(1));
    let mut keyed = Probe::authenticated(server.port, Some("k"));
    // The newcomer's connect completes in the kernel; its challenge waits for room.
    let mut newcomer = Probe::connect(server.port);
    assert_eq!(keyed.call("whoami", json!([]), json!({})), json!({"result": "k"}));
    assert_eq!(server.handle.connections().len(), 1);
    drop(keyed);
    newcomer.handshake(Some("k"));
    assert_eq!(newcomer.call("whoami", json!([]), json!({})), json!({"result": "k"}));
}
