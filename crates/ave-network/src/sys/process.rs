//! Processes: `fork`, `_exit`, the child's clean slate (signal dispositions and mask,
//! inherited descriptors), pidfds, raw wait statuses, signals by number and local time.
//!
//! Invariants this submodule relies on:
//! - [`fork`] is called only by `process.rs`, after it checked, under its fork lock, that
//!   no other thread runs except threads of its own that are parked without holding any
//!   lock, or after the caller opted in with `Process::allow_threads`, whose documentation
//!   states the risk (a lock held by a thread that does not exist in the child);
//! - the child never returns into the caller's code: it ends with [`exit_now`], so values
//!   of the parent that own descriptors closed by [`close_inherited`] are never used or
//!   dropped in the child;
//! - pids given to `waitpid` are children of this process; signals to children go through
//!   pidfds where there is one, which name one process for good;
//! - every descriptor made here is returned as an `OwnedFd` at once.

use std::{
    collections::BTreeSet,
    io,
    mem::MaybeUninit,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    ptr,
};

use nix::{libc, sys::signalfd::SignalFd};
use tokio::io::{Interest, unix::AsyncFd};

/// What [`fork`] returned.
pub(crate) enum Forked {
    /// This is the parent; the child has this pid.
    Parent(libc::pid_t),
    /// This is the child.
    Child,
}

/// Forks the calling process.
#[expect(
    clippy::disallowed_methods,
    reason = "the crate's one fork: process.rs checks that no other thread runs first"
)]
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: `fork` is sound when the calling thread is the only one that can hold a lock
    // or be in the middle of an update the child could observe. process.rs makes sure of it
    // before calling this (see the module invariants); the child it starts runs with a
    // reset signal state and ends with `_exit`, never returning into the caller.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Ends the process at once with `code`: no destructors, no `atexit` handlers, no
/// unwinding into the caller.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes an int and ends the process; it has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Resets every caught signal to its default action and empties the signal mask, so a
/// child never runs a handler its parent installed (ignored signals stay ignored, as
/// across `exec`).
pub(crate) fn reset_signals() {
    for signal in 1..=libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a query: the new action is null and the old one is written to a local.
        // Signals the C library reserves fail with EINVAL and are skipped.
        if unsafe { libc::sigaction(signal, ptr::null(), old.as_mut_ptr()) } != 0 {
            continue;
        }
        // SAFETY: `sigaction` succeeded, so it filled `old`; an all-zero `sigaction` is a
        // valid value in any case.
        let old = unsafe { old.assume_init() };
        if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        // SAFETY: an all-zero `sigaction` is SIG_DFL with an empty mask and no flags.
        let default: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: installs the default action from a live local; the old one is not read.
        unsafe { libc::sigaction(signal, &raw const default, ptr::null_mut()) };
    }
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// The descriptors open in this process, from `/proc/self/fd`.
fn open_fds() -> io::Result<Vec<i32>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            fds.push(fd);
        }
    }
    // The listing's own descriptor is closed once the iterator is dropped.
    fds.retain(|&fd| is_open(fd));
    Ok(fds)
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD on any number only reads the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Whether `fd` is a Unix-domain socket.
fn is_unix_socket(fd: i32) -> bool {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `struct stat` to the pointer, which points to a local.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled `stat`.
    let mode = unsafe { stat.assume_init() }.st_mode;
    if mode & libc::S_IFMT != libc::S_IFSOCK {
        return false;
    }
    let mut domain: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_DOMAIN writes one int to the pointer (a local) and its size to `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&raw mut domain).cast(),
            &raw mut len,
        )
    };
    r == 0 && domain == libc::AF_UNIX
}

/// Closes every descriptor except 0, 1, 2 and those in `keep`, with `close_range`.
///
/// Unix-domain sockets are not closed but replaced with a placeholder (an `eventfd`):
/// libraries keep global descriptors whose numbers they use again later, and tokio's
/// signal pipe is one: a runtime built in the child duplicates it by number. The
/// placeholder keeps that number valid and private to the child, while the parent's
/// socket itself is released as if closed.
pub(crate) fn close_inherited(keep: &BTreeSet<i32>) -> io::Result<()> {
    let open = open_fds()?;
    let mut keep: BTreeSet<i32> = keep.iter().copied().chain([0, 1, 2]).collect();
    let sockets: Vec<i32> =
        open.iter().copied().filter(|fd| !keep.contains(fd) && is_unix_socket(*fd)).collect();
    if !sockets.is_empty() {
        let placeholder = eventfd()?;
        for fd in sockets {
            // SAFETY: `dup3` makes `fd` a copy of the placeholder, closing the socket that
            // was there. That socket belongs to a value of the parent that the child never
            // uses nor drops (module invariants).
            if unsafe { libc::dup3(placeholder.as_raw_fd(), fd, libc::O_CLOEXEC) } == -1 {
                return Err(io::Error::last_os_error());
            }
            keep.insert(fd);
        }
    }
    let mut first: u32 = 0;
    for &fd in &keep {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd > first {
            close_range(first, fd - 1, &open, &keep)?;
        }
        first = fd.saturating_add(1);
    }
    close_range(first, u32::MAX, &open, &keep)
}

/// Closes `[first, last]`; without `close_range` (before Linux 5.9), closes the open
/// descriptors of that range one by one.
fn close_range(first: u32, last: u32, open: &[i32], keep: &BTreeSet<i32>) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors of the given range; none of them is kept,
    // and those open belong to values of the parent that the child never uses nor drops
    // (module invariants).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    for &fd in open {
        let in_range = u32::try_from(fd).is_ok_and(|fd| (first..=last).contains(&fd));
        if in_range && !keep.contains(&fd) {
            // SAFETY: as above: a descriptor of the parent's that the child never uses.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// A new `eventfd`, close-on-exec and non-blocking.
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just made `fd` and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pidfd for a process (`pidfd_open`, close-on-exec). `ESRCH` if it no longer exists.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just made `fd` (pidfds are close-on-exec) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends a signal to the process a pidfd names. `ESRCH` once it has been reaped.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null `siginfo`
    // (the kernel fills in a default one) and flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Sends a signal to a process by pid.
pub(crate) fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes two ints and has no memory effects.
    if unsafe { libc::kill(pid, signal) } == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Reaps a child: its raw wait status, or `None` while it runs (with `nohang`).
/// Interrupted waits are retried.
pub(crate) fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<libc::c_int>> {
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes one int to the pointer, which points to a local.
        let r = unsafe { libc::waitpid(pid, &raw mut status, flags) };
        match r {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return Ok(None),
            _ => return Ok(Some(status)),
        }
    }
}

/// Whether a child has terminated, without reaping it (`waitid` with `WNOWAIT`).
pub(crate) fn has_terminated(pid: libc::pid_t) -> io::Result<bool> {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    loop {
        // SAFETY: an all-zero `siginfo_t` is a valid value; waitid leaves it so while the
        // child runs.
        let mut info: libc::siginfo_t = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: waitid writes one `siginfo_t` to the pointer, which points to a local.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &raw mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: after a successful waitid the `si_pid` field is initialised (0 while the
        // child runs).
        return Ok(unsafe { info.si_pid() } != 0);
    }
}

/// Registers a pidfd (or any owned descriptor) with the current tokio runtime's reactor.
///
/// # Panics
///
/// Outside a runtime with IO enabled (tokio panics then).
pub(crate) fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` owns its descriptor: it stays open, names the same open file
    // description and is returned by every `as_raw_fd` call until the `OwnedFd` is dropped,
    // which happens only when the `AsyncFd` is dropped or gives it back.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
}

