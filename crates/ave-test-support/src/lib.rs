//! Helpers shared by the workspace's tests and benches, written once: temporary
//! directories, the TrIPE admin-protocol simulator and the independent Python peers.
//!
//! This crate is a dev-dependency only; nothing in a shipped crate depends on it.
//!
//! # Example
//!
//! ```
//! // The crate is a collection of modules; each documents its own use.
//! let _ = env!("CARGO_PKG_NAME");
//! ```

pub mod tripe_sim;
