//! Helpers shared by the workspace's tests and benches, written once:
//!
//! - [`TempDir`] ([`tempdir`]): a fresh directory per test, removed on drop;
//! - [`python`]: finding `python3` for the independent Python peers, and
//!   [`Peer`](python::Peer), a running peer read line by line with timeouts and killed on
//!   drop;
//! - the TrIPE admin-protocol simulator ([`tripe_sim`]), used by ave-tripe's tests and bench
//!   and by the `ave tripe` tests of ave-cli.
//!
//! This crate is a dev-dependency only; nothing in a shipped crate depends on it.
//!
//! # Example
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::os::unix::net::UnixStream;
//!
//! use ave_test_support::tripe_sim::Sim;
//!
//! let sim = Sim::start();
//! sim.add_peer("alice", &["INET", "192.0.2.1", "4070"]);
//! let mut socket = UnixStream::connect(sim.path()).unwrap();
//! socket.write_all(b"LIST\n").unwrap();
//! let mut lines = BufReader::new(socket).lines();
//! assert_eq!(lines.next().unwrap().unwrap(), "INFO alice");
//! assert_eq!(lines.next().unwrap().unwrap(), "OK");
//! ```

pub mod python;
pub mod tempdir;
pub mod tripe_sim;

pub use crate::tempdir::TempDir;
