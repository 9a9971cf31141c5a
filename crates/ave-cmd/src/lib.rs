//! Run external programs on a fresh pseudoterminal, in a new session, with a timeout
//! that ends the whole process tree.
//!
//! Most users reach this crate through the facade, as `ave::cmd`.
//!
//! **Not implemented yet.** This crate will hold `run`, `run_bg` and their async
//! variants (see the ave-cmd issue).
