//! An administration client and service provider for the TrIPE VPN server, on tokio.
//!
//! Most users reach this crate through the facade, as `ave::tripe`.
//!
//! TrIPE's server takes commands on a Unix-domain socket, one line each, and answers with
//! `INFO` lines and then `OK` or `FAIL`; long commands can run as background jobs, and
//! broadcasts (`WARN`, `NOTE`, `TRACE`) arrive at any time (the protocol is written up in
//! `spec/tripe-admin.md` and the guide page `ave::guide::tripe`). This crate turns that
//! into straight-line async code:
//!
//! - [`Client`]: one connection. [`Client::command`] queues any command and returns a
//!   [`Reply`], an async stream of INFO lines that ends with OK or a typed
//!   [`Failure`]; [`Client::command_background`] does the same as a background job with a
//!   fresh tag. Typed methods cover every admin command ([`Client::add`],
//!   [`Client::ping`], [`Client::stats`], [`Client::svcsubmit`], ...). Commands are sent
//!   one at a time, as the server requires; a dispatcher task spawned on the caller's
//!   runtime routes each answer to its command, and fails every pending command with
//!   [`Error::ConnectionLost`] when the connection drops.
//! - [`Events`]: the broadcasts, typed ([`Event`], [`Warning`], [`Note`]), unknown ones
//!   kept.
//! - [`ServiceProvider`]: claims [`Service`]s and answers their jobs, each in its own task;
//!   cancellation, loss of a service to a later version, and the standard `HELP` and `QUIT`
//!   commands are handled. [`timespec`] and [`OptionParser`] help with job arguments.
//! - The protocol's words: [`split_words`] (mLib's quoting rules), [`quotify`] and
//!   [`format_command`] (which refuses what cannot be sent), [`ServerMessage`], and
//!   [`resolve_socket`] (`TRIPESOCK`, `TRIPEDIR` and the defaults).
//!
//! The crate never starts a runtime; call it from inside one.
//!
//! # Example
//!
//! A ping run as a background job while a broadcast arrives, against a hand-written
//! stand-in for the server on a socket pair:
//!
//! ```
//! use ave_tripe::{Client, Event, Note, PingOptions, PingResult};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (ours, theirs) = tokio::net::UnixStream::pair()?;
//! let server = tokio::spawn(async move {
//!     let (read, mut write) = theirs.into_split();
//!     let mut lines = BufReader::new(read).lines();
//!     let command = lines.next_line().await?;
//!     write
//!         .write_all(b"BGDETACH J00000\nNOTE KXDONE alice\nBGINFO J00000 ping-ok 1.5\nBGOK J00000\n")
//!         .await?;
//!     Ok::<_, std::io::Error>(command)
//! });
//!
//! let client = Client::builder().from_stream(ours);
//! let mut events = client.events();
//! let result = client.ping("alice", &PingOptions::default()).await?;
//! assert!(matches!(result, PingResult::Ok { rtt } if rtt.as_micros() == 1500));
//! assert_eq!(events.recv().await, Some(Event::Note(Note::KxDone { peer: "alice".into() })));
//! assert_eq!(server.await??.as_deref(), Some("PING -background J00000 -- alice"));
//! # Ok(()) }
//! ```

mod client;
mod commands;
mod error;
mod event;
mod format;
mod jobargs;
mod lines;
mod message;
mod path;
mod service;
mod words;

pub use crate::{
    client::{
        Client, ClientBuilder, DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_LINE_LEN,
        DEFAULT_REPLY_CAPACITY, Events, Reply, ServiceMessages,
    },
    commands::{
        AddOptions, Address, HelpEntry, KeyValues, PingOptions, PingResult, ServerVersion,
        ServiceEntry, TRACE_LETTERS, TraceEntry, WATCH_LETTERS, check_selectors, parse_bool,
    },
    error::{Disconnect, Error, FailKind, Failure},
    event::{Event, Note, WarnCategory, Warning},
    format::{MAX_COMMAND_LEN, format_command},
    jobargs::{OptionParser, timespec},
    message::{ServerMessage, ServiceMessage},
    path::{DEFAULT_DIR, DEFAULT_SOCKET, SOCKET_NAME, resolve_socket, resolve_socket_with},
    service::{
        CommandRow, Handler, HandlerFuture, Job, JobEnd, JobError, QuitHandle, Service,
        ServiceProvider, ServiceRunner, SetupFuture, StopReason, handler, run_services,
    },
    words::{join_words, next_word, quotify, split_words},
};
