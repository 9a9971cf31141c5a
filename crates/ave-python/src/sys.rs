//! The few calls that need `unsafe`: descriptors handed over by Python as numbers, the
//! interpreter's after-fork hook, and `prctl`.
#![allow(unsafe_code)]

use std::{
    ffi::CString,
    io,
    os::fd::{BorrowedFd, FromRawFd, OwnedFd},
};

use pyo3::{PyResult, exceptions::PyValueError};

fn check_open(fd: i32) -> PyResult<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags; an invalid number gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd < 0 || flags < 0 {
        return Err(PyValueError::new_err(format!("not an open descriptor: {fd}")));
    }
    Ok(())
}

/// Takes ownership of the open descriptor `fd`, which the Python caller gave away (it
/// duplicated or detached it and will not close it).
pub(crate) fn owned_fd(fd: i32) -> PyResult<OwnedFd> {
    check_open(fd)?;
    // SAFETY: the descriptor is open (checked above) and, by this function's contract
    // with its Python callers, owned by nobody else, so it is closed exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A duplicate of the open descriptor `fd`, which stays the caller's.
pub(crate) fn dup_fd(fd: i32) -> PyResult<OwnedFd> {
    check_open(fd)?;
    // SAFETY: the descriptor is open (checked above) and the borrow ends before this
    // function returns, while the caller still holds it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().map_err(|e| crate::errors::plain(&e))
}

/// Borrows the open descriptor `fd` for as long as the caller keeps it open.
pub(crate) fn borrow_fd<'a>(fd: i32) -> PyResult<BorrowedFd<'a>> {
    check_open(fd)?;
    // SAFETY: the descriptor is open (checked above); callers use the borrow only within
    // the call that received the number, while the Python object that owns it is alive.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

unsafe extern "C" {
    /// CPython's hook for a child right after `fork()` (exported by every CPython 3
    /// interpreter, outside the limited API): re-initializes the GIL and thread state for
    /// the one thread left, and runs the `os.register_at_fork` child callbacks.
    fn PyOS_AfterFork_Child();
}

/// Tells the interpreter it now runs in a forked child, as `os.fork()` does.
pub(crate) fn after_fork_child() {
    // SAFETY: called once, in the child, right after the fork, by the thread that held
    // the GIL when it forked (the only thread the child has), which is what the function
    // requires.
    unsafe { PyOS_AfterFork_Child() };
}

/// Sets the signal this process gets when its parent dies (0: none).
pub(crate) fn set_death_signal(signal: i32) -> io::Result<()> {
    let signal =
        libc::c_ulong::try_from(signal).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Sets the kernel name of the calling thread (the process, for its main thread); the
/// kernel keeps 15 bytes.
pub(crate) fn set_process_name(name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of which the kernel copies at most
    // 16 bytes; `name` outlives the call.
    let rc = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The open descriptors of this process (from `/proc/self/fd`).
pub(crate) fn open_fds() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut fds: Vec<i32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    fds.retain(|&fd| check_open(fd).is_ok());
    fds.sort_unstable();
    fds
}

/// Puts a close-on-exec `/dev/null` on the number `fd`, which must be closed: a Python or
/// Rust object of the parent that still holds that number closes the placeholder when it
/// goes, never a descriptor the child opened since.
pub(crate) fn placeholder(fd: i32) -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    let source = std::os::fd::AsRawFd::as_raw_fd(&null);
    if source == fd {
        // The lowest free number was this one: the open itself is the placeholder
        // (close-on-exec, as std opens files).
        let _ = std::os::fd::IntoRawFd::into_raw_fd(null);
        return Ok(());
    }
    // SAFETY: dup3 duplicates an open descriptor onto a number this process does not use
    // (the caller closed it); no memory is touched and `null` is closed by its own drop.
    let rc = unsafe { libc::dup3(source, fd, libc::O_CLOEXEC) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
