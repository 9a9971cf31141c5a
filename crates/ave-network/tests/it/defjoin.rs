//! Deferred joins in a `Control` running in this harness (defjoin t2 and t3, scaled):
//! children spawned with `std::process::Command`, reaped from the event loop through
//! pidfds, with the `joined_process` hook. The fork-based scenarios (a Control serving
//! in a child, deferring its own children) are in `tests/e2e/process.rs`.

use std::{
    process::{Child, Command},
    sync::{Mutex, mpsc},
    time::Duration,
};

use ave_network::{
    Control, Process, Service,
    process::{ExitStatus, Pid, Signal},
};

use crate::Server;

/// A server whose `joined_process` hook reports to a channel.
fn server() -> (Server, mpsc::Receiver<(Pid, ExitStatus)>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let service = Service::builder("reaper")
        .on_joined_process(move |_, pid, status| {
            let _ = tx.lock().unwrap().send((pid, status));
        })
        .build();
    (Server::start(service, |b| b), rx)
}

/// Children that the server's deferred joins reap (their `Child` values are dropped
/// without a wait on purpose).
fn spawn(n: usize, program: &[&str]) -> Vec<Pid> {
    (0..n).map(|_| pid_of(&Command::new(program[0]).args(&program[1..]).spawn().unwrap())).collect()
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap()
}

fn is_in_proc(pid: Pid) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_hundred_children_are_reaped_as_they_end() {
    let (server, joined) = server();
    let children = spawn(100, &["sleep", "30"]);
    for child in &children {
        server.handle.join_later_pid(*child).unwrap();
    }
    assert_eq!(server.handle.deferred_joins().len(), 100);
    // Nothing ends, nothing is reaped.
    assert!(joined.recv_timeout(Duration::from_millis(50)).is_err());
    for child in &children {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.get()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let mut reaped = Vec::new();
    for _ in 0..100 {
        let (pid, status) = joined.recv_timeout(Duration::from_secs(3)).expect("a join in time");
        assert_eq!(status, ExitStatus::Signaled(Signal::KILL));
        assert_eq!(status.raw(), 9);
        reaped.push(pid);
    }
    reaped.sort_unstable();
    let mut expected = children.clone();
    expected.sort_unstable();
    assert_eq!(reaped, expected);
    assert!(server.handle.deferred_joins().is_empty());
    // Reaped: no zombie left behind.
    assert!(expected.iter().all(|p| !is_in_proc(*p)), "a child is still in /proc");
}

#[test]
fn a_duplicate_deferral_is_joined_once() {
    let (server, joined) = server();
    let pid = spawn(1, &["sleep", "30"])[0];
    server.handle.join_later_pid(pid).unwrap();
    server.handle.join_later_pid(pid).unwrap();
    assert_eq!(server.handle.deferred_joins(), vec![pid, pid]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.get()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (first, status) = joined.recv_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!((first, status), (pid, ExitStatus::Signaled(Signal::TERM)));
    // The duplicate is dropped with an error line, not reported again.
    assert!(joined.recv_timeout(Duration::from_millis(200)).is_err());
    let left = server.handle.deferred_joins();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn exit_codes_reach_the_hook_with_their_raw_status() {
    let (server, joined) = server();
    let child = spawn(1, &["sh", "-c", "exit 3"])[0];
    server.handle.join_later_pid(child).unwrap();
    let (_, status) = joined.recv_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    assert_eq!(status.raw(), 768);
}

#[test]
fn invalid_deferrals_are_refused() {
    let (server, _joined) = server();
    let h = &server.handle;
    let message = |r: Result<(), ave_network::Error>| r.unwrap_err().to_string();
    assert_eq!(
        message(h.join_later(&Process::from_fn(|_| Ok(())))),
        "cannot join unstarted process"
    );
    let own = h.join_later_pid(Pid::this()).unwrap_err();
    assert!(matches!(own, ave_network::Error::JoinSelf), "{own:?}");
    assert_eq!(own.to_string(), "cannot defer join of self");
    assert_eq!(
        message(h.join_later_pid(Pid::from_raw(1).unwrap())),
        "target process is not a child"
    );
    assert_eq!(
        message(h.join_later_pid(Pid::from_raw(i32::MAX - 1).unwrap())),
        "target process is not a child"
    );
    assert!(h.deferred_joins().is_empty());
}

#[test]
fn deferrals_made_before_the_loop_runs_are_kept() {
    let (tx, joined) = mpsc::channel();
    let tx = Mutex::new(tx);
    let service = Service::builder("early")
        .on_joined_process(move |_, pid, status| {
            let _ = tx.lock().unwrap().send((pid, status));
        })
        .build();
    let control = Control::builder(service).build().unwrap();
    let child = spawn(1, &["true"])[0];
    control.handle().join_later_pid(child).unwrap();
    let _server = Server::run(control);
    let (pid, status) = joined.recv_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!((pid, status), (child, ExitStatus::Exited(0)));
}
