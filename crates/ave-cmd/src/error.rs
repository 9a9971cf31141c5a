//! `Error`: why a command did not run to its end, and its wire form.

use std::{io, path::PathBuf};

use ave_exceptions::AveException;
use serde_json::Value;

use crate::ExitStatus;

/// Why a command did not run to its end.
///
/// Convert it into an [`AveException`] (`From`) to report it the way the original did:
/// [`Error::Timeout`] becomes a `Timeout` with `cmd`, `out` and the message
/// `command timed out`; everything else becomes a `RunError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command has no arguments at all.
    #[error("empty command")]
    EmptyCommand,

    /// The command ran longer than its timeout. Its whole session has been ended and the
    /// command reaped.
    #[error("command timed out")]
    Timeout {
        /// The command.
        cmd: Vec<String>,
        /// What it wrote before it was ended.
        output: Vec<u8>,
        /// How the command ended once it was signalled.
        status: ExitStatus,
    },

    /// The program could not be executed: not found (`ENOENT`), not executable
    /// (`EACCES`), not a valid executable (`ENOEXEC`), ... Nothing ran.
    #[error("cannot execute `{program}`: {}", os_text(error))]
    Exec {
        /// The command.
        cmd: Vec<String>,
        /// The program as given.
        program: String,
        /// The operating system's error.
        error: io::Error,
    },

    /// The working directory could not be entered. Nothing ran.
    #[error("cannot change to directory {}: {}", path.display(), os_text(error))]
    Cwd {
        /// The command.
        cmd: Vec<String>,
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        error: io::Error,
    },

    /// Writing to the output sink failed. The command's session has been ended and the
    /// command reaped.
    #[error("writing the output of `{}` failed", cmd.join(" "))]
    Sink {
        /// The command.
        cmd: Vec<String>,
        /// What it wrote before it was ended.
        output: Vec<u8>,
        /// The sink's error.
        #[source]
        source: io::Error,
    },

    /// A system call of the runner failed (allocating the pty, polling, reading).
    #[error("{operation} failed for `{}`", cmd.join(" "))]
    Os {
        /// The command.
        cmd: Vec<String>,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The command, when the error concerns one.
    pub fn cmd(&self) -> &[String] {
        match self {
            Error::EmptyCommand => &[],
            Error::Timeout { cmd, .. }
            | Error::Exec { cmd, .. }
            | Error::Cwd { cmd, .. }
            | Error::Sink { cmd, .. }
            | Error::Os { cmd, .. } => cmd,
        }
    }

    /// The output the command wrote before it failed (empty if it never ran).
    pub fn output(&self) -> &[u8] {
        match self {
            Error::Timeout { output, .. } | Error::Sink { output, .. } => output,
            _ => &[],
        }
    }

    /// Whether the program was not found (`ENOENT`); a shell reports this as 127 and
    /// other failures to execute as 126.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Exec { error, .. } if error.kind() == io::ErrorKind::NotFound)
    }

    /// The message of the original's `RunError` for a failed `execvp` or `chdir`, as
    /// Python formats an `OSError`: `os.execvp() failed: [Errno 2] No such file or
    /// directory`.
    fn exec_message(error: &io::Error) -> String {
        match error.raw_os_error() {
            Some(n) => format!("os.execvp() failed: [Errno {n}] {}", os_text(error)),
            None => format!("os.execvp() failed: {error}"),
        }
    }
}

/// The wire form of the error, as the original raised it.
impl From<Error> for AveException {
    #[track_caller]
    fn from(error: Error) -> AveException {
        let message = ave_exceptions::error_chain(&error);
        match error {
            Error::Timeout { cmd, output, .. } => AveException::timeout("command timed out")
                .with_field("cmd", Value::from(cmd))
                .with_field("out", Value::from(String::from_utf8_lossy(&output).into_owned())),
            Error::Exec { cmd, error, .. } | Error::Cwd { cmd, error, .. } => {
                AveException::run_error(cmd, "", Error::exec_message(&error))
            }
            Error::Sink { cmd, output, .. } => {
                AveException::run_error(cmd, String::from_utf8_lossy(&output), message)
            }
            Error::EmptyCommand | Error::Os { .. } => {
                let cmd = error.cmd().to_vec();
                AveException::run_error(cmd, "", message)
            }
        }
    }
}

/// The operating system's text for an error, without Rust's `(os error N)` suffix.
pub(crate) fn os_text(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_owned(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use ave_exceptions::Kind;
    use serde_json::json;

    use super::*;

    #[test]
    fn timeout_has_the_original_details() {
        let error = Error::Timeout {
            cmd: vec!["sleep".into(), "10".into()],
            output: b"so far\r\n".to_vec(),
            status: ExitStatus::Signaled(15),
        };
        assert_eq!(error.to_string(), "command timed out");
        let wire = AveException::from(error);
        assert_eq!(wire.kind(), Kind::Timeout);
        assert_eq!(wire.message(), "command timed out");
        assert_eq!(wire.field("cmd"), Some(&json!(["sleep", "10"])));
        assert_eq!(wire.field("out"), Some(&json!("so far\r\n")));
        assert_eq!(wire.field("type"), Some(&json!("Timeout")));
    }

    #[test]
    fn exec_failure_is_a_run_error_with_the_os_text() {
        let error = Error::Exec {
            cmd: vec!["nosuch".into()],
            program: "nosuch".into(),
            error: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(error.is_not_found());
        assert_eq!(error.to_string(), "cannot execute `nosuch`: No such file or directory");
        let wire = AveException::from(error);
        assert_eq!(wire.kind(), Kind::RunError);
        assert_eq!(wire.message(), "os.execvp() failed: [Errno 2] No such file or directory");
        assert_eq!(wire.field("cmd"), Some(&json!(["nosuch"])));
        assert_eq!(wire.field("out"), Some(&json!("")));
        assert_eq!(wire.field("ptyout"), Some(&json!("")));
    }

    #[test]
    fn os_errors_carry_their_cause_once() {
        let error = Error::Os {
            cmd: vec!["x".into()],
            operation: "allocating a pty",
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(error.to_string(), "allocating a pty failed for `x`");
        let wire = AveException::from(error);
        assert!(wire.message().ends_with("No space left on device (os error 28)"), "{wire:?}");
    }
}
