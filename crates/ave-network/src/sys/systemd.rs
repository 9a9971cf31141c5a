//! The unsafe half of the systemd interfaces: taking ownership of the descriptors a service
//! manager passed (`LISTEN_FDS`), and unsetting the variables that described them.
//!
//! Invariants this file relies on:
//! - the descriptors from `SD_LISTEN_FDS_START` on were given to this process by whoever
//!   set `LISTEN_PID` to our pid, for this process to own; [`take_inherited`] claims them at
//!   most once per process (an atomic flag), so no two `OwnedFd`s ever own one descriptor;
//! - the environment is changed only while the process has a single thread
//!   ([`single_threaded`]), when no other thread can be reading it.

use std::{
    io,
    os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd},
    sync::atomic::{AtomicBool, Ordering},
};

use nix::{
    fcntl::{FcntlArg, FdFlag, fcntl},
    libc,
};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// Set once the inherited descriptors have been claimed.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of descriptors `3..3 + count`, each made close-on-exec. Returns `None`
/// if they were already claimed in this process. A descriptor that is not open fails the
/// whole claim (after closing those already taken).
pub(crate) fn take_inherited(count: usize) -> Option<io::Result<Vec<OwnedFd>>> {
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return None;
    }
    let mut fds = Vec::with_capacity(count);
    for i in 0..count {
        let Some(raw) = RawFd::try_from(i).ok().and_then(|i| i.checked_add(LISTEN_FDS_START))
        else {
            return Some(Err(io::Error::new(io::ErrorKind::InvalidInput, "LISTEN_FDS too large")));
        };
        // SAFETY: F_GETFD only reads the descriptor flags of `raw`; on a descriptor that is
        // not open it fails with EBADF and touches nothing.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
        if flags < 0 {
            return Some(Err(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is open (F_GETFD succeeded); by the LISTEN_FDS protocol it was
        // passed to this process to own, and the CLAIMED flag makes this the only place in
        // the process that ever wraps it, once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if let Err(e) = fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            return Some(Err(io::Error::from(e)));
        }
        fds.push(fd);
    }
    Some(Ok(fds))
}

/// Whether the process runs a single thread (`/proc/self/task` has one entry).
pub(crate) fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

/// Unsets the variables if the process has one thread; returns whether it did.
pub(crate) fn unset_env(names: &[&str]) -> bool {
    if !single_threaded() {
        return false;
    }
    for name in names {
        // SAFETY: the process has a single thread (checked just above, and nothing in this
        // function starts one), so no other thread reads or writes the environment now.
        unsafe { std::env::remove_var(name) };
    }
    true
}

/// Whether `fd` is a listening stream socket.
pub(crate) fn is_listening_stream(fd: BorrowedFd<'_>) -> bool {
    use nix::sys::socket::{SockType, getsockopt, sockopt};
    matches!(getsockopt(&fd, sockopt::SockType), Ok(SockType::Stream))
        && getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false)
}
