//! Discovering a service: `ave call ADDR --list`, the did-you-mean of a misspelt method,
//! `ave serve --help`; and an original-style Python server, which lists nothing.

// Tests say on stdout why they skip.
#![allow(clippy::print_stdout)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use crate::{ave, serve::Served};

fn call(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let out = ave(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
/// original's specification.
struct PythonServer(Child, u16);

impl PythonServer {
    fn start() -> Option<PythonServer> {
        let script =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../ave-network/tests/it/peers/server.py");
        let child = Command::new("python3").arg(script).stdout(Stdio::piped()).spawn();
        let Ok(mut child) = child else {
            println!("skipped: python3 is not available");
            return None;
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("no port: {line:?}"));
        Some(PythonServer(child, port))
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_original_server_is_not_confused_by_the_listing() {
    let Some(server) = PythonServer::start() else { return };
    let address = format!("127.0.0.1:{}", server.1);
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
