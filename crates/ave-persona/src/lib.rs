//! Dropping privileges to an AVE user.
//!
//! Most users reach this crate through the facade, as `ave::persona`.
//!
//! **Not implemented yet.** This crate will hold `become_user`, which sets the
//! supplementary groups, then the gid, then the uid, verifies each step and returns the
//! user's home directory (see the config and persona issue).