/// Registers a signalfd with the current tokio runtime's reactor, for reading.
///
/// # Panics
///
/// Outside a runtime with IO enabled (tokio panics then).
pub(crate) fn register_signalfd(fd: SignalFd) -> io::Result<AsyncFd<SignalFd>> {
    // SAFETY: a `SignalFd` owns its descriptor (an `OwnedFd` inside) and returns it from
    // every `as_raw_fd` call until it is dropped, which happens only with the `AsyncFd`.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalTime {
    pub(crate) year: i32,
    /// 1 to 12.
    pub(crate) month: u32,
    pub(crate) day: u32,
    /// 0 (Sunday) to 6.
    pub(crate) weekday: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

/// Seconds since the epoch in the local time zone (`localtime_r`: `TZ`, `/etc/localtime`).
pub(crate) fn local_time(secs: i64) -> io::Result<LocalTime> {
    let time: libc::time_t = secs;
    let mut tm = MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: localtime_r reads the time from the first pointer and fills the struct behind
    // the second; both point to locals.
    let r = unsafe { libc::localtime_r(&raw const time, tm.as_mut_ptr()) };
    if r.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: localtime_r succeeded, so it filled `tm`.
    let tm = unsafe { tm.assume_init() };
    let field = |v: libc::c_int| u32::try_from(v).unwrap_or(0);
    Ok(LocalTime {
        year: tm.tm_year + 1900,
        month: field(tm.tm_mon + 1),
        day: field(tm.tm_mday),
        weekday: field(tm.tm_wday),
        hour: field(tm.tm_hour),
        minute: field(tm.tm_min),
        second: field(tm.tm_sec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfd_of_a_missing_process_is_esrch() {
        let e = pidfd_open(i32::MAX).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn local_time_is_sane() {
        let t = local_time(1_800_000_000).unwrap();
        assert!((2027..=2028).contains(&t.year), "{t:?}");
        assert!((1..=12).contains(&t.month) && (1..=31).contains(&t.day));
        assert!(t.weekday < 7 && t.hour < 24 && t.minute < 60 && t.second < 61);
    }

    #[test]
    fn unix_sockets_are_told_apart() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(is_unix_socket(a.as_raw_fd()));
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!is_unix_socket(tcp.as_raw_fd()));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!is_unix_socket(file.as_raw_fd()));
    }

    #[test]
    fn waiting_for_a_non_child_is_echild() {
        assert_eq!(waitpid(1, true).unwrap_err().raw_os_error(), Some(libc::ECHILD));
        assert_eq!(has_terminated(1).unwrap_err().raw_os_error(), Some(libc::ECHILD));
    }
}
