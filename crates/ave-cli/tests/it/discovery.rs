//! Discovering a service: `ave call ADDR --list`, the did-you-mean of a misspelt method,
//! `ave serve --help`; and an original-style Python server, which lists nothing.

use std::time::Duration;

use ave_test_support::python::{Peer, python3_or_skip};

use crate::{ave, serve::Served};

fn call(args: &[&str]) -> (i32, String, String) {
    crate::ave_call(&[], args)
}

#[test]
fn list_prints_the_methods_with_their_parameters_and_access() {
    let served = Served::start(&[]);
    let (code, stdout, stderr) = call(&[&served.address(), "--list"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 16, "{stdout}");
    let line = |name: &str| {
        let found = lines.iter().find(|l| l.starts_with(&format!("{name}(")));
        found
            .unwrap_or_else(|| panic!("{name} not listed: {stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("upper"), "upper(message) everyone");
    assert_eq!(line("sync_ping"), "sync_ping([alt]) everyone");
    assert_eq!(line("raise_ave_exception"), "raise_ave_exception(details, [depth]) everyone");
    assert_eq!(line("auth_only"), "auth_only() authenticated callers");
    assert_eq!(line("whoami_preauth"), "whoami_preauth() the keys of admin, root");
    // `ave serve --help` shows the same list.
    let help = String::from_utf8(ave(&["serve", "--help"]).stdout).unwrap();
    for listed in &lines {
        assert!(help.contains(&format!("  {listed}")), "serve --help lacks {listed:?}:\n{help}");
    }
    let (code, _, stderr) = call(&[&served.address(), "--list", "upper"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_misspelt_method_gets_a_did_you_mean() {
    let served = Served::start(&[]);
    let (code, stdout, stderr) = call(&[&served.address(), "uper", "x"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    let mut lines = stderr.lines();
    assert_eq!(lines.next(), Some(r#"{"message":"no such RPC: uper","type":"Exception"}"#));
    assert_eq!(
        lines.next(),
        Some("ave call: hint: did you mean upper? (--list shows every method)")
    );
    assert_eq!(lines.next(), None);
    // Nothing close: no hint.
    let (code, _, stderr) = call(&[&served.address(), "reboot_the_lab"]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The independent Python server of ave-network's interoperability tests, written from the
/// original's specification; its port, and the peer (killed on drop).
fn python_server() -> Option<(u16, Peer)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../ave-network/tests/it/peers/server.py");
    let mut peer = Peer::start(python3_or_skip()?.arg(script));
    Some((peer.port(Duration::from_secs(30)), peer))
}

#[test]
fn an_original_server_is_not_confused_by_the_listing() {
    let Some((port, _server)) = python_server() else { return };
    let address = format!("127.0.0.1:{port}");
    let (code, stdout, stderr) = call(&[&address, "--list"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        format!(
            "ave call: error: {address}: the server does not list its methods (it is not an ave \
             service, or an older one)\n"
        )
    );
    // The server serves on: the listing was an ordinary unknown method to it.
    let (code, stdout, _) = call(&[&address, "upper", "still here"]);
    assert_eq!((code, stdout.as_str()), (0, "\"STILL HERE\"\n"));
    // A misspelt method: its answer, and no hint.
    let (code, _, stderr) = call(&[&address, "uper", "x"]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no such RPC: uper"), "{stderr}");
}
