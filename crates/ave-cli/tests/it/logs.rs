//! Log output of `ave serve`: the lifecycle at the default level, colour rules, journald
//! priority prefixes, JSON lines.

// A skip says why on the test's output.
#![allow(clippy::print_stderr)]

use std::{
    io::{BufRead, BufReader, Read},
    os::fd::{AsFd, OwnedFd},
    process::{Child, Command, Stdio},
};

use crate::serve::TempDir;

/// `ave serve` with its stderr on a pipe whose read end the test holds.
struct Server {
    child: Child,
    stderr: BufReader<std::fs::File>,
    _dir: TempDir,
}

impl Server {
    /// Starts `ave GLOBAL... serve --port-file F` with extra environment; `journal` makes
    /// `JOURNAL_STREAM` name the stderr pipe, as journald does.
    fn start(global: &[&str], envs: &[(&str, &str)], journal: bool) -> Server {
        let dir = TempDir::new("logs");
        let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ave"));
        command
            .args(global)
            .args(["serve", "--port", "0"])
            .env("HOME", dir.path())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("JOURNAL_STREAM")
            .envs(envs.iter().copied())
            .stdout(Stdio::null());
        if journal {
            let stat = nix::sys::stat::fstat(write.as_fd()).unwrap();
            command.env("JOURNAL_STREAM", format!("{}:{}", stat.st_dev, stat.st_ino));
        }
        let child = command.stderr(Stdio::from(write)).spawn().expect("start ave serve");
        // The child holds the only write end now: EOF when it exits.
        Server { child, stderr: BufReader::new(std::fs::File::from(read)), _dir: dir }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stderr.read_line(&mut line).unwrap();
        line
    }

    /// SIGTERM, then the rest of stderr once it exits.
    fn terminate(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        assert!(self.child.wait().unwrap().success());
        rest
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_lifecycle_shows_at_the_default_level_without_colour_in_a_pipe() {
    let mut server = Server::start(&[], &[], false);
    let first = server.line();
    assert!(first.starts_with("ave serve: listening on 127.0.0.1:"), "{first:?}");
    let rest = server.terminate();
    assert_eq!(rest, "ave serve: stopped: SIGTERM\n");
    assert!(!first.contains('\x1b'));
}

#[test]
fn colour_always_colours_a_pipe_and_never_does_not() {
    let mut server = Server::start(&["-v", "--color", "always"], &[("NO_COLOR", "1")], false);
    server.line();
    let rest = server.terminate();
    assert!(rest.contains("ave serve: \x1b[32minfo\x1b[0m: "), "{rest:?}");

    for global in [&["-v", "--color", "never"][..], &["-v"][..]] {
        let mut server = Server::start(global, &[], false);
        let first = server.line();
        let rest = server.terminate();
        assert!(rest.contains("ave serve: info: "), "{rest:?}");
        assert!(!first.contains('\x1b') && !rest.contains('\x1b'), "{global:?}: {rest:?}");
    }
}

#[test]
fn under_journald_every_line_has_a_priority_prefix() {
    let mut server = Server::start(&["-v", "--color", "auto"], &[], true);
    let first = server.line();
    assert!(first.starts_with("<6>ave serve: listening on 127.0.0.1:"), "{first:?}");
    let rest = server.terminate();
    assert!(rest.contains("<6>ave serve: info: shutting down"), "{rest:?}");
    assert!(rest.ends_with("<6>ave serve: stopped: SIGTERM\n"), "{rest:?}");
    for line in rest.lines() {
        let digit = line.strip_prefix('<').and_then(|l| l.chars().next());
        assert!(
            digit.is_some_and(|d| ('0'..='7').contains(&d)) && line[2..].starts_with('>'),
            "{line:?}"
        );
    }
    assert!(!rest.contains('\x1b'));

    // A JOURNAL_STREAM that names another file is not trusted.
    let mut server = Server::start(&[], &[("JOURNAL_STREAM", "1:1")], false);
    let first = server.line();
    assert!(first.starts_with("ave serve: listening on"), "{first:?}");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let mut server = Server::start(&["--log-format", "json", "-v"], &[], false);
    let first: serde_json::Value = serde_json::from_str(&server.line()).unwrap();
    assert_eq!(first["level"], "info");
    assert_eq!(first["target"], "ave::lifecycle");
    assert_eq!(first["command"], "ave serve");
    assert!(first["message"].as_str().unwrap().starts_with("listening on 127.0.0.1:"));
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let rest = server.terminate();
    let lines: Vec<serde_json::Value> =
        rest.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    // `-v` adds the library's info events, with their fields as JSON.
    let shutting = lines.iter().find(|l| l["message"] == "shutting down").expect(&rest);
    assert_eq!(shutting["target"], "ave_network::control");
    assert_eq!(shutting["fields"]["service"], "ave-serve");
    assert_eq!(lines.last().unwrap()["message"], "stopped: SIGTERM");
}

/// `ave -v serve` on a real terminal (util-linux `script` gives it a pty): coloured with
/// `--color auto`, plain with `NO_COLOR`. Stopped by a `stop` call.
fn on_a_terminal(no_color: bool) -> String {
    let dir = TempDir::new(if no_color { "tty-nocolor" } else { "tty-color" });
    let port_file = dir.path().join("port");
    let line = format!(
        "exec '{}' -v --color auto serve --port 0 --port-file '{}'",
        env!("CARGO_BIN_EXE_ave"),
        port_file.display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qefc", &line, "/dev/null"])
        .env("HOME", dir.path())
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if no_color {
        command.env("NO_COLOR", "1");
    } else {
        command.env_remove("NO_COLOR");
    }
    let mut child = command.spawn().expect("run script");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    // The first line says where it listens; the port file is written before it.
    out.read_line(&mut text).unwrap();
    assert!(text.contains("listening on"), "{text:?}");
    let port = std::fs::read_to_string(&port_file).unwrap();
    let call =
        crate::ave(&["call", "--timeout", "10", &format!("127.0.0.1:{}", port.trim()), "stop"]);
    assert!(call.status.success());
    out.read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success(), "{text:?}");
    text
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        // .ci/run installs it (Debian package bsdutils).
        eprintln!("skipped: util-linux script is not installed");
        return;
    }
    let coloured = on_a_terminal(false);
    assert!(coloured.contains("ave serve: \x1b[32minfo\x1b[0m: "), "{coloured:?}");
    let plain = on_a_terminal(true);
    assert!(plain.contains("ave serve: info: ") && !plain.contains('\x1b'), "{plain:?}");
}
