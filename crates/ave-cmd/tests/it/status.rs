//! Exit statuses, signal deaths, and commands that cannot start.

use std::{fs, os::unix::fs::PermissionsExt};

use ave_cmd::{Error, ExitStatus, Options, run, run_bg};
use ave_exceptions::{AveException, Kind};
use serde_json::json;

use crate::{TempDir, children, exclusive, open_fds, shared};

fn status_of(script: &str) -> ExitStatus {
    run(["sh", "-c", script], &Options::new()).unwrap().status
}

#[test]
fn exit_codes_are_reported_as_they_are() {
    let _guard = shared();
    for code in [0, 1, 2, 127, 128, 255] {
        let status = status_of(&format!("exit {code}"));
        assert_eq!(status, ExitStatus::Exited(code));
        assert_eq!(status.code(), Some(code));
        assert_eq!(status.signal(), None);
    }
}

#[test]
fn legacy_codes_read_the_exit_byte_as_signed() {
    let _guard = shared();
    assert_eq!(status_of("exit 0").legacy_code(), 0);
    assert_eq!(status_of("exit 2").legacy_code(), 2);
    assert_eq!(status_of("exit 255").legacy_code(), -1);
    assert_eq!(status_of("exit 128").legacy_code(), -128);
}

#[test]
fn signal_deaths_are_distinct_from_exit_codes() {
    let _guard = shared();
    for signal in [libc::SIGKILL, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1] {
        let status = status_of(&format!("kill -{signal} $$"));
        assert_eq!(status, ExitStatus::Signaled(signal));
        assert_eq!(status.code(), None);
        assert_eq!(status.signal(), Some(signal));
        assert_eq!(status.shell_code(), 128 + signal);
        // The original reported 0 for every death by signal.
        assert_eq!(status.legacy_code(), 0);
    }
}

#[test]
fn a_missing_program_is_reported_by_the_parent() {
    let _guard = shared();
    let error = run("this-program-does-not-exist --flag", &Options::new()).unwrap_err();
    let Error::Exec { cmd, program, error: os } = &error else { panic!("{error:?}") };
    assert_eq!(cmd, &["this-program-does-not-exist", "--flag"]);
    assert_eq!(program, "this-program-does-not-exist");
    assert_eq!(os.raw_os_error(), Some(libc::ENOENT));
    assert!(error.is_not_found());
    assert!(error.to_string().contains("No such file or directory"), "{error}");
    let wire = AveException::from(error);
    assert_eq!(wire.kind(), Kind::RunError);
    assert!(wire.message().contains("No such file or directory"), "{wire:?}");
    assert_eq!(wire.field("cmd"), Some(&json!(["this-program-does-not-exist", "--flag"])));

    // An absolute path that does not exist fails in the child's exec, and is reported all
    // the same.
    let error = run("/nonexistent/program", &Options::new()).unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
}

#[test]
fn a_program_that_cannot_be_executed_is_not_a_missing_one() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let script = dir.path().join("not-executable");
    fs::write(&script, "#!/bin/sh\necho no\n").unwrap();
    let error = run([script.to_str().unwrap()], &Options::new()).unwrap_err();
    let Error::Exec { error: os, .. } = &error else { panic!("{error:?}") };
    assert_eq!(os.raw_os_error(), Some(libc::EACCES));
    assert!(!error.is_not_found());

    // Made executable, it runs.
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(run([script.to_str().unwrap()], &Options::new()).unwrap().output, b"no\r\n");

    // A file that is executable but not a program: ENOEXEC.
    let junk = dir.path().join("junk");
    fs::write(&junk, [0u8, 1, 2, 3]).unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o755)).unwrap();
    let error = run([junk.to_str().unwrap()], &Options::new()).unwrap_err();
    let Error::Exec { error: os, .. } = &error else { panic!("{error:?}") };
    assert_eq!(os.raw_os_error(), Some(libc::ENOEXEC));
}

#[test]
fn a_missing_working_directory_is_its_own_error() {
    let _guard = shared();
    let error = run("true", &Options::new().cwd("/nonexistent/dir")).unwrap_err();
    let Error::Cwd { path, error: os, .. } = &error else { panic!("{error:?}") };
    assert_eq!(path.to_str(), Some("/nonexistent/dir"));
    assert_eq!(os.raw_os_error(), Some(libc::ENOENT));
    let error = run("true", &Options::new().cwd("/etc/passwd")).unwrap_err();
    assert!(
        matches!(&error, Error::Cwd { error, .. } if error.raw_os_error() == Some(libc::ENOTDIR))
    );
    // The wire form is the original's RunError for a failed chdir.
    let wire = AveException::from(error);
    assert_eq!(wire.kind(), Kind::RunError);
    assert!(wire.message().starts_with("os.execvp() failed: [Errno 20]"), "{wire:?}");
}

#[test]
fn an_empty_command_is_refused() {
    let _guard = shared();
    assert!(matches!(run("   ", &Options::new()), Err(Error::EmptyCommand)));
    assert!(matches!(run(Vec::<String>::new(), &Options::new()), Err(Error::EmptyCommand)));
    assert!(matches!(run_bg("", &Options::new()), Err(Error::EmptyCommand)));
}

#[test]
fn arguments_with_nul_bytes_are_refused() {
    let _guard = shared();
    let error = run(["echo", "a\0b"], &Options::new()).unwrap_err();
    assert!(matches!(error, Error::Exec { .. }), "{error:?}");
}

/// Failures to start leave nothing behind either.
#[test]
fn failures_to_start_leak_nothing() {
    let _guard = exclusive();
    let fds = open_fds();
    for _ in 0..200 {
        run("this-program-does-not-exist", &Options::new()).unwrap_err();
        run("/nonexistent/program", &Options::new()).unwrap_err();
        run("true", &Options::new().cwd("/nonexistent")).unwrap_err();
    }
    assert_eq!(open_fds(), fds);
    assert_eq!(children(), Vec::<i32>::new());
}
