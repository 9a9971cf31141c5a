//! An administration client and service provider for the TrIPE VPN server, on tokio.
//!
//! Most users reach this crate through the facade, as `ave::tripe`.
//!
//! **Not implemented yet** (see the ave-tripe issue).
