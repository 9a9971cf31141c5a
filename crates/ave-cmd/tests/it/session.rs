//! Timeouts and the end of a run end the whole session, whatever its processes do with
//! `SIGHUP` and `SIGTERM`; a daemon that left the session survives.

use std::{
    fs,
    io::{BufRead, BufReader},
    time::Duration,
};

use ave_cmd::{Error, ExitStatus, Options, run, run_bg};

use crate::{TempDir, alive, first_number, lines, live_in_session, shared};

/// A Python program that ignores `SIGHUP` and `SIGTERM`, forks a child into another
/// process group of the same session (which ignores them too), prints both pids and
/// `ready`, and waits forever.
const STUBBORN: &str = r#"
import os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.write(w, b"x")
    while True:
        signal.pause()
os.read(r, 1)
print(os.getpid(), pid, "ready", flush=True)
while True:
    signal.pause()
"#;

#[test]
fn a_timeout_leaves_no_survivor() {
    let _guard = shared();
    let options = Options::new().timeout(Duration::from_millis(500));
    let mut bg = run_bg(["sh", "-c", "echo $$; sleep 1000 & sleep 1000"], &options).unwrap();
    // The session id, read before the timeout is waited for, however loaded the machine.
    let sid = read_number(&mut bg);
    assert_eq!(sid, bg.pid().as_u32() as i32);
    let error = bg.output().unwrap_err();
    let Error::Timeout { status, .. } = &error else { panic!("{error:?}") };
    assert_eq!(*status, ExitStatus::Signaled(libc::SIGTERM));
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
}

/// Reads the first line of a command's output as a number.
fn read_number(bg: &mut ave_cmd::Background) -> i32 {
    let mut line = String::new();
    BufReader::new(bg).read_line(&mut line).unwrap();
    line.trim().parse().unwrap()
}

#[test]
fn a_timeout_ends_processes_that_ignore_hup_and_term() {
    let _guard = shared();
    let options =
        Options::new().timeout(Duration::from_secs(20)).kill_grace(Duration::from_millis(200));
    let mut bg = run_bg(["python3", "-c", STUBBORN], &options).unwrap();
    let sid = bg.pid().as_u32() as i32;
    let mut line = String::new();
    BufReader::new(&mut bg).read_line(&mut line).unwrap();
    assert!(line.trim_end().ends_with("ready"), "{line:?}");
    let child: i32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(live_in_session(sid).len(), 2);

    // `kill` ends the session: SIGTERM is ignored, SIGKILL after the grace is not.
    let status = bg.kill().unwrap();
    assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
    assert!(!alive(child));
}

#[test]
fn the_timeout_path_ends_stubborn_processes_too() {
    let _guard = shared();
    let options =
        Options::new().timeout(Duration::from_millis(1500)).kill_grace(Duration::from_millis(100));
    let mut bg = run_bg(["python3", "-c", STUBBORN], &options).unwrap();
    let sid = bg.pid().as_u32() as i32;
    let mut line = String::new();
    BufReader::new(&mut bg).read_line(&mut line).unwrap();
    assert!(line.trim_end().ends_with("ready"), "{line:?}");
    let error = bg.output().unwrap_err();
    let Error::Timeout { status, .. } = error else { panic!("{error:?}") };
    assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
}

#[test]
fn what_the_command_leaves_in_its_session_is_ended_when_it_exits() {
    let _guard = shared();
    // The background job ignores SIGHUP, so the kernel's hangup does not end it; it would
    // print `late` if it lived.
    let script = "echo $$; (trap '' HUP; sleep 1000; echo late) & exit 5";
    let out = run(["sh", "-c", script], &Options::new()).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(5));
    let sid = first_number(&out.output);
    assert!(!lines(&out.output).contains("late"));
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
}

#[test]
fn the_exit_status_is_real_when_the_end_of_output_comes_first() {
    let _guard = shared();
    // The command closes its terminal, then exits later with 7.
    let script = "echo bye; exec >/dev/null 2>&1 </dev/null; sleep 0.2; exit 7";
    let out = run(["sh", "-c", script], &Options::new()).unwrap();
    assert_eq!(out.output, b"bye\r\n");
    assert_eq!(out.status, ExitStatus::Exited(7));
}

/// A Python program that daemonizes properly (fork, setsid, fork, stdio to /dev/null),
/// has the daemon write its pid to the file named by argv[1], and exits once it has.
const DAEMONIZE: &str = r#"
import os, sys, signal
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with open(sys.argv[1], "w") as f:
            f.write(str(os.getpid()))
        os.write(w, b"x")
        while True:
            signal.pause()
    os._exit(0)
os.read(r, 1)
print("started")
"#;

#[test]
fn a_daemon_that_left_the_session_survives() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let pid_file = dir.path().join("daemon.pid");
    let bg = run_bg(
        ["python3", "-c", DAEMONIZE, pid_file.to_str().unwrap()],
        &Options::new().timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let sid = bg.pid().as_u32() as i32;
    let out = bg.output().unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(lines(&out.output), "started\n");
    let daemon: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let survived = alive(daemon);
    // Clean up before asserting.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon), nix::sys::signal::SIGKILL);
    assert!(survived, "the daemon {daemon} was killed");
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
}

/// A daemon that left the session but kept the terminal open cannot make a run hang:
/// reading stops after the linger time.
#[test]
fn a_daemon_holding_the_terminal_does_not_hang_the_run() {
    let _guard = shared();
    let script = r#"
import os, signal
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setsid()
    os.write(w, b"x")
    while True:
        signal.pause()
os.read(r, 1)
print(pid)
"#;
    let options = Options::new().linger(Duration::from_millis(100));
    let out = run(["python3", "-c", script], &options).unwrap();
    let daemon = first_number(&out.output);
    let survived = alive(daemon);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon), nix::sys::signal::SIGKILL);
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert!(survived);
}

/// A session that keeps forking while it is being ended, whose processes all ignore
/// `SIGHUP` and `SIGTERM`: every round of the kill finds the newcomers.
#[test]
fn a_session_that_keeps_forking_is_ended() {
    let _guard = shared();
    let script = "trap '' HUP TERM; echo $$; while :; do sleep 1000 & done";
    let options =
        Options::new().timeout(Duration::from_millis(300)).kill_grace(Duration::from_millis(100));
    let mut bg = run_bg(["sh", "-c", script], &options).unwrap();
    let sid = read_number(&mut bg);
    let error = bg.output().unwrap_err();
    let Error::Timeout { status, .. } = &error else { panic!("{error:?}") };
    assert_eq!(*status, ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(live_in_session(sid), Vec::<i32>::new());
}

/// A command that floods the terminal still times out, and a flooding process left
/// behind is still ended when the command exits.
#[test]
fn flooding_output_does_not_hide_the_timeout_or_the_exit() {
    let _guard = shared();
    let options = Options::new().keep_output(false).timeout(Duration::from_millis(200));
    assert!(matches!(run("yes", &options), Err(Error::Timeout { .. })));
    let options = Options::new().keep_output(false).timeout(Duration::from_secs(30));
    let out = run(["sh", "-c", "trap '' HUP; yes & exit 6"], &options).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(6));
}
