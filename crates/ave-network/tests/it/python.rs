//! Interoperability with independent Python 3 peers written from the specification
//! (stdlib only, in `peers/`): their client against our server, our clients against their
//! server.

use std::{process::Output, time::Duration};

use ave_exceptions::Kind;
use ave_network::{
    BlockingRemoteControl, RemoteControl, control::Stopped, wire::handshake::DigestPolicy,
};
use serde_json::{Value, json};

use crate::{PythonServer, T, diagnostic, peer, python3};

fn run_client(port: u16, scenario: &str, key: Option<&str>) -> Output {
    let mut command = python3();
    command.arg(peer("client.py")).arg(port.to_string()).arg(scenario);
    if let Some(key) = key {
        command.arg(key);
    }
    command.output().expect("run the Python client")
}

fn assert_passed(out: &Output, at_least: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client failed:\n{stdout}\n{stderr}");
    let checks = stdout.lines().filter(|l| l.starts_with("ok: ")).count();
    assert!(checks >= at_least, "only {checks} checks ran:\n{stdout}");
}

#[test]
fn the_python_client_against_our_server() {
    let (server, _events) =
        diagnostic(|b| b.authkey(Some("password")).account("admin", Some("adminkey")));
    assert_passed(&run_client(server.port, "main", Some("password")), 35);
}

#[test]
fn the_python_client_and_the_sha256_option() {
    let (any, _) = diagnostic(|b| b.authkey(Some("k")).digest(DigestPolicy::Any));
    assert_passed(&run_client(any.port, "sha256", Some("k")), 3);
    assert_passed(&run_client(any.port, "md5", Some("k")), 3);
    let (strict, _) = diagnostic(|b| b.authkey(Some("k")).digest(DigestPolicy::Sha256));
    assert_passed(&run_client(strict.port, "sha256", Some("k")), 3);
    assert_passed(&run_client(strict.port, "md5-refused", Some("k")), 3);
}

#[test]
fn the_python_client_sees_the_exit() {
    let (mut server, _events) = diagnostic(|b| b.authkey(Some("password")));
    let out = run_client(server.port, "exit", Some("password"));
    assert_passed(&out, 4);
    assert!(matches!(server.join(), Stopped::Exit(_)));
}

#[tokio::test]
async fn our_client_against_the_python_server() {
    let server = PythonServer::start(&["--authkey", "password", "--account", "admin=adminkey"]);
    let remote = RemoteControl::new(server.address(), Some("password")).with_timeout(T);
    assert_eq!(remote.call("sync_ping", ()).await.unwrap(), "pong");
    assert_eq!(remote.call("upper", ("åäö",)).await.unwrap(), "ÅÄÖ");
    assert_eq!(remote.call("whoami", ()).await.unwrap(), "password");
    assert_eq!(remote.authenticated(), Some(true));
    let admin = RemoteControl::new(server.address(), Some("adminkey")).with_timeout(T);
    assert_eq!(admin.call("whoami", ()).await.unwrap(), "adminkey");
    let stranger = RemoteControl::new(server.address(), Some("nope")).with_timeout(T);
    assert_eq!(stranger.call("whoami", ()).await.unwrap(), Value::Null);
    assert_eq!(stranger.authenticated(), Some(false));
    let err = stranger.call("auth_only", ()).await.unwrap_err();
    assert_eq!(err.to_string(), "not authenticated to make this call");

    let err = remote.call("raise_plain_exception", ("boom",)).await.unwrap_err();
    let e = err.remote().unwrap();
    assert_eq!((e.type_name(), e.message().as_ref()), ("Exception", "boom"));
    assert_eq!(e.trace().unwrap()[0].function, "raise_plain_exception");
    let err = remote
        .call("raise_ave_exception", (json!({"message": "cow", "type": "Timeout", "extra": 1}),))
        .await
        .unwrap_err();
    assert_eq!(err.remote().unwrap().kind(), Kind::Timeout);
    assert_eq!(err.remote().unwrap().field("extra"), Some(&json!(1)));
    let err = remote.call("no_such", ()).await.unwrap_err();
    assert_eq!(err.to_string(), "no such RPC: no_such");

    remote.call_one_way("async_ping", ()).await.unwrap();
    remote.call_one_way("async_ping", ()).await.unwrap();
    assert_eq!(remote.call("get_pongs", ()).await.unwrap(), 2);

    // The original server is single-threaded: a timed-out call leaves a late reply, which
    // must not be taken for the next call's answer.
    let impatient =
        RemoteControl::new(server.address(), None).with_timeout(Some(Duration::from_millis(200)));
    let err = impatient.call("sleep", (0.5,)).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let patient = impatient.with_timeout(T);
    assert_eq!(patient.call("sync_ping", ("fresh",)).await.unwrap(), "fresh");

    let err = remote.call("raise_exit", ()).await.unwrap_err();
    assert_eq!(err.remote().unwrap().kind(), Kind::Exit);
}

#[test]
fn our_blocking_client_against_the_python_server() {
    let server = PythonServer::start(&[]);
    let remote = BlockingRemoteControl::new(server.address(), None).with_timeout(T);
    assert_eq!(remote.call("sync_ping", ()).unwrap(), "pong");
    assert_eq!(remote.call("upper", ("abc",)).unwrap(), "ABC");
    assert_eq!(remote.authenticated(), Some(false));
    remote.call_one_way("async_ping", ()).unwrap();
    assert_eq!(remote.call("get_pongs", ()).unwrap(), 1);
    let err = remote.call("raise_plain_exception", ("x",)).unwrap_err();
    assert_eq!(err.remote().unwrap().message(), "x");
    let err = remote.call("stop", ()).unwrap_err();
    assert!(err.is_closed(), "the Python server stops without answering, as the original: {err}");
}
