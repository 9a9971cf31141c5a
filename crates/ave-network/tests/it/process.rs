//! `Process` in this harness, which runs several threads: what it must refuse and report
//! without forking. The scenarios that fork run in the `tests` package's fixtures
//! (`tests/e2e/process.rs`).

use std::sync::mpsc;

use ave_exceptions::{AveException, Kind, ProcessError};
use ave_network::{
    Error, Process,
    process::{ExitStatus, Signal},
};

#[test]
fn a_process_with_other_threads_is_not_forked() {
    // Make sure there is another thread, whatever the test runner does.
    let (tx, rx) = mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let mut p = Process::from_fn(|_| Ok(())).name("ave-refused");
    let e = p.start(false, true).unwrap_err();
    let Error::Threaded { name, threads } = &e else { panic!("{e:?}") };
    assert_eq!(name, "ave-refused");
    assert!(*threads >= 1, "{threads}");
    let message = e.to_string();
    assert!(message.starts_with("refusing to fork ave-refused: this process runs "), "{message}");
    assert!(message.contains("fork is only sound in a single-threaded process"), "{message}");
    assert!(message.contains("Process::allow_threads"), "{message}");
    // Nothing was started.
    assert_eq!(p.pid().unwrap_err().to_string(), "process PID is not known");
    drop(tx);
    other.join().unwrap();
}

#[test]
fn a_name_with_a_nul_byte_is_refused_before_anything_happens() {
    let mut p = Process::from_fn(|_| Ok(())).name("ave-\0x");
    let e = p.start(false, false).unwrap_err();
    assert!(
        matches!(&e, Error::BadArgument { what: "process name", value, .. } if value == "ave-\0x"),
        "{e:?}"
    );
    assert!(e.to_string().contains("NUL byte"), "{e}");
}

fn process_error(e: Error) -> ProcessError {
    match e {
        Error::Process(p) => p,
        other => panic!("not a process error: {other:?}"),
    }
}

#[test]
fn an_unstarted_process_answers_with_the_originals_errors() {
    let mut p = Process::from_fn(|_| Ok(()));
    let cases = [
        (p.pid().map(|_| ()), "Unstarted", "process PID is not known"),
        (p.is_alive().map(|_| ()), "Unstarted", "cannot join unstarted process"),
        (p.kill(Signal::TERM), "Unstarted", "cannot terminate unstarted process"),
        (p.terminate(), "Unstarted", "cannot terminate unstarted process"),
    ];
    for (result, kind, message) in cases {
        let e = process_error(result.unwrap_err());
        assert_eq!((e.type_name(), e.message()), (kind, message));
    }
    let e = process_error(p.join(None).unwrap_err());
    assert_eq!((e.type_name(), e.message()), ("Unstarted", "cannot join unstarted process"));
    let e = process_error(p.join_nohang().unwrap_err());
    assert_eq!(e.message(), "cannot join unstarted process");
    assert_eq!(p.status(), None);
}

#[test]
fn process_errors_and_timeouts_cross_the_wire_as_the_originals() {
    let wire = AveException::from(Error::from(ProcessError::Unwaitable(
        "target process is not a child".to_owned(),
    )));
    assert_eq!(wire.type_name(), "Unwaitable");
    assert_eq!(wire.message(), "target process is not a child");
    let wire = AveException::from(Error::Timeout("timed out".to_owned()));
    assert_eq!(wire.kind(), Kind::Timeout);
    assert_eq!(wire.message(), "timed out");
}

#[test]
fn exit_statuses_keep_the_raw_wait_status() {
    // The original's join returned these raw statuses (spec 5.9).
    for (raw, text) in [
        (0, "exited 0"),
        (256, "exited 1"),
        (512, "exited 2"),
        (3840, "exited 15"),
        (9, "killed by signal 9 (SIGKILL)"),
        (15, "killed by signal 15 (SIGTERM)"),
    ] {
        let status = ExitStatus::from_raw(raw).unwrap();
        assert_eq!(status.to_string(), text);
        assert_eq!(status.raw(), raw);
    }
}
