//! The original's `control_async` tests: `RemoteControl` clients against running servers,
//! with the access rules of the `decorators` fixture (`auth`, `preauth`), plus the
//! concurrency, the connection cap and the hooks the Rust server adds.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ave_exceptions::Kind;
use ave_network::{
    Address, Error, RemoteControl, Service,
    connection::{BlockingConnection, LOCALHOST, find_free_port},
    control::{ConnectionInfo, Params, Stopped, params},
    diagnostic::Event,
};
use serde_json::{Value, json};

use crate::{Probe, Server, T, diagnostic, diagnostic_service};

fn client(server: &Server, key: Option<&str>) -> RemoteControl {
    RemoteControl::new(server.address(), key).with_timeout(T)
}

#[tokio::test]
async fn t01_t02_pings() {
    let (server, events) = diagnostic(|b| b.authkey(Some("password")));
    let remote = client(&server, Some("password"));
    assert_eq!(remote.call("sync_ping", ()).await.unwrap(), "pong");
    assert_eq!(remote.call("async_ping", ()).await.unwrap(), Value::Null);
    events.wait(Duration::from_secs(1), "pong", |e| *e == Event::Pong);
    assert_eq!(remote.authenticated(), Some(true));
}

#[tokio::test]
async fn t03_inherited_listener_and_one_way_stop() {
    let free = find_free_port(LOCALHOST, true).unwrap();
    let port = free.port();
    let (options, events) = diagnostic_service();
    let mut server = Server::start(ave_network::diagnostic::service(options), |b| {
        b.listener(free.into_listener().unwrap())
    });
    assert_eq!(server.port, port);
    let remote = RemoteControl::new(("", port), None).with_timeout(Some(Duration::from_secs(1)));
    remote.call_one_way("stop", ()).await.unwrap();
    assert_eq!(server.join(), Stopped::Stop);
    events
        .wait(Duration::from_secs(1), "shutdown", |e| matches!(e, Event::Shutdown(Stopped::Stop)));
}

#[tokio::test]
async fn t04_several_servers_and_a_silent_auth_failure() {
    let (a, _) = diagnostic(|b| b.authkey(Some("password")));
    let (b, _) = diagnostic(|b| b.authkey(Some("drowssap")));
    let ra = client(&a, Some("password"));
    let rb = client(&b, Some("password"));
    assert_eq!(ra.call("sync_ping", ("pong1",)).await.unwrap(), "pong1");
    assert_eq!(rb.call("sync_ping", ("pong2",)).await.unwrap(), "pong2");
    assert_eq!(rb.authenticated(), Some(false));
}

