//! The error type of this crate.

use std::{io, path::PathBuf};

use ave_exceptions::{AveException, NetworkError, ProcessError};

/// Everything that can go wrong on a connection, in a handshake, a call or a server.
///
/// The conditions the original reports as `ave.network.exceptions` (closed, timed out,
/// refused) are [`Error::Network`]; an exception raised by a remote service is
/// [`Error::Remote`], rebuilt as the original client rebuilds it. Both convert into an
/// [`AveException`], so a service relaying a call can use `?`.
///
/// Every other condition a caller can act on has a variant of its own, with the values
/// to act on as fields ([`Error::NoSuchConnection`] names the connection,
/// [`Error::PidFileExists`] the pid file, ...). Where the original has a text for the
/// condition (`connection already has authkey`, `pid file <path> exist`), the message is
/// that text, byte for byte.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connection-level condition: `ConnectionClosed`, `ConnectionTimeout`,
    /// `ConnectionRefused`, ... with the original's messages.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The remote service answered with an exception.
    #[error(transparent)]
    Remote(AveException),
    /// A frame header announced more bytes than the configured limit allows. Nothing of
    /// that size was allocated.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The length the header announced.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The peer broke the protocol: a challenge without the `#CHALLENGE#` prefix, an
    /// authentication verdict or a response that is not what the protocol says.
    #[error("{0}")]
    Protocol(String),
    /// An operating-system error, with what was being done.
    #[error("{context}")]
    Io {
        /// What failed, such as `bind 127.0.0.1:4000`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A `Control` has no connection of that id, or the connection ended before the
    /// operation on it could complete.
    #[error("no such connection: connection #{id}")]
    NoSuchConnection {
        /// The connection's number (`ConnectionId::get`).
        id: u64,
    },
    /// The connection has not finished its handshake (the original's
    /// `not established: ...`).
    #[error("not established: connection #{id}")]
    NotEstablished {
        /// The connection's number (`ConnectionId::get`).
        id: u64,
    },
    /// The connection already has a key (the original's `connection already has
    /// authkey`): a key is given once.
    #[error("connection already has authkey")]
    AlreadyAuthenticated {
        /// The connection's number (`ConnectionId::get`).
        id: u64,
    },
    /// The server is shutting down or has stopped, so it takes no new connection,
    /// listener or deferred join.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A `Control` was asked to defer the join of its own process (the original's
    /// `cannot defer join of self`).
    #[error("cannot defer join of self")]
    JoinSelf,
    /// A hickup dump has nowhere to go: no home directory was configured and `HOME` is
    /// not set.
    #[error("no home directory for hickup dumps: set ControlBuilder::home or HOME")]
    NoHome,
    /// A `Process` was started a second time: a process starts once.
    #[error("{name} was already started: a Process starts once")]
    AlreadyStarted {
        /// The process's name.
        name: String,
    },
    /// A fork was refused because other threads run in this process, and fork is only
    /// sound in a single-threaded one.
    #[error(
        "refusing to fork {name}: this process runs {threads} other thread(s), and fork is \
         only sound in a single-threaded process (start processes before building a \
         multi-threaded runtime or spawning threads, serve from a current-thread runtime, \
         or opt in with Process::allow_threads)"
    )]
    Threaded {
        /// The name of the process that was not started.
        name: String,
        /// How many other threads were running.
        threads: usize,
    },
    /// A daemon's pid file names a live process, so the daemon is not started again (the
    /// original's text, `pid file <path> exist`).
    #[error("pid file {} exist", path.display())]
    PidFileExists {
        /// The pid file.
        path: PathBuf,
    },
    /// A daemon has no pid file to restart or stop it by (the original's `pid file
    /// <path> does not exist`).
    #[error("pid file {} does not exist", path.display())]
    NoPidFile {
        /// The pid file that was looked for.
        path: PathBuf,
    },
    /// A daemon's pid file exists but holds no pid.
    #[error("pid file {} holds no pid", path.display())]
    BadPidFile {
        /// The pid file.
        path: PathBuf,
    },
    /// A process was sent SIGTERM, then SIGKILL, and is still there.
    #[error("process {pid} did not end after SIGKILL")]
    Unkillable {
        /// The process.
        pid: i32,
    },
    /// A text that is not an address `HOST:PORT` (an IPv6 host in brackets).
    #[error("invalid address {text:?} (expected HOST:PORT)")]
    BadAddress {
        /// The text as given.
        text: String,
    },
    /// An argument or setting out of its domain: a digest policy, a port range, a
    /// process, socket or descriptor name, a buffer length.
    #[error("invalid {what} {value:?} (expected {expected})")]
    BadArgument {
        /// Which argument, such as `digest policy`.
        what: &'static str,
        /// The value given, as text.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// More descriptors than one message can carry.
    #[error("{count} descriptors in one message; at most {max} fit")]
    TooManyFds {
        /// How many were given.
        count: usize,
        /// The most one message carries (`fdtx::MAX_FDS`).
        max: usize,
    },
    /// A variable of the service manager's environment (`NOTIFY_SOCKET`, `LISTEN_PID`,
    /// `LISTEN_FDS`) holds something unusable.
    #[error("{name} {value:?}: {reason}")]
    BadEnvironment {
        /// The variable.
        name: &'static str,
        /// Its value (lossily decoded).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
        /// The system's error, when it gave one.
        #[source]
        source: Option<io::Error>,
    },
    /// The process on the other end of a handover socket runs as another user (and not
    /// as root).
    #[error("handover peer pid {pid} runs as uid {uid}, not {expected}")]
    ForeignPeer {
        /// The peer's pid.
        pid: i32,
        /// The peer's user id.
        uid: u32,
        /// This process's effective user id.
        expected: u32,
    },
    /// Call arguments could not be encoded as JSON.
    #[error("cannot encode the call arguments as JSON")]
    Encode(#[source] serde_json::Error),
    /// A process could not be joined or signalled: `Unstarted`, `Unwaitable`,
    /// `Unjoinable`, `Unknown`, with the original's messages.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A wait ran out of time (the original's `Timeout`, `timed out`), e.g.
    /// `Process::join` with a timeout.
    #[error("{0}")]
    Timeout(String),
    /// A child process did not come up: it ended, failed or timed out before it reported
    /// that it was initialized (the message says which, with its exit status).
    #[error("{0}")]
    Start(String),
}

impl Error {
    /// The connection-level condition, if this is one.
    pub fn network(&self) -> Option<&NetworkError> {
        match self {
            Error::Network(e) => Some(e),
            _ => None,
        }
    }

    /// The remote exception, if the service raised one.
    pub fn remote(&self) -> Option<&AveException> {
        match self {
            Error::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is `ConnectionTimeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Network(NetworkError::Timeout(_)))
    }

    /// Whether this is `ConnectionClosed`.
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Network(NetworkError::Closed(_)))
    }

    /// Whether this is `ConnectionRefused`.
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::Network(NetworkError::Refused(_)))
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

impl From<Error> for AveException {
    /// The wire form of an error: a remote exception as it was received, a network
    /// condition under its original class name, anything else as a plain `Exception`
    /// whose message includes the cause.
    #[track_caller]
    fn from(e: Error) -> AveException {
        match e {
            Error::Remote(remote) => remote,
            Error::Network(network) => network.into(),
            Error::Process(process) => process.into(),
            Error::Timeout(message) => AveException::timeout(message),
            other => AveException::custom("Exception", ave_exceptions::error_chain(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use ave_exceptions::Kind;

    use super::*;

    #[test]
    fn wire_forms() {
        let e: AveException = Error::Network(NetworkError::refused()).into();
        assert_eq!(e.type_name(), "ConnectionRefused");
        let remote = AveException::timeout("t");
        let e: AveException = Error::Remote(remote.clone()).into();
        assert_eq!(e, remote);
        assert_eq!(e.kind(), Kind::Timeout);
        let io = Error::io("bind 127.0.0.1:1", io::Error::from(io::ErrorKind::AddrInUse));
        let e: AveException = io.into();
        assert_eq!(e.type_name(), "Exception");
        assert!(e.message().starts_with("bind 127.0.0.1:1: "), "{}", e.message());
    }

    #[test]
    fn named_errors_cross_the_wire_with_the_originals_texts() {
        let e: AveException = Error::AlreadyAuthenticated { id: 3 }.into();
        assert_eq!(e.type_name(), "Exception");
        assert_eq!(e.message(), "connection already has authkey");
        let e: AveException = Error::NotEstablished { id: 3 }.into();
        assert_eq!(e.message(), "not established: connection #3");
        let e: AveException = Error::PidFileExists { path: PathBuf::from("/run/d.pid") }.into();
        assert_eq!(e.message(), "pid file /run/d.pid exist");
        let e: AveException = Error::NoPidFile { path: PathBuf::from("/run/d.pid") }.into();
        assert_eq!(e.message(), "pid file /run/d.pid does not exist");
        let e: AveException = Error::JoinSelf.into();
        assert_eq!(e.message(), "cannot defer join of self");
    }

    #[test]
    fn a_cause_is_named_once() {
        let with = Error::BadEnvironment {
            name: "NOTIFY_SOCKET",
            value: "/x".to_owned(),
            reason: "not a socket address",
            source: Some(io::Error::other("path too long")),
        };
        assert_eq!(with.to_string(), "NOTIFY_SOCKET \"/x\": not a socket address");
        assert_eq!(
            ave_exceptions::error_chain(&with),
            "NOTIFY_SOCKET \"/x\": not a socket address: path too long"
        );
        let without = Error::BadEnvironment {
            name: "LISTEN_FDS",
            value: "x".to_owned(),
            reason: "not a number",
            source: None,
        };
        assert!(std::error::Error::source(&without).is_none());
        assert_eq!(ave_exceptions::error_chain(&without), "LISTEN_FDS \"x\": not a number");
    }

    #[test]
    fn predicates() {
        assert!(Error::Network(NetworkError::timeout()).is_timeout());
        assert!(Error::Network(NetworkError::closed()).is_closed());
        assert!(Error::Network(NetworkError::refused()).is_refused());
        assert!(!Error::Protocol("x".into()).is_timeout());
        assert_eq!(
            Error::FrameTooLarge { len: 10, max: 5 }.to_string(),
            "frame of 10 bytes exceeds the limit of 5 bytes"
        );
    }
}
