//! The locally detected conditions of `ave.network.exceptions`.

use crate::AveException;

/// A condition detected on a connection: the `Connection*` classes of the original's
/// `ave.network.exceptions`.
///
/// These are raised on the client side and are not part of the wire protocol. Each
/// carries a message that defaults to the original's. When a service lets one escape from
/// an RPC method, it is reported like any other exception (type = the class name), which
/// `From<NetworkError> for AveException` does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// `ConnectionClosed`: the peer closed the connection (default message
    /// `connection closed`).
    #[error("{0}")]
    Closed(String),
    /// `ConnectionTimeout`: nothing could be read or written in time (default `timed out`).
    #[error("{0}")]
    Timeout(String),
    /// `ConnectionRefused`: the other end refused the connection (default
    /// `connection refused`).
    #[error("{0}")]
    Refused(String),
    /// `ConnectionInProgress`: a non-blocking connect is still in progress (default
    /// `connection in progress`).
    #[error("{0}")]
    InProgress(String),
    /// `ConnectionAgain`: a non-blocking operation must be retried later (default
    /// `connection again`).
    #[error("{0}")]
    Again(String),
    /// `ConnectionReset`: the connection was reset (default `connection reset`).
    #[error("{0}")]
    Reset(String),
}

impl NetworkError {
    /// `ConnectionClosed` with the default message.
    pub fn closed() -> NetworkError {
        NetworkError::Closed("connection closed".to_owned())
    }

    /// `ConnectionTimeout` with the default message.
    pub fn timeout() -> NetworkError {
        NetworkError::Timeout("timed out".to_owned())
    }

    /// `ConnectionRefused` with the default message.
    pub fn refused() -> NetworkError {
        NetworkError::Refused("connection refused".to_owned())
    }

    /// `ConnectionInProgress` with the default message.
    pub fn in_progress() -> NetworkError {
        NetworkError::InProgress("connection in progress".to_owned())
    }

    /// `ConnectionAgain` with the default message.
    pub fn again() -> NetworkError {
        NetworkError::Again("connection again".to_owned())
    }

    /// `ConnectionReset` with the default message.
    pub fn reset() -> NetworkError {
        NetworkError::Reset("connection reset".to_owned())
    }

    /// The original's class name, such as `ConnectionClosed`.
    pub fn type_name(&self) -> &'static str {
        match self {
            NetworkError::Closed(_) => "ConnectionClosed",
            NetworkError::Timeout(_) => "ConnectionTimeout",
            NetworkError::Refused(_) => "ConnectionRefused",
            NetworkError::InProgress(_) => "ConnectionInProgress",
            NetworkError::Again(_) => "ConnectionAgain",
            NetworkError::Reset(_) => "ConnectionReset",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            NetworkError::Closed(m)
            | NetworkError::Timeout(m)
            | NetworkError::Refused(m)
            | NetworkError::InProgress(m)
            | NetworkError::Again(m)
            | NetworkError::Reset(m) => m,
        }
    }
}

impl From<NetworkError> for AveException {
    #[track_caller]
    fn from(e: NetworkError) -> AveException {
        AveException::custom(e.type_name(), e.message())
    }
}

/// A process could not be joined or signalled: the `Unstarted`, `Unwaitable`,
/// `Unjoinable` and `Unknown` classes of the original's `ave.network.exceptions`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `Unstarted`: the process was never started (`cannot join unstarted process`).
    #[error("{0}")]
    Unstarted(String),
    /// `Unwaitable`: the process is not a child of the caller
    /// (`target process is not a child`).
    #[error("{0}")]
    Unwaitable(String),
    /// `Unjoinable`: a process cannot join itself (`a process cannot join itself`).
    #[error("{0}")]
    Unjoinable(String),
    /// `Unknown`: no such process (`cannot join unknown process`).
    #[error("{0}")]
    Unknown(String),
}

impl ProcessError {
    /// The original's class name, such as `Unwaitable`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ProcessError::Unstarted(_) => "Unstarted",
            ProcessError::Unwaitable(_) => "Unwaitable",
            ProcessError::Unjoinable(_) => "Unjoinable",
            ProcessError::Unknown(_) => "Unknown",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            ProcessError::Unstarted(m)
            | ProcessError::Unwaitable(m)
            | ProcessError::Unjoinable(m)
            | ProcessError::Unknown(m) => m,
        }
    }
}

impl From<ProcessError> for AveException {
    #[track_caller]
    fn from(e: ProcessError) -> AveException {
        AveException::custom(e.type_name(), e.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_messages_are_the_originals() {
        let cases = [
            (NetworkError::closed(), "ConnectionClosed", "connection closed"),
            (NetworkError::timeout(), "ConnectionTimeout", "timed out"),
            (NetworkError::refused(), "ConnectionRefused", "connection refused"),
            (NetworkError::in_progress(), "ConnectionInProgress", "connection in progress"),
            (NetworkError::again(), "ConnectionAgain", "connection again"),
            (NetworkError::reset(), "ConnectionReset", "connection reset"),
        ];
        for (e, name, message) in cases {
            assert_eq!(e.type_name(), name);
            assert_eq!(e.to_string(), message);
            let wire = AveException::from(e).to_wire();
            assert_eq!(wire["type"], name);
            assert_eq!(wire["message"], message);
        }
    }

    #[test]
    fn process_errors_convert() {
        let e = ProcessError::Unwaitable("target process is not a child".to_owned());
        assert_eq!(e.type_name(), "Unwaitable");
        assert_eq!(AveException::from(e).message(), "target process is not a child");
    }
}
