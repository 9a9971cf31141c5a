//! The one unsafe operation of the command line: taking a variable out of the process
//! environment.
//!
//! Invariant relied on: [`take_env`] runs in `main` before any thread exists (no runtime,
//! no logging thread), so nothing reads or writes the environment at the same time, which
//! is what `std::env::remove_var` requires in edition 2024.

#![allow(unsafe_code)]

/// Removes `name` from the environment and returns its value, so that no child process
/// inherits it.
///
/// Must be called while the process has one thread (see the module invariant).
pub(crate) fn take_env(name: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(name)?;
    // SAFETY: called from `main` before any thread is started (module invariant), so no
    // other thread reads or writes the environment concurrently.
    unsafe { std::env::remove_var(name) };
    Some(value)
}
