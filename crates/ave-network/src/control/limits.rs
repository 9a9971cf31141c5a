//! [`Limits`]: every bound a `Control` enforces on what its clients send and make it hold.
//!
//! Each limit is a setting of [`ControlBuilder`](crate::control::ControlBuilder) with a default that
//! suits a lab service; `ave::guide::limits` has the table and what happens at each bound.

use std::time::Duration;

use crate::wire::frame::DEFAULT_MAX_FRAME;
use crate::wire::handshake::SHA256_LEN;

/// The default limit on concurrent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// The default time a client has to answer the challenge.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default limit on a frame before the handshake is over: the longest valid answer
/// (an HMAC-SHA256 digest, 32 bytes).
pub const DEFAULT_MAX_HANDSHAKE_FRAME: usize = SHA256_LEN;

/// The default time a replaced instance has to finish the calls in flight it kept.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// The default number of bytes of a malformed request echoed in its error reply.
pub const DEFAULT_MAX_ECHO: usize = 256;

/// The default amount of unsent reply bytes one connection may hold before the server
/// stops reading its requests until the client reads.
pub const DEFAULT_MAX_CONNECTION_OUTPUT: usize = 1024 * 1024;

/// The default amount of unsent reply bytes all connections together may hold.
pub const DEFAULT_MAX_TOTAL_OUTPUT: usize = 256 * 1024 * 1024;

/// The default deepest structure a method builds for a client (the diagnostic service's
/// `raise_ave_exception` depth; Python's own recursion limit).
pub const DEFAULT_MAX_DEPTH: u32 = 1000;

/// The default longest wait a method does for a client (the diagnostic `sleep`).
pub const DEFAULT_MAX_SLEEP: Duration = Duration::from_secs(3600);

/// The default longest text (in bytes) a method transforms for a client (the diagnostic
/// `upper`, exception messages).
pub const DEFAULT_MAX_TEXT: usize = 1024 * 1024;

/// A reply this small is always queued, even when the total output budget is spent (so
/// every client still gets its error replies); larger ones are then refused.
pub(crate) const SMALL_REPLY: usize = 4 * 1024;

/// The bounds a `Control` enforces; see the module documentation and
/// `ave::guide::limits`. Build it from [`Limits::default`] and set what you need, or use
/// the setters of [`ControlBuilder`](crate::control::ControlBuilder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest frame after the handshake, requests and replies alike (default 64 MiB).
    /// A larger request header gets the original's "invalid RPC" answer and a disconnect;
    /// a larger reply is replaced by an exception that says so.
    pub max_frame: usize,
    /// The largest frame before the handshake is over (default 32 bytes, the longest
    /// digest). A larger one closes the connection at once.
    pub max_handshake_frame: usize,
    /// How long a client has to answer the challenge (default 30 s).
    pub handshake_timeout: Duration,
    /// At most this many connections at once (default 16,384). At the cap, and when the
    /// process runs out of descriptors, the longest-idle connection without an identity is
    /// closed to make room; if every connection has one, new clients wait in the backlog.
    pub max_connections: usize,
    /// How long an instance replaced by a successor (`ave::network::handover`) has to
    /// finish the calls in flight on the connections it kept (default 30 s). Idle
    /// connections and the listener move to the successor at once; each kept call is
    /// answered when it ends and its connection follows them, while a call still running
    /// at this deadline is answered with an `Exit` exception and its connection closed. A
    /// call whose client has gone is cancelled, always.
    pub drain: Duration,
    /// How much of a malformed request is echoed in `malformed JSON: ...` (default 256
    /// bytes; the reply then gives the payload's size).
    pub max_echo: usize,
    /// Unsent reply bytes one connection may hold (default 1 MiB): beyond it, its next
    /// request waits until the client reads.
    pub max_connection_output: usize,
    /// Unsent reply bytes all connections may hold together (default 256 MiB): beyond it,
    /// a reply larger than 4 KiB is replaced by an exception that says so.
    pub max_total_output: usize,
    /// The deepest structure a method builds for a client (default 1000).
    pub max_depth: u32,
    /// The longest wait a method does for a client (default 1 hour).
    pub max_sleep: Duration,
    /// The longest text, in bytes, a method transforms for a client (default 1 MiB).
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME,
            max_handshake_frame: DEFAULT_MAX_HANDSHAKE_FRAME,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain: DEFAULT_DRAIN,
            max_echo: DEFAULT_MAX_ECHO,
            max_connection_output: DEFAULT_MAX_CONNECTION_OUTPUT,
            max_total_output: DEFAULT_MAX_TOTAL_OUTPUT,
            max_depth: DEFAULT_MAX_DEPTH,
            max_sleep: DEFAULT_MAX_SLEEP,
            max_text: DEFAULT_MAX_TEXT,
        }
    }
}

/// A duration as people write it in messages: `30 s`, `0.5 s`.
pub(crate) fn describe(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}
