//! What a finished command gives back: `Output`, `ExitStatus`, and the `Pid` newtype.

use std::{borrow::Cow, fmt, time::Duration};

/// The result of a command that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// How the command ended.
    pub status: ExitStatus,
    /// Everything it wrote to its terminal, stdout and stderr merged in the order they
    /// were written, as the terminal delivers it (so `\n` arrives as `\r\n`). Empty when
    /// [`Options::keep_output`](crate::Options::keep_output) is off.
    pub output: Vec<u8>,
    /// From the start of the command to the end of its output and exit.
    pub duration: Duration,
}

impl Output {
    /// The output as text, with invalid UTF-8 replaced by `U+FFFD`.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.output)
    }

    /// The original's status code; see [`ExitStatus::legacy_code`].
    pub fn legacy_code(&self) -> i32 {
        self.status.legacy_code()
    }
}

/// How a process ended: it exited with a code, or a signal killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code (0 to 255).
    Exited(i32),
    /// It was killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// Decodes a raw `waitpid` status.
    pub(crate) fn from_raw(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled(_) => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled(signal) => Some(signal),
        }
    }

    /// The status as the original `ave.cmd.run` reported it: the exit byte read as a
    /// signed 8-bit value (0 to 127 as is, 128 to 255 as -128 to -1), and 0 for a death by
    /// signal. For callers ported from the original; new code should match on the enum.
    pub fn legacy_code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => i32::from((code & 0xff) as u8 as i8),
            ExitStatus::Signaled(_) => 0,
        }
    }

    /// The status as a shell reports it: the exit code, or 128 + N after signal N.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(signal) => match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => write!(f, "killed by signal {signal} ({name})"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

/// A process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(u32);

impl Pid {
    pub(crate) fn from_raw(pid: libc::pid_t) -> Pid {
        Pid(pid.unsigned_abs())
    }

    pub(crate) fn raw(self) -> libc::pid_t {
        // Pids are at most 2^22 on Linux.
        self.0 as libc::pid_t
    }

    /// The number, as `std::process::Child::id` gives it.
    pub fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_code_reads_the_exit_byte_as_signed() {
        let check = |status: ExitStatus, legacy: i32| assert_eq!(status.legacy_code(), legacy);
        check(ExitStatus::Exited(0), 0);
        check(ExitStatus::Exited(2), 2);
        check(ExitStatus::Exited(127), 127);
        check(ExitStatus::Exited(128), -128);
        check(ExitStatus::Exited(255), -1);
        check(ExitStatus::Signaled(9), 0);
    }

    #[test]
    fn raw_statuses_decode() {
        assert_eq!(ExitStatus::from_raw(0), ExitStatus::Exited(0));
        assert_eq!(ExitStatus::from_raw(2 << 8), ExitStatus::Exited(2));
        assert_eq!(ExitStatus::from_raw(255 << 8), ExitStatus::Exited(255));
        assert_eq!(ExitStatus::from_raw(9), ExitStatus::Signaled(9));
        // A core dump sets bit 7.
        assert_eq!(ExitStatus::from_raw(0x80 | 11), ExitStatus::Signaled(11));
    }

    #[test]
    fn shell_codes_and_display() {
        assert_eq!(ExitStatus::Signaled(15).shell_code(), 143);
        assert_eq!(ExitStatus::Exited(3).shell_code(), 3);
        assert_eq!(ExitStatus::Signaled(9).to_string(), "killed by signal 9 (SIGKILL)");
        assert_eq!(ExitStatus::Exited(3).to_string(), "exit code 3");
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Signaled(0).success());
    }
}
