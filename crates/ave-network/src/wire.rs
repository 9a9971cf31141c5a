//! The wire format shared by servers and clients: [`frame`] (the 4-byte big-endian length
//! framing, with a size limit enforced before anything is allocated), [`handshake`]
//! (`#CHALLENGE#` + salt, HMAC-MD5 and opt-in HMAC-SHA256, the key table and the
//! `preauth` rule) and [`json`] (the JSON dialect of Python 2 peers).
//!
//! This is the lowest layer of the crate: it imports nothing but [`Error`](crate::Error).

pub mod frame;
pub mod handshake;
pub mod json;
