//! The client role: calls one method in a loop over a `BlockingRemoteControl` with no key
//! and a timeout, replacing its connection with a new one (a new TCP connection and
//! handshake) before a call with the kind's probability, until the server's `Exit`.
//!
//! Exit status: 0 when the server's `Exit` arrived; 3 when the server was already gone
//! (refused or closed while reconnecting) with every earlier call answered; 2 when an
//! exception reply lacked `recognize`; 1 for anything else (a timeout, a protocol error,
//! a wrong result). The last line on stdout is the client's report, as JSON.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use ave::{
    exceptions::{Kind as ExceptionKind, NetworkError},
    network::{Address, BlockingRemoteControl, Error},
};
use serde_json::{Value, json};

use crate::{
    ClientArgs, Kind, SplitMix64,
    report::{ClientReport, End},
};

/// The reconnect probabilities of the original's client table.
pub(crate) fn default_reconnect(kind: Kind) -> f64 {
    match kind {
        Kind::Ping => 0.1,
        Kind::Upper => 0.2,
        Kind::Raise => 0.3,
    }
}

/// Runs the client role.
pub(crate) fn run(args: &ClientArgs) -> ExitCode {
    if args.watch_stdin {
        crate::exit_when_stdin_closes();
    }
    let report = drive(args);
    println!("{}", serde_json::to_string(&report).expect("reports serialize"));
    ExitCode::from(report.end.code())
}

/// What one call came to.
enum Outcome {
    /// Answered as expected.
    Answered,
    /// The client is done.
    Ended(End, String, Option<String>),
}

/// The call of a kind, and the check of its answer.
struct Caller {
    kind: Kind,
    payload: String,
    details: Value,
}

impl Caller {
    fn new(kind: Kind, payload: usize) -> Caller {
        let payload = if kind == Kind::Upper { "x".repeat(payload) } else { String::new() };
        Caller { kind, payload, details: json!({"message": "hello", "recognize": "me"}) }
    }

    fn call(&self, remote: &BlockingRemoteControl) -> Outcome {
        let result = match self.kind {
            Kind::Ping => remote.call("sync_ping", ()),
            Kind::Upper => remote.call("upper", (self.payload.as_str(),)),
            Kind::Raise => remote.call("raise_ave_exception", (&self.details,)),
        };
        match (self.kind, result) {
            (_, Err(e)) if is_exit(&e) => exit(&e),
            (Kind::Ping, Ok(Value::String(s))) if s == "pong" => Outcome::Answered,
            (Kind::Upper, Ok(Value::String(s)))
                if s.len() == self.payload.len() && s.bytes().all(|b| b == b'X') =>
            {
                Outcome::Answered
            }
            (Kind::Raise, Err(Error::Remote(e))) => match e.field("recognize") {
                Some(Value::String(s)) if s == "me" => Outcome::Answered,
                other => Outcome::Ended(
                    End::MissingRecognize,
                    format!("the exception lacks recognize = \"me\" ({other:?}): {}", e.to_wire()),
                    None,
                ),
            },
            (_, Ok(other)) => Outcome::Ended(
                End::Failed,
                format!("wrong result: {}", abbreviate(&other.to_string())),
                None,
            ),
            (_, Err(e)) => Outcome::Ended(End::Failed, format!("the call failed: {e}"), None),
        }
    }
}

fn is_exit(e: &Error) -> bool {
    e.remote().is_some_and(|e| e.kind() == ExceptionKind::Exit)
}

fn exit(e: &Error) -> Outcome {
    let message = e.remote().map(|e| e.message().into_owned());
    Outcome::Ended(End::Exit, "the server's Exit arrived".to_owned(), message)
}

/// The start of a long text.
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}... ({} bytes)", &text[..i], text.len()),
        None => text.to_owned(),
    }
}

/// What a failed connect means: the server's `Exit` during the handshake, the server
/// already gone, or a failure.
fn connect_failed(e: &Error) -> Outcome {
    if is_exit(e) {
        return exit(e);
    }
    let gone = match e {
        Error::Network(
            NetworkError::Refused(_) | NetworkError::Closed(_) | NetworkError::Reset(_),
        ) => true,
        Error::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
    };
    if gone {
        Outcome::Ended(End::Gone, format!("the server is gone: {e}"), None)
    } else {
        Outcome::Ended(End::Failed, format!("cannot connect: {e}"), None)
    }
}

fn drive(args: &ClientArgs) -> ClientReport {
    let p = args.reconnect.unwrap_or_else(|| default_reconnect(args.kind));
    // Not optimistic: a refused connect means the server has shut down, not that it is
    // still starting (the harness starts clients once the server listens).
    let remote = BlockingRemoteControl::new(Address::new("127.0.0.1", args.port), None)
        .with_timeout(Some(args.timeout))
        .with_optimist(false);
    let caller = Caller::new(args.kind, args.payload);
    let mut rng = SplitMix64::new(args.seed);
    let (mut calls, mut answered, mut reconnects) = (0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let mut connected = false;
    loop {
        if connected && rng.chance(p) {
            remote.disconnect();
            connected = false;
            reconnects += 1;
        }
        calls += 1;
        let started = Instant::now();
        let outcome = if connected {
            caller.call(&remote)
        } else {
            match remote.connect(Some(args.timeout)) {
                Ok(()) => {
                    connected = true;
                    caller.call(&remote)
                }
                Err(e) => connect_failed(&e),
            }
        };
        slowest = slowest.max(started.elapsed());
        match outcome {
            Outcome::Answered => answered += 1,
            Outcome::Ended(end, detail, exit_message) => {
                return ClientReport {
                    kind: args.kind,
                    calls,
                    answered,
                    reconnects,
                    slowest_call_us: u64::try_from(slowest.as_micros()).unwrap_or(u64::MAX),
                    end,
                    exit_message,
                    detail,
                    at_ns: crate::monotonic_ns(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_are_classified() {
        let end = |e: Error| match connect_failed(&e) {
            Outcome::Ended(end, ..) => end,
            Outcome::Answered => panic!("a failed connect is not an answer"),
        };
        assert_eq!(end(Error::Network(NetworkError::refused())), End::Gone);
        assert_eq!(end(Error::Network(NetworkError::closed())), End::Gone);
        assert_eq!(end(Error::Network(NetworkError::timeout())), End::Failed);
        assert_eq!(end(Error::Remote(ave::exceptions::AveException::exit("bye"))), End::Exit);
        assert_eq!(end(Error::Protocol("wrong challenge".to_owned())), End::Failed);
    }

    #[test]
    fn long_texts_are_abbreviated() {
        assert_eq!(abbreviate("short"), "short");
        let long = "y".repeat(1000);
        assert!(abbreviate(&long).ends_with("... (1000 bytes)"));
    }
}
