//! The `echo_service` example, run as a program against the simulator, in the foreground
//! and with `--daemon` (it is built with the tests: `cargo test` builds the examples).

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
};

use ave_tripe::{Client, Error};

use crate::{LIMIT, sim::Sim};

/// The example's binary, next to the test binary's folder (`target/<profile>/examples`).
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile.join("examples").join("echo_service");
    assert!(
        path.exists(),
        "{} is missing: build the examples (cargo test builds them)",
        path.display()
    );
    path
}

/// Starts the example with `args`; its stderr lines arrive on the channel.
fn start(sim: &Sim, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(example())
        .arg("--socket")
        .arg(sim.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the echo_service example");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for `child` to exit, bounded; its exit code.
fn wait(mut child: Child) -> Option<i32> {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(status) => status.expect("wait").code(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the example did not exit");
        }
    }
}

/// Waits for a stderr line containing `text`.
fn line_with(lines: &mpsc::Receiver<String>, text: &str) -> String {
    loop {
        let line = lines.recv_timeout(LIMIT).unwrap_or_else(|_| panic!("no line with {text:?}"));
        if line.contains(text) {
            return line;
        }
    }
}

/// `shout`, a cancelled `slow`, then `QUIT`, through a submitting client.
fn exercise(sim: &Sim, stderr: &mpsc::Receiver<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client =
            tokio::time::timeout(LIMIT, Client::connect(sim.path())).await.unwrap().unwrap();
        let shout = client.svcsubmit("echo", None, ["shout", "hello", "big world"]).unwrap();
        let lines = tokio::time::timeout(LIMIT, shout.collect()).await.unwrap().unwrap();
        assert_eq!(lines, [["hello big world"]]);

        let mut slow = client.svcsubmit("echo", None, ["slow"]).unwrap();
        assert!(sim.wait_until(LIMIT, |s| s.service_jobs() == 1).await);
        tokio::time::timeout(LIMIT, slow.cancel()).await.unwrap().unwrap();
        let end = tokio::time::timeout(LIMIT, slow.next_info()).await.unwrap();
        assert!(matches!(end, Err(Error::Cancelled { .. })), "{end:?}");
        let line = line_with(stderr, "(slow) cancelled");
        assert!(line.starts_with("echo_service: job "), "{line}");

        let quit = client.svcsubmit("echo", None, ["quit"]).unwrap();
        tokio::time::timeout(LIMIT, quit.collect()).await.unwrap().unwrap();
    });
    assert!(sim.wait_until_blocking(LIMIT, |s| s.services().is_empty()));
}

#[test]
fn the_echo_service_example_serves_in_the_foreground() {
    let sim = Sim::start();
    let (child, stderr) = start(&sim, &[]);
    assert!(sim.wait_until_blocking(LIMIT, |s| !s.services().is_empty()));
    assert_eq!(sim.services(), [("echo".to_owned(), "1.0".to_owned())]);
    exercise(&sim, &stderr);
    assert_eq!(wait(child), Some(0));
}

#[test]
fn the_echo_service_example_detaches_once_its_service_is_up() {
    let sim = Sim::start();
    let pid_file = sim.dir().join("echo.pid");
    let (launcher, stderr) = start(&sim, &["--daemon", "--pid-file", pid_file.to_str().unwrap()]);
    let launcher_pid = launcher.id();
    // The launcher returns only once the daemon has connected and claimed: no waiting.
    assert_eq!(wait(launcher), Some(0));
    assert_eq!(sim.services(), [("echo".to_owned(), "1.0".to_owned())]);
    let daemon: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_ne!(daemon, launcher_pid);
    assert!(line_with(&stderr, "serving echo 1.0 as daemon").contains(&daemon.to_string()));

    // The daemon keeps the launcher's stderr: the cancellation is reported there.
    exercise(&sim, &stderr);
    // QUIT ends the daemon, which logs why and removes its pid file; its end closes
    // the stderr pipe.
    line_with(&stderr, "stopped (QuitRequested)");
    loop {
        match stderr.recv_timeout(LIMIT) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the daemon did not exit"),
        }
    }
    assert!(!pid_file.exists());
}
