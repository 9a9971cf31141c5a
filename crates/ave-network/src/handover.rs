//! Live handover: a new process takes over a running [`Control`](crate::control::Control)'s listening socket and
//! every live connection, and no client notices.
//!
//! The serving instance listens on a [`HandoverSocket`] under its home
//! ([`socket_path`]: `<home>/.ave/handover/<name>.sock`, in a 0700 directory, mode 0600,
//! and only a peer running as the same user or root is heard). A successor calls
//! [`take_over`]; then:
//!
//! 1. the old instance stops accepting (the listener stays open: new connects wait in the
//!    kernel's backlog) and takes every connection that is not in a call out at a frame
//!    boundary; a connection with a call in flight stays with it;
//! 2. it sends the listener and each connection (the socket, its address, its
//!    authenticated identity, where it is in the handshake, the bytes received but not yet
//!    consumed and the bytes queued but not yet sent) over [`FdTx`](crate::fdtx) messages
//!    of at most 250 descriptors;
//! 3. the successor, holding everything but serving nothing yet, says it is ready
//!    ([`Inheritance::commit`]); the old instance confirms, closes its copies, and its
//!    [`Control::run`](crate::control::Control::run) returns [`Stopped::Replaced`](crate::control::Stopped::Replaced);
//! 4. the successor serves the listener and the connections
//!    ([`Inherited::into_control`]). Requests sent meanwhile waited in the kernel's
//!    buffers and are answered by the successor;
//! 5. the old instance drains: it finishes the calls in flight on the connections it kept,
//!    answers them and sends each of those connections to the successor as its call ends,
//!    within its drain time ([`Limits::drain`](crate::control::Limits::drain), 30 s by
//!    default; a call still running then is answered with an `Exit` exception and its
//!    connection closed; a call whose client left is cancelled). Then its `run` returns.
//!    New clients never wait for it: the listener is the successor's from step 4, and the
//!    successor serves the drained connections as they arrive.
//!
//! Until the old instance confirms, it keeps its own copies of every descriptor: if the
//! successor dies, disconnects or does not say it is ready within
//! [`HandoverOptions::ready_timeout`], the old instance takes its listener and connections
//! back and serves on (rollback). The decision point is one message each way, and the
//! side that gives up first shuts its receive direction before looking one last time, so
//! the two sides can never both serve the same connection.
//!
//! While one handover is in progress, another successor that asks is refused ("another
//! replace is in progress"). If the old instance dies after the successor received
//! everything, the successor keeps it all ([`Inheritance::commit`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use ave_network::{
//!     Control,
//!     control::Stopped,
//!     diagnostic,
//!     handover::{self, HandoverOptions, HandoverSocket},
//! };
//!
//! # async fn example() -> Result<(), ave_network::Error> {
//! let path = handover::socket_path("/home/ave".as_ref(), "ave-serve");
//! let service = || diagnostic::service(diagnostic::Options::new());
//!
//! // The successor: receive everything, then commit, then serve, replaceable in turn.
//! let inheritance = handover::take_over(&path, Duration::from_secs(5)).await?;
//! let mut socket = HandoverSocket::bind_successor(&path)?;
//! let control = inheritance.commit().await?.into_control(Control::builder(service()))?;
//! socket.install()?;
//! let (stopped, successor) =
//!     handover::run_replaceable(control, socket, HandoverOptions::default()).await?;
//! if stopped == Stopped::Replaced {
//!     println!("replaced by {successor:?}");
//! }
//! # Ok(())
//! # }
//! ```

mod channel;
mod new;
mod old;
mod socket;

use std::time::Duration;

#[doc(hidden)]
pub use crate::handover::channel::{MAX_BODY, fuzz_parse};
pub use crate::handover::{
    new::{Inheritance, Inherited, take_over},
    socket::{HandoverSocket, run_replaceable, socket_path},
};

/// The version of the handover conversation; both sides must speak the same. Version 2
/// added the drain: connections sent after the commit, as their calls end.
pub const PROTOCOL_VERSION: u32 = 2;

/// The default time a successor has, once everything is sent, to say it is ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How the serving side conducts a handover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverOptions {
    /// How long the successor has to receive everything and say it is ready; after it,
    /// the old instance takes everything back. Default [`DEFAULT_READY_TIMEOUT`].
    pub ready_timeout: Duration,
}

impl Default for HandoverOptions {
    fn default() -> HandoverOptions {
        HandoverOptions { ready_timeout: DEFAULT_READY_TIMEOUT }
    }
}

/// What the old instance learns about the successor that took over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Successor {
    /// The successor's process id (from the kernel's peer credentials).
    pub pid: u32,
    /// The connections handed over.
    pub connections: usize,
    /// The connections with a call in flight that stayed to finish it (the drain).
    pub kept: usize,
    /// Whether the listener was handed over.
    pub listener: bool,
    /// From the successor's hello to its ready message.
    pub elapsed: Duration,
}
