//! The crate's only unsafe code, behind safe `pub(crate)` functions: the system calls that
//! nix does not wrap the way this crate needs. Each submodule lists the invariants it
//! relies on, and every `unsafe` block carries its `// SAFETY:` proof.
#![allow(unsafe_code)]

pub(crate) mod fdtx;
pub(crate) mod process;
pub(crate) mod systemd;
