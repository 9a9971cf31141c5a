//! The one place of this crate with unsafe code: changing the process environment.
//!
//! `std::env::set_var` is unsafe in edition 2024 because another thread may read or write
//! the environment at the same time (libc's `getenv` is not synchronised with it). The
//! function here makes it safe by checking, right before, that the calling thread is the
//! only thread of the process: a process with one thread cannot gain another except
//! through that thread, so nothing can touch the environment concurrently.

#![allow(unsafe_code)]

use std::{ffi::OsStr, fs, io};

/// The number of threads of this process, counted in `/proc/self/task`.
pub(crate) fn thread_count() -> io::Result<usize> {
    let mut count = 0;
    for entry in fs::read_dir("/proc/self/task")? {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// Sets environment variables, if and only if this is the only thread of the process.
///
/// Returns `Err(Some(n))` with the thread count, or `Err(None)` if it cannot be counted;
/// nothing is changed then.
pub(crate) fn set_env_single_threaded(vars: &[(&str, &OsStr)]) -> Result<(), Option<usize>> {
    match thread_count() {
        Ok(1) => {}
        Ok(n) => return Err(Some(n)),
        Err(_) => return Err(None),
    }
    for (key, value) in vars {
        // SAFETY: `thread_count` just saw exactly one thread, the calling one, and it is
        // busy here; no other thread exists to read or write the environment concurrently.
        unsafe { std::env::set_var(key, value) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_thread_that_is_parked() {
        // Under `cargo test` other tests' threads come and go, so only a lower bound holds.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().unwrap() >= 2);
        // With two threads or more, nothing may be set.
        let refused = set_env_single_threaded(&[("AVE_PERSONA_TEST", OsStr::new("x"))]);
        assert!(matches!(refused, Err(Some(n)) if n >= 2), "{refused:?}");
        assert!(std::env::var_os("AVE_PERSONA_TEST").is_none());
        drop(tx);
        let _ = t.join();
    }
}
