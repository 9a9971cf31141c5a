//! The seam for live handover: a connection taken out of one `Control` at a frame
//! boundary, with its identity, partial input and pending output, and served on by
//! another, without the client noticing.

use std::time::Duration;

use ave_network::{
    Error,
    control::{ConnectionPhase, Params},
    diagnostic::Event,
    wire::handshake::{Algorithm, CHALLENGE_PREFIX, digest},
};
use serde_json::json;

use crate::{Events, Probe, Server, T, diagnostic_service};

fn server(name: &'static str) -> (Server, Events) {
    let (options, events) = diagnostic_service();
    let service = ave_network::diagnostic::builder(options)
        .rpc("which", Params::none(), move |_, ()| async move { Ok(name) })
        .build();
    (Server::start(service, |b| b.authkey(Some("k"))), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_connection_moves_with_its_partial_input() {
    let (a, a_events) = server("A");
    let (b, _) = server("B");
    let mut probe = Probe::authenticated(a.port, Some("k"));
    assert_eq!(probe.call("which", json!([]), json!({})), json!({"result": "A"}));
    let mut request = Vec::new();
    ave_network::wire::frame::encode(
        br#"{"method": "whoami", "params": {"vargs": [], "kwargs": {}}}"#,
        &mut request,
    )
    .unwrap();
    let (head, tail) = request.split_at(20);
    probe.conn.write(head, T).unwrap();

    let id = a.handle.connections()[0].id;
    let detached = a.handle.remove_connection(id).await.unwrap();
    assert_eq!(detached.identity.as_deref(), Some("k"));
    assert_eq!(detached.phase, ConnectionPhase::Established);
    assert!(a.handle.connections().is_empty());
    b.handle.adopt_connection(detached).unwrap();

    probe.conn.write(tail, T).unwrap();
    assert_eq!(ave_network::wire::json::parse(&probe.recv()).unwrap(), json!({"result": "k"}));
    assert_eq!(probe.call("which", json!([]), json!({})), json!({"result": "B"}));
    assert!(
        !a_events
            .collect(Duration::from_millis(200))
            .iter()
            .any(|e| matches!(e, Event::LostConnection(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_moves_in_the_middle_of_its_handshake() {
    let (a, _) = server("A");
    let (b, _) = server("B");
    let mut probe = Probe::connect(a.port);
    let challenge = probe.recv();
    let id = a.handle.connections()[0].id;
    let detached = a.handle.remove_connection(id).await.unwrap();
    assert_eq!(detached.phase, ConnectionPhase::Challenged { challenge: challenge.clone() });
    b.handle.adopt_connection(detached).unwrap();
    probe.send(&digest(Algorithm::Md5, b"k", &challenge[CHALLENGE_PREFIX.len()..]));
    assert_eq!(probe.recv(), br#"{"authenticated": true}"#);
    assert_eq!(probe.call("which", json!([]), json!({})), json!({"result": "B"}));
    assert_eq!(probe.call("whoami", json!([]), json!({})), json!({"result": "k"}));
}

#[tokio::test]
async fn removing_an_unknown_connection_fails() {
    let (a, _) = server("A");
    let mut probe = Probe::authenticated(a.port, Some("k"));
    let id = a.handle.connections()[0].id;
    drop(a.handle.remove_connection(id).await.unwrap());
    let err = a.handle.remove_connection(id).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchConnection { id: gone } if gone == id.get()), "{err:?}");
    assert_eq!(err.to_string(), format!("no such connection: {id}"));
    let err = a.handle.get_connection_authkey(id).unwrap_err();
    assert!(matches!(err, Error::NoSuchConnection { id: gone } if gone == id.get()), "{err:?}");
    assert!(probe.closed_within(Duration::from_secs(2)));
}
