//! AVE networking: length-prefixed framed connections, the challenge handshake, the
//! `Control` RPC server, the `RemoteControl` client, processes, and file-descriptor
//! transfer for restarting a service without dropping its clients.
//!
//! Most users reach this crate through the facade, as `ave::network`.
//!
//! **Not implemented yet** (see the ave-network issues).
