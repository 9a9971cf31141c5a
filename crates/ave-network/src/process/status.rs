//! The status types of processes: [`Pid`], [`Signal`] and [`ExitStatus`].

use std::{fmt, io};

use nix::libc;

/// A process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(pub(crate) i32);

impl Pid {
    /// A pid from its number, if it is positive.
    pub fn from_raw(pid: i32) -> Option<Pid> {
        (pid > 0).then_some(Pid(pid))
    }

    /// The number.
    pub fn get(self) -> i32 {
        self.0
    }

    /// This process's pid.
    pub fn this() -> Pid {
        Pid(nix::unistd::getpid().as_raw())
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A signal, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(pub(crate) i32);

impl Signal {
    /// SIGHUP.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// SIGINT.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// SIGABRT.
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    /// SIGKILL.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// SIGUSR1: a hickup dump for AVE services.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// SIGSEGV.
    pub const SEGV: Signal = Signal(libc::SIGSEGV);
    /// SIGUSR2.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// SIGPIPE.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// SIGTERM: the default termination request and parent-death signal.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// SIGCHLD.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);

    /// A signal from its number, if it is one (1 to `SIGRTMAX`).
    pub fn new(number: i32) -> Option<Signal> {
        (1..=libc::SIGRTMAX()).contains(&number).then_some(Signal(number))
    }

    /// The number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The conventional name, such as `SIGTERM`, for the classic signals.
    pub fn name(self) -> Option<&'static str> {
        let name = match self.0 {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGCONT => "SIGCONT",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGTSTP => "SIGTSTP",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            libc::SIGSYS => "SIGSYS",
            _ => return None,
        };
        Some(name)
    }

    pub(crate) fn to_nix(self) -> io::Result<nix::sys::signal::Signal> {
        nix::sys::signal::Signal::try_from(self.0).map_err(io::Error::from)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// How a process ended.
///
/// The original returned the raw wait status (`256` for exit code 1, `9` for SIGKILL);
/// [`ExitStatus::raw`] still gives it, e.g. for the `joined_process` hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code (0 to 255).
    Exited(i32),
    /// It was killed by this signal.
    Signaled(Signal),
    /// It was killed by this signal and dumped core.
    CoreDumped(Signal),
}

impl ExitStatus {
    /// Decodes a raw wait status; `None` for a stopped or continued process.
    pub fn from_raw(raw: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(raw) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(raw)))
        } else if libc::WIFSIGNALED(raw) {
            let signal = Signal(libc::WTERMSIG(raw));
            Some(if libc::WCOREDUMP(raw) {
                ExitStatus::CoreDumped(signal)
            } else {
                ExitStatus::Signaled(signal)
            })
        } else {
            None
        }
    }

    /// The raw wait status, as `waitpid` reports it (and the original's `join` returned).
    pub fn raw(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled(signal) => signal.0,
            ExitStatus::CoreDumped(signal) => signal.0 | 0x80,
        }
    }

    /// The exit code, if it exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled(_) | ExitStatus::CoreDumped(_) => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(self) -> Option<Signal> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled(signal) | ExitStatus::CoreDumped(signal) => Some(signal),
        }
    }

    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited {code}"),
            ExitStatus::Signaled(signal) => write!(f, "killed by signal {signal}"),
            ExitStatus::CoreDumped(signal) => write!(f, "killed by signal {signal}, core dumped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_statuses_round_trip() {
        for (raw, status) in [
            (0, ExitStatus::Exited(0)),
            (256, ExitStatus::Exited(1)),
            (3840, ExitStatus::Exited(15)),
            (9, ExitStatus::Signaled(Signal::KILL)),
            (15, ExitStatus::Signaled(Signal::TERM)),
            (0x86, ExitStatus::CoreDumped(Signal::ABRT)),
        ] {
            assert_eq!(ExitStatus::from_raw(raw), Some(status), "{raw}");
            assert_eq!(status.raw(), raw);
        }
        // Stopped (0x137f = stopped by SIGSTOP) is not an end.
        assert_eq!(ExitStatus::from_raw(0x137f), None);
        assert_eq!(ExitStatus::Exited(3).to_string(), "exited 3");
        assert_eq!(ExitStatus::Signaled(Signal::TERM).to_string(), "killed by signal 15 (SIGTERM)");
        assert!(ExitStatus::Exited(0).success());
        assert_eq!(ExitStatus::Signaled(Signal::KILL).signal(), Some(Signal::KILL));
        assert_eq!(ExitStatus::Exited(2).code(), Some(2));
    }

    #[test]
    fn signals() {
        assert_eq!(Signal::new(15), Some(Signal::TERM));
        assert_eq!(Signal::new(0), None);
        assert_eq!(Signal::TERM.to_string(), "15 (SIGTERM)");
        assert_eq!(Signal::new(40).map(|s| s.to_string()).as_deref(), Some("40"));
    }
}
