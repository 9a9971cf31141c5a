//! The errors of the admin client: the server's FAIL replies, lost connections, and
//! commands that cannot be sent.

use std::{fmt, io, path::PathBuf, sync::Arc};

use crate::words::join_words;

/// What can go wrong talking to a TrIPE server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The admin socket could not be reached.
    #[error("cannot connect to the TrIPE admin socket {}", path.display())]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The server answered `FAIL` (or `BGFAIL`): its error token and arguments.
    #[error("the server failed the command: {0}")]
    Failed(Failure),
    /// The connection dropped while the command was queued or in progress (the `CONNERR`
    /// of the Python client).
    #[error("lost the connection to the TrIPE server")]
    ConnectionLost(#[source] Arc<Disconnect>),
    /// The connection is already closed; nothing more can be sent on it.
    #[error("the connection to the TrIPE server is closed")]
    Closed,
    /// The background job was cancelled with `BGCANCEL` before it finished.
    #[error("background job {tag} was cancelled")]
    Cancelled {
        /// The job's tag.
        tag: String,
    },
    /// The service job was cancelled (`SVCCANCEL`, or the service was claimed away):
    /// nothing more may be sent for it.
    #[error("service job {jobid} was cancelled")]
    JobCancelled {
        /// The job id.
        jobid: String,
    },
    /// The client was made from a stream, so it has no socket to reconnect to.
    #[error("the client was not connected to a socket path, so it cannot reconnect")]
    NoSocketPath,
    /// A command with no words.
    #[error("empty command")]
    EmptyCommand,
    /// A command word holds a character no quoting can carry.
    #[error("command word {index} holds a {what}, which cannot be sent")]
    Unsendable {
        /// Which word (0 is the command keyword).
        index: usize,
        /// The offending character.
        what: &'static str,
    },
    /// The command line is longer than the server reads in one piece.
    #[error("command line is {len} bytes long; the server reads at most {max}")]
    CommandTooLong {
        /// The length of the quoted line.
        len: usize,
        /// The limit, [`MAX_COMMAND_LEN`](crate::MAX_COMMAND_LEN).
        max: usize,
    },
    /// A `TRACE` or `WATCH` spec holds a character that is neither a sign nor one of the
    /// command's selector letters.
    #[error("{command} has no selector {letter:?} (the letters are {letters})", letters = if command == "WATCH" { crate::commands::WATCH_LETTERS } else { crate::commands::TRACE_LETTERS })]
    BadSelector {
        /// `TRACE` or `WATCH`.
        command: String,
        /// The offending character.
        letter: char,
    },
    /// The connection's service lines were already taken by another service provider.
    #[error("this connection already has a service provider")]
    ProviderExists,
    /// The reply did not have the shape the command's method expects.
    #[error("unexpected reply to {command}: {detail}")]
    Unexpected {
        /// The command keyword.
        command: String,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// The server's failure, when the error is a `FAIL` reply.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// Whether the error means the connection is gone (lost, closed, or never made).
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::ConnectionLost(_) | Error::Closed)
    }

    pub(crate) fn unexpected(command: &str, detail: impl Into<String>) -> Error {
        Error::Unexpected { command: command.to_owned(), detail: detail.into() }
    }
}

/// Why the connection to the server ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Disconnect {
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Eof,
    /// Reading or writing the socket failed.
    #[error("admin socket error")]
    Io(#[source] io::Error),
    /// The client closed the connection ([`Client::disconnect`](crate::Client::disconnect)).
    #[error("disconnected by the client: {0}")]
    Requested(String),
    /// The server sent a line longer than the client accepts.
    #[error("the server sent a line longer than {max} bytes")]
    LineTooLong {
        /// The limit set with [`ClientBuilder::max_line_len`](crate::ClientBuilder::max_line_len).
        max: usize,
    },
}

/// A `FAIL` reply: the machine-readable error token and its arguments
/// (spec/tripe-admin.md section 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error token, such as `unknown-peer`.
    pub token: String,
    /// The token's arguments.
    pub args: Vec<String>,
}

impl Failure {
    /// Builds a failure from the words after `FAIL`; no words give an empty token.
    pub fn from_words(mut words: Vec<String>) -> Failure {
        if words.is_empty() {
            return Failure { token: String::new(), args: Vec::new() };
        }
        let token = words.remove(0);
        Failure { token, args: words }
    }

    /// The token and its arguments, as the server sent them.
    pub fn words(&self) -> Vec<String> {
        std::iter::once(self.token.clone()).chain(self.args.iter().cloned()).collect()
    }

    /// The token, classified.
    pub fn kind(&self) -> FailKind {
        FailKind::from_token(&self.token)
    }
}

impl fmt::Display for Failure {
    /// The token and arguments, quoted so that they read back as the same words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_words(self.words()))
    }
}

