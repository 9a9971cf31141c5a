//! `run_bg` and `Background`: reading, writing, waiting, killing, dropping.

use std::{
    io::{BufRead, BufReader, Read, Write},
    time::Duration,
};

use ave_cmd::{ExitStatus, Options, WindowSize, run_bg};

use crate::{alive, live_in_session, shared};

#[test]
fn input_reaches_the_command_and_its_output_comes_back() {
    let _guard = shared();
    let mut bg = run_bg("head -n 1", &Options::new()).unwrap();
    bg.write_all(b"ping\n").unwrap();
    let mut text = Vec::new();
    bg.read_to_end(&mut text).unwrap();
    // The terminal echoes the input, then `head` prints it.
    assert_eq!(text, b"ping\r\nping\r\n");
    assert_eq!(bg.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(bg.status(), Some(ExitStatus::Exited(0)));
    // Reading after the end keeps returning the end.
    assert_eq!(bg.read(&mut [0; 8]).unwrap(), 0);
}

#[test]
fn try_wait_and_wait_timeout_do_not_block() {
    let _guard = shared();
    let mut bg = run_bg("cat", &Options::new()).unwrap();
    assert_eq!(bg.try_wait().unwrap(), None);
    assert_eq!(bg.wait_timeout(Duration::from_millis(50)).unwrap(), None);
    // End of file on the terminal ends `cat`.
    bg.write_all(&[4]).unwrap();
    assert_eq!(bg.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(bg.try_wait().unwrap(), Some(ExitStatus::Exited(0)));
}

#[test]
fn kill_ends_the_session_and_reports_the_signal() {
    let _guard = shared();
    let mut bg = run_bg(["sh", "-c", "sleep 1000 & sleep 1000"], &Options::new()).unwrap();
    let sid = bg.pid().as_u32() as i32;
    assert_eq!(bg.kill().unwrap(), ExitStatus::Signaled(libc::SIGTERM));
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
    // Killing again, or signalling, is harmless once reaped.
    assert_eq!(bg.kill().unwrap(), ExitStatus::Signaled(libc::SIGTERM));
    bg.signal(libc::SIGTERM).unwrap();
}

#[test]
fn signals_reach_the_command() {
    let _guard = shared();
    let mut bg = run_bg("sleep 1000", &Options::new()).unwrap();
    bg.signal(libc::SIGUSR1).unwrap();
    assert_eq!(bg.wait().unwrap(), ExitStatus::Signaled(libc::SIGUSR1));
}

#[test]
fn dropping_a_running_command_kills_its_session() {
    let _guard = shared();
    let script = "sleep 1000 & echo ready; exec sleep 1000";
    let mut bg = run_bg(["sh", "-c", script], &Options::new()).unwrap();
    let sid = bg.pid().as_u32() as i32;
    let mut line = String::new();
    BufReader::new(&mut bg).read_line(&mut line).unwrap();
    assert_eq!(line, "ready\r\n");
    assert_eq!(live_in_session(sid).len(), 2);
    drop(bg);
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
    assert!(!alive(sid));
}

#[test]
fn the_window_can_be_resized() {
    let _guard = shared();
    let bg = run_bg("cat", &Options::new().window_size(30, 100)).unwrap();
    assert_eq!(bg.window_size().unwrap(), WindowSize { rows: 30, cols: 100 });
    bg.resize(40, 120).unwrap();
    assert_eq!(bg.window_size().unwrap(), WindowSize { rows: 40, cols: 120 });
    assert_eq!(bg.argv().as_slice(), ["cat"]);
}
