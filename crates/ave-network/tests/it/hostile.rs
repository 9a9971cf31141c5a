//! Hostile input: oversized and zero-length headers, truncated frames, garbage, odd method
//! names, and a thousand clients that never answer the challenge.

use std::{
    io::Read,
    net::TcpStream,
    time::{Duration, Instant},
};

use ave_network::{RemoteControl, diagnostic::Event};
use serde_json::json;

use crate::{Probe, T, diagnostic, enough_descriptors};

fn invalid_rpc(mut probe: Probe) -> serde_json::Value {
    let reply = ave_network::wire::json::parse(&probe.recv()).unwrap();
    assert!(probe.closed_within(Duration::from_secs(2)), "disconnected after an invalid RPC");
    reply
}

#[test]
fn oversized_headers_get_the_invalid_rpc_answer() {
    let (server, events) = diagnostic(|b| b.max_frame(1024));
    let mut probe = Probe::authenticated(server.port, None);
    probe.conn.write(&2000u32.to_be_bytes(), T).unwrap();
    probe.conn.write(&[b'x'; 100], T).unwrap();
    assert_eq!(
        invalid_rpc(probe),
        json!({"exception": {"type": "OverflowError", "message": "got invalid RPC from client, frame of 2000 bytes exceeds the limit of 1024 bytes. disconnect"}})
    );
    events
        .wait(Duration::from_secs(2), "lost_connection", |e| matches!(e, Event::LostConnection(_)));

    let original = json!({"exception": {"message": "got invalid RPC from client, signed integer is greater than maximum. disconnect", "type": "OverflowError"}});
    let mut established = Probe::authenticated(server.port, None);
    established.conn.write(&0x8000_0000u32.to_be_bytes(), T).unwrap();
    established
        .conn
        .write(br#"{"method": "sync_ping", "params": {"vargs": [], "kwargs": {}}}"#, T)
        .unwrap();
    assert_eq!(invalid_rpc(established), original);

    let mut authenticating = Probe::connect(server.port);
    authenticating.recv();
    authenticating.conn.write(&0xffff_ffffu32.to_be_bytes(), T).unwrap();
    assert_eq!(invalid_rpc(authenticating), original);

    let mut other = Probe::authenticated(server.port, None);
    assert_eq!(other.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
}

#[test]
fn zero_length_frames() {
    let (server, _) = diagnostic(|b| b.authkey(Some("")));
    let mut probe = Probe::connect(server.port);
    probe.recv();
    probe.send(b"");
    assert_eq!(probe.recv(), br#"{"authenticated": false}"#);
    assert_eq!(probe.call("whoami", json!([]), json!({})), json!({"result": null}));
    probe.send(b"");
    assert_eq!(probe.recv(), br#"{"exception": "malformed JSON: "}"#);
    assert_eq!(probe.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
}

#[test]
fn truncated_frames_and_garbage() {
    let (server, events) = diagnostic(|b| b);
    let mut truncated = Probe::authenticated(server.port, None);
    truncated.conn.write(&100u32.to_be_bytes(), T).unwrap();
    truncated.conn.write(b"{\"method\"", T).unwrap();
    drop(truncated);
    events
        .wait(Duration::from_secs(2), "lost_connection", |e| matches!(e, Event::LostConnection(_)));

    let mut probe = Probe::authenticated(server.port, None);
    // Deterministic pseudo-random garbage (xorshift).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..50 {
        let len = (next() % 300) as usize + 1;
        let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        payload[0] = b'#';
        probe.send(&payload);
        let reply = ave_network::wire::json::parse(&probe.recv()).unwrap();
        assert!(reply["exception"].as_str().unwrap().starts_with("malformed JSON: "), "{reply}");
    }
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let reply = probe.request(&nested);
    assert!(reply["exception"].as_str().unwrap().starts_with("malformed JSON: "));
    let reply =
        probe.request("{\"method\": \"\u{00e5}\u{00e4}\u{00f6}\u{1d11e}\", \"params\": {}}");
    assert_eq!(reply, json!({"exception": "no such RPC: \u{00e5}\u{00e4}\u{00f6}\u{1d11e}"}));
    probe.send(b"{\"method\": \"\xff\xfe\", \"params\": {}}");
    let reply = ave_network::wire::json::parse(&probe.recv()).unwrap();
    assert!(
        reply["exception"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON: {\"method\": \"\u{fffd}\u{fffd}\""),
        "{reply}"
    );
    assert_eq!(probe.call("sync_ping", json!([]), json!({})), json!({"result": "pong"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_clients() {
    enough_descriptors(4096);
    let (server, _) = diagnostic(|b| b.handshake_timeout(Duration::from_secs(2)));
    let silent: Vec<TcpStream> =
        (0..1000).map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap()).collect();
    let started = Instant::now();
    let remote = RemoteControl::new(server.address(), None).with_timeout(T);
    for i in 0..10 {
        assert_eq!(remote.call("sync_ping", (i,)).await.unwrap(), i);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "served before the silent ones timed out");
    let closed = tokio::task::spawn_blocking(move || {
        silent
            .into_iter()
            .filter(|stream| {
                let mut stream = stream;
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = [0u8; 64];
                let mut total = 0;
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => return total == 35,
                        Ok(n) => total += n,
                        Err(_) => return false,
                    }
                }
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 1000, "every silent client got its challenge and was then closed");
    assert_eq!(server.handle.connections().len(), 1);
}