/// The well-known `FAIL` tokens of spec/tripe-admin.md section 5 and of the service
/// conventions of tripe.py; any other token is [`FailKind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailKind {
    /// `unknown-command TOKEN`.
    UnknownCommand,
    /// `bad-syntax COMMAND USAGE...`.
    BadSyntax,
    /// `unknown-peer NAME`.
    UnknownPeer,
    /// `peer-exists NAME`.
    PeerExists,
    /// `peer-create-fail NAME`.
    PeerCreateFail,
    /// `peer-addr-exists ADDR...`.
    PeerAddrExists,
    /// `unknown-tunnel NAME`.
    UnknownTunnel,
    /// `bad-addr-syntax MESSAGE`.
    BadAddrSyntax,
    /// `unknown-family TOKEN`.
    UnknownFamily,
    /// `invalid-port TOKEN`.
    InvalidPort,
    /// `resolve-error HOST`.
    ResolveError,
    /// `resolver-timeout HOST`.
    ResolverTimeout,
    /// `bad-time-spec TOKEN`.
    BadTimeSpec,
    /// `bad-trace-option CHAR`.
    BadTraceOption,
    /// `bad-watch-option CHAR`.
    BadWatchOption,
    /// `already-daemon`.
    AlreadyDaemon,
    /// `daemon-error ECODE MESSAGE`.
    DaemonError,
    /// `invalid-challenge`.
    InvalidChallenge,
    /// `bad-base64 MESSAGE`.
    BadBase64,
    /// `ping-send-failed`.
    PingSendFailed,
    /// `tag-exists TAG`.
    TagExists,
    /// `unknown-tag TAG`.
    UnknownTag,
    /// `unknown-service SERVICE`.
    UnknownService,
    /// `service-exists SERVICE VERSION`.
    ServiceExists,
    /// `not-service-provider SERVICE`.
    NotServiceProvider,
    /// `service-too-old SERVICE VERSION`.
    ServiceTooOld,
    /// `provider-overloaded`.
    ProviderOverloaded,
    /// `provider-failed`.
    ProviderFailed,
    /// `unknown-jobid JOBID`.
    UnknownJobid,
    /// `unknown-svc-command COMMAND` (a service provider's).
    UnknownSvcCommand,
    /// `bad-svc-syntax SERVICE COMMAND USAGE...` (a service provider's).
    BadSvcSyntax,
    /// `svc-internal-error CLASS MESSAGE` (a service provider's).
    SvcInternalError,
    /// Any other token.
    Other,
}

impl FailKind {
    /// Classifies a token.
    pub fn from_token(token: &str) -> FailKind {
        match token {
            "unknown-command" => FailKind::UnknownCommand,
            "bad-syntax" => FailKind::BadSyntax,
            "unknown-peer" => FailKind::UnknownPeer,
            "peer-exists" => FailKind::PeerExists,
            "peer-create-fail" => FailKind::PeerCreateFail,
            "peer-addr-exists" => FailKind::PeerAddrExists,
            "unknown-tunnel" => FailKind::UnknownTunnel,
            "bad-addr-syntax" => FailKind::BadAddrSyntax,
            "unknown-family" => FailKind::UnknownFamily,
            "invalid-port" => FailKind::InvalidPort,
            "resolve-error" => FailKind::ResolveError,
            "resolver-timeout" => FailKind::ResolverTimeout,
            "bad-time-spec" => FailKind::BadTimeSpec,
            "bad-trace-option" => FailKind::BadTraceOption,
            "bad-watch-option" => FailKind::BadWatchOption,
            "already-daemon" => FailKind::AlreadyDaemon,
            "daemon-error" => FailKind::DaemonError,
            "invalid-challenge" => FailKind::InvalidChallenge,
            "bad-base64" => FailKind::BadBase64,
            "ping-send-failed" => FailKind::PingSendFailed,
            "tag-exists" => FailKind::TagExists,
            "unknown-tag" => FailKind::UnknownTag,
            "unknown-service" => FailKind::UnknownService,
            "service-exists" => FailKind::ServiceExists,
            "not-service-provider" => FailKind::NotServiceProvider,
            "service-too-old" => FailKind::ServiceTooOld,
            "provider-overloaded" => FailKind::ProviderOverloaded,
            "provider-failed" => FailKind::ProviderFailed,
            "unknown-jobid" => FailKind::UnknownJobid,
            "unknown-svc-command" => FailKind::UnknownSvcCommand,
            "bad-svc-syntax" => FailKind::BadSvcSyntax,
            "svc-internal-error" => FailKind::SvcInternalError,
            _ => FailKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_their_words() {
        let failure = Failure::from_words(vec!["unknown-peer".into(), "bob smith".into()]);
        assert_eq!(failure.kind(), FailKind::UnknownPeer);
        assert_eq!(failure.to_string(), "unknown-peer \"bob smith\"");
        assert_eq!(failure.words(), ["unknown-peer", "bob smith"]);
        let empty = Failure::from_words(Vec::new());
        assert_eq!(empty.token, "");
        assert_eq!(empty.kind(), FailKind::Other);
        assert_eq!(FailKind::from_token("something-new"), FailKind::Other);
    }
}
