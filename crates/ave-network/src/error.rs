//! The error type of this crate.

use std::io;

use ave_exceptions::{AveException, NetworkError, ProcessError};

/// Everything that can go wrong on a connection, in a handshake, a call or a server.
///
/// The conditions the original reports as `ave.network.exceptions` (closed, timed out,
/// refused) are [`Error::Network`]; an exception raised by a remote service is
/// [`Error::Remote`], rebuilt as the original client rebuilds it. Both convert into an
/// [`AveException`], so a service relaying a call can use `?`.
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
    /// An invalid setting or an operation the current state does not allow, with the
    /// original's text where it has one (`connection already has authkey`).
    #[error("{0}")]
    Invalid(String),
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