#[tokio::test]
async fn t06_t07_t25_exit_then_refused() {
    let (mut server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    let err = remote.call("raise_exit", ()).await.unwrap_err();
    let exit = err.remote().expect("a remote exception");
    assert_eq!(exit.kind(), Kind::Exit);
    assert_eq!(exit.message(), "passed to client");
    assert!(matches!(server.join(), Stopped::Exit(_)));
    for timeout in [None, Some(Duration::from_secs(1))] {
        let err = BlockingConnection::connect(&server.address(), timeout, false).unwrap_err();
        assert!(err.is_refused(), "{err}");
    }
}

/// A diagnostic service that can connect to another server and watch the connection
/// (the original's `connect_remote`).
fn watching_service() -> (Service, crate::Events) {
    let (options, events) = diagnostic_service();
    let service = ave_network::diagnostic::builder(options)
        .rpc(
            "connect_remote",
            params(["address", "password"]),
            |ctx, (address, password): ((String, u16), Option<String>)| async move {
                let address = Address::new(address.0, address.1);
                let remote = RemoteControl::new(address.clone(), password.as_deref())
                    .with_timeout(Some(Duration::from_secs(5)));
                let pong = remote.call("sync_ping", ()).await?;
                let conn = remote.into_connection().await?;
                ctx.control().add_connection(conn, Some(address), password)?;
                Ok(pong)
            },
        )
        .build();
    (service, events)
}

#[tokio::test]
async fn t08_t09_lost_outbound_connection() {
    let (service, a_events) = watching_service();
    let a = Server::start(service, |b| b.authkey(Some("password")));
    let ra = client(&a, Some("password"));
    // B killed with SIGKILL: the Python peer server, a real process.
    let b = crate::PythonServer::start(&[]);
    let pong = ra.call("connect_remote", (("", b.port), Value::Null)).await.unwrap();
    assert_eq!(pong, "pong");
    drop(b);
    let lost = a_events.wait(Duration::from_secs(2), "lost_connection", |e| {
        matches!(e, Event::LostConnection(info) if info.address.port != 0 && info.address.host.is_empty())
    });
    let Event::LostConnection(info) = lost else { unreachable!() };
    assert_eq!(info.address.to_json(), json!(["", info.address.port]));

    // B stopped by a one-way `stop`.
    let (b, _) = diagnostic(|b| b);
    assert_eq!(ra.call("connect_remote", (("", b.port), Value::Null)).await.unwrap(), "pong");
    client(&b, None).call_one_way("stop", ()).await.unwrap();
    a_events.wait(Duration::from_secs(2), "lost_connection", |e| {
        matches!(e, Event::LostConnection(ConnectionInfo { address, .. }) if address.port == b.port)
    });
    assert_eq!(ra.call("sync_ping", ()).await.unwrap(), "pong");
}

#[tokio::test]
async fn t11_t13_a_peer_stopping_is_noticed() {
    let (service, _a_events) = watching_service();
    let mut a = Server::start(service, |b| b.authkey(Some("pass")));
    let (b, b_events) = diagnostic(|b| b.authkey(Some("secret")));
    let ra = client(&a, Some("pass"));
    assert_eq!(ra.call("connect_remote", (("127.0.0.1", b.port), "secret")).await.unwrap(), "pong");
    ra.call_one_way("stop", ()).await.unwrap();
    assert_eq!(a.join(), Stopped::Stop);
    let lost = b_events.wait(
        Duration::from_secs(2),
        "lost_connection",
        |e| matches!(e, Event::LostConnection(info) if info.identity.as_deref() == Some("secret")),
    );
    let Event::LostConnection(info) = lost else { unreachable!() };
    assert!(info.address.to_json().is_array());
}

#[tokio::test]
async fn t14_t33_no_such_rpc() {
    let (server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    for name in ["bla_bla_bla", "åäö"] {
        let err = remote.call(name, ()).await.unwrap_err();
        assert_eq!(err.to_string(), format!("no such RPC: {name}"));
        assert_eq!(err.remote().unwrap().type_name(), "Exception");
    }
}

#[tokio::test]
async fn t16_t19_identities() {
    let (server, _) = diagnostic(|b| b.authkey(None).account("alt", Some("key")));
    assert_eq!(client(&server, Some("key")).call("whoami", ()).await.unwrap(), "key");
    let (server, _) = diagnostic(|b| {
        b.authkey(Some("key1")).account("alt2", Some("key2")).account("alt3", Some("key3"))
    });
    for key in ["key1", "key2", "key3"] {
        assert_eq!(client(&server, Some(key)).call("whoami", ()).await.unwrap(), key);
    }
    assert_eq!(client(&server, Some("no such key")).call("whoami", ()).await.unwrap(), Value::Null);
    assert_eq!(client(&server, Some("key3")).call("whoami", ()).await.unwrap(), "key3");
}

#[tokio::test]
async fn t20_t21_t23_preauth() {
    let (server, _) = diagnostic(|b| {
        b.authkey(Some("key1"))
            .account("admin", Some("key2"))
            .account("root", Some("key3"))
            .account("nobody", Some("key4"))
    });
    assert_eq!(client(&server, Some("key2")).call("whoami_preauth", ()).await.unwrap(), "key2");
    let nobody = client(&server, Some("key4"));
    assert_eq!(nobody.call("whoami", ()).await.unwrap(), "key4");
    let err = nobody.call("whoami_preauth", ()).await.unwrap_err();
    assert_eq!(err.to_string(), "not authorized to make this call");
    let err = client(&server, Some("key1")).call("whoami_preauth", ()).await.unwrap_err();
    assert_eq!(err.to_string(), "not authorized to make this call");

    let (open, _) = diagnostic(|b| b.authkey(None).account("admin", None).account("root", None));
    let stranger = client(&open, Some("foo bar"));
    assert_eq!(stranger.call("whoami_preauth", ()).await.unwrap(), Value::Null);
    assert_eq!(stranger.authenticated(), Some(false));
}

#[tokio::test]
async fn auth_accepts_any_matching_key() {
    let (server, _) =
        diagnostic(|b| b.authkey(Some("k")).account("share", Some("s")).account("empty", Some("")));
    assert_eq!(client(&server, Some("s")).call("auth_only", ()).await.unwrap(), "secret");
    assert_eq!(client(&server, Some("k")).call("auth_only", ()).await.unwrap(), "secret");
    // The empty key authenticates, yet does not pass `auth`.
    let empty = client(&server, None);
    assert_eq!(empty.call("whoami", ()).await.unwrap(), "");
    assert_eq!(empty.authenticated(), Some(true));
    let err = empty.call("auth_only", ()).await.unwrap_err();
    assert_eq!(err.to_string(), "not authenticated to make this call");
}

#[test]
fn t24_idle_cadence() {
    let interval = Duration::from_millis(200);
    let (_server, events) = diagnostic(|b| b.interval(Some(interval)));
    let mut times = Vec::new();
    let start = Instant::now();
    for _ in 0..3 {
        events.wait(interval * 4, "idle", |e| *e == Event::Idle);
        times.push(start.elapsed());
    }
    let mean = times[2] / 3;
    assert!(mean >= interval * 9 / 10 && mean <= interval * 2, "mean spacing {mean:?}");

    let (_quiet, events) = diagnostic(|b| b);
    assert!(!events.collect(Duration::from_millis(500)).contains(&Event::Idle));
}

#[tokio::test]
async fn t26_t27_typed_exceptions() {
    let (server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    let pid = remote.call("get_pid", ()).await.unwrap();
    let err = remote.call("raise_timeout", ()).await.unwrap_err();
    let timeout = err.remote().unwrap();
    assert_eq!(timeout.kind(), Kind::Timeout);
    assert_eq!(timeout.message(), "command timed out");
    assert_eq!(timeout.field("cmd"), Some(&json!(["sleep", "10"])));
    assert!(timeout.out().is_some());
    assert_eq!(timeout.trace().unwrap()[0].function, "raise_timeout");

    let err = remote.call("raise_run_error", ()).await.unwrap_err();
    let run = err.remote().unwrap();
    assert_eq!(run.kind(), Kind::RunError);
    assert_eq!(run.field("cmd"), Some(&json!(["no_such_exe"])));
    assert!(run.to_string().contains("No such file or directory"), "{run}");
    // The server is still the same single process.
    assert_eq!(remote.call("get_pid", ()).await.unwrap(), pid);
}

#[tokio::test]
async fn t29_stop_listening() {
    let (server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    remote.call("stop_listening", ()).await.unwrap();
    assert!(!server.handle.is_listening());
    assert_eq!(remote.call("sync_ping", ()).await.unwrap(), "pong");
    let late = RemoteControl::new(server.address(), None)
        .with_optimist(false)
        .with_timeout(Some(Duration::from_secs(1)));
    let err = late.call("sync_ping", ()).await.unwrap_err();
    assert!(err.is_refused(), "{err}");
}

#[tokio::test]
async fn t30_t32_non_ascii_exceptions() {
    let (server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    let err = remote.call("raise_plain_exception", ("åäö",)).await.unwrap_err();
    assert_eq!(err.remote().unwrap().message(), "åäö");
    let err = remote.call("raise_ave_exception", (json!({"message": "åäö"}),)).await.unwrap_err();
    assert_eq!(err.remote().unwrap().message(), "åäö");
    let err = remote.call("raise_exit", ("åäö",)).await.unwrap_err();
    assert_eq!(err.remote().unwrap().kind(), Kind::Exit);
    assert_eq!(err.remote().unwrap().message(), "åäö");
}

#[tokio::test]
async fn t34_t36_client_timeouts_and_no_desynchronisation() {
    let (server, _) = diagnostic(|b| b);
    for timeout in [Some(Duration::ZERO), None] {
        let remote = RemoteControl::new(server.address(), None).with_timeout(timeout);
        assert_eq!(remote.call("sleep", (0.3,)).await.unwrap(), Value::Null);
    }
    let remote =
        RemoteControl::new(server.address(), None).with_timeout(Some(Duration::from_millis(200)));
    let err = remote.call("sleep", (0.6,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The late reply of the timed-out call is never taken for the next one's.
    assert_eq!(remote.call("sync_ping", ("fresh",)).await.unwrap(), "fresh");
}

#[tokio::test]
async fn one_way_errors_do_not_shift_the_replies() {
    let (server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    remote.call_one_way("no_such_method", ()).await.unwrap();
    remote.call_one_way("raise_plain_exception", ("x",)).await.unwrap();
    assert_eq!(remote.call("sync_ping", ("first",)).await.unwrap(), "first");
    assert_eq!(remote.call("sync_ping", ("second",)).await.unwrap(), "second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_delays_no_other_connection() {
    let (server, _) = diagnostic(|b| b);
    let slow = Arc::new(client(&server, None));
    let sleeper = {
        let slow = slow.clone();
        tokio::spawn(async move { slow.call("sleep", (1.0,)).await })
    };
    let fast = client(&server, None);
    fast.connect(T).await.unwrap();
    for i in 0..20 {
        assert_eq!(fast.call("sync_ping", (i,)).await.unwrap(), i);
    }
    assert!(!sleeper.is_finished(), "the fast calls were served while the slow one ran");
    assert_eq!(sleeper.await.unwrap().unwrap(), Value::Null);
}

#[test]
fn each_connection_is_strictly_ordered() {
    let (server, _) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(server.port, None);
    let mut batch = Vec::new();
    let calls = [json!(["sleep", [0.2]]), json!(["sync_ping", ["one"]]), json!(["upper", ["two"]])];
    for call in &calls {
        let request = json!({"method": call[0], "params": {"vargs": call[1], "kwargs": {}}});
        ave_network::wire::frame::encode(request.to_string().as_bytes(), &mut batch).unwrap();
    }
    probe.conn.write(&batch, T).unwrap();
    let replies: Vec<Value> =
        (0..3).map(|_| ave_network::wire::json::parse(&probe.recv()).unwrap()).collect();
    assert_eq!(
        replies,
        [json!({"result": null}), json!({"result": "one"}), json!({"result": "TWO"})]
    );
}

#[tokio::test]
async fn the_connection_cap_holds_new_clients_back() {
    // Connections with an identity are never closed to make room (anonymous ones are:
    // see `hardening::f4_...`).
    let (server, _) = diagnostic(|b| b.authkey(Some("k")).max_connections(2));
    let a = client(&server, Some("k"));
    let b = client(&server, Some("k"));
    a.connect(T).await.unwrap();
    b.connect(T).await.unwrap();
    let c = RemoteControl::new(server.address(), Some("k"))
        .with_timeout(Some(Duration::from_millis(300)));
    let err = c.call("sync_ping", ()).await.unwrap_err();
    assert!(err.is_timeout(), "the third client waits in the backlog: {err}");
    a.disconnect().await;
    let c = client(&server, Some("k"));
    assert_eq!(c.call("sync_ping", ()).await.unwrap(), "pong");
}

#[test]
fn the_handshake_times_out() {
    let (server, events) = diagnostic(|b| b.handshake_timeout(Duration::from_millis(300)));
    let mut silent = Probe::connect(server.port);
    let _challenge = silent.recv();
    assert!(silent.closed_within(Duration::from_secs(3)));
    // No lost_connection for a connection that never finished its handshake.
    assert!(
        !events
            .collect(Duration::from_millis(200))
            .iter()
            .any(|e| matches!(e, Event::LostConnection(_)))
    );
}

#[tokio::test]
async fn connection_keys_can_be_given_by_the_service() {
    // The broker's pattern: anonymous clients get a key of their own.
    let given = Arc::new(Mutex::new(Vec::new()));
    let record = given.clone();
    let service = Service::builder("broker")
        .rpc("whoami", Params::none(), |ctx, ()| async move { Ok(ctx.identity()) })
        .on_new_connection(move |control, info| {
            if info.identity.is_none() {
                let key = format!("session-{}", info.id.get());
                control.set_connection_authkey(info.id, &key).unwrap();
                let again = control.set_connection_authkey(info.id, "x").unwrap_err();
                assert!(
                    matches!(again, Error::AlreadyAuthenticated { id } if id == info.id.get()),
                    "{again:?}"
                );
                assert_eq!(again.to_string(), "connection already has authkey");
                record.lock().unwrap().push((info.id, key));
            }
        })
        .build();
    let server = Server::start(service, |b| b.authkey(Some("k")));
    let anonymous = client(&server, Some("wrong"));
    let identity = anonymous.call("whoami", ()).await.unwrap();
    let (id, key) = given.lock().unwrap()[0].clone();
    assert_eq!(identity, key.as_str());
    assert_eq!(server.handle.get_connection_authkey(id).unwrap().as_deref(), Some(key.as_str()));
    assert_eq!(client(&server, Some("k")).call("whoami", ()).await.unwrap(), "k");
}

#[tokio::test]
async fn a_key_is_refused_before_the_handshake_is_over() {
    let (server, _) = diagnostic(|b| b.authkey(Some("k")));
    // The challenge arrived and was not answered: the connection is mid-handshake.
    let mut silent = Probe::connect(server.port);
    let _challenge = silent.recv();
    let pending = server.handle.connections();
    let [info] = pending.as_slice() else { panic!("{pending:?}") };
    assert!(!info.established);
    let err = server.handle.set_connection_authkey(info.id, "x").unwrap_err();
    assert!(matches!(err, Error::NotEstablished { id } if id == info.id.get()), "{err:?}");
    assert_eq!(err.to_string(), format!("not established: {}", info.id));
    assert_eq!(server.handle.get_connection_authkey(info.id).unwrap(), None);
}

#[tokio::test]
async fn shutdown_sends_the_exit_message_to_everyone() {
    let (mut server, events) = diagnostic(|b| b);
    let mut probes: Vec<Probe> = (0..3).map(|_| Probe::authenticated(server.port, None)).collect();
    let remote = client(&server, None);
    remote.connect(T).await.unwrap();
    server
        .handle
        .shutdown(Some(ave_exceptions::AveException::exit("max transactions limit reached")));
    for probe in &mut probes {
        assert_eq!(
            probe.recv(),
            br#"{"exception": {"message": "max transactions limit reached", "type": "Exit"}}"#
        );
        assert!(probe.closed_within(Duration::from_secs(2)));
    }
    assert!(matches!(server.join(), Stopped::Shutdown(Some(_))));
    // Every established connection was reported lost, the shutdown included.
    let lost = events
        .collect(Duration::from_millis(300))
        .into_iter()
        .filter(|e| matches!(e, Event::LostConnection(_)))
        .count();
    assert_eq!(lost, 4);
    let err = remote.call("sync_ping", ()).await.unwrap_err();
    assert!(
        matches!(err, Error::Remote(ref e) if e.kind() == Kind::Exit)
            || err.is_closed()
            || err.is_refused(),
        "{err}"
    );
}

#[tokio::test]
async fn exit_from_a_one_way_call_is_answered() {
    let (mut server, _) = diagnostic(|b| b);
    let mut probe = Probe::authenticated(server.port, None);
    probe.call_one_way("raise_exit", json!(["bye"]));
    assert_eq!(probe.recv(), br#"{"exception": {"message": "bye", "type": "Exit"}}"#);
    assert!(matches!(server.join(), Stopped::Exit(_)));
}

#[tokio::test]
async fn stop_over_rpc_delivers_its_reply() {
    let (mut server, _) = diagnostic(|b| b);
    let remote = client(&server, None);
    assert_eq!(remote.call("stop", ()).await.unwrap(), Value::Null);
    assert_eq!(server.join(), Stopped::Stop);
}
