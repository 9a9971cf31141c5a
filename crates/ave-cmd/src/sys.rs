//! The system calls nix does not wrap safely: pty ioctls, `posix_spawn` with a new
//! session and a controlling terminal, pidfds and raw wait statuses.
//!
//! Invariants this module relies on:
//! - every descriptor it creates is close-on-exec and is returned as an `OwnedFd` at once;
//! - the child is started with `posix_spawn` (glibc runs it with `CLONE_VM | CLONE_VFORK`
//!   and reports a failed file action or exec to the parent), so no code of this process
//!   ever runs in the child: no `pre_exec` closure, no fork of the caller;
//! - pids passed to `waitpid` are our own unreaped children, so they cannot have been
//!   reused; signals go through pidfds, which name one process for good;
//! - `fork` happens only in a single-threaded process (`Guard::start` checks), and the
//!   forked guard never returns to its caller's code (it ends with `_exit`), which makes
//!   closing descriptors by number there sound.

#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString},
    io,
    mem::MaybeUninit,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    ptr,
};

use nix::{
    fcntl::{OFlag, open},
    sys::stat::Mode,
};
use tokio::io::{Interest, unix::AsyncFd};

/// Opens a new pty master: read-write, not our controlling terminal, close-on-exec and
/// non-blocking. Returns it with the path of its slave, unlocked and with the window size
/// set.
pub(crate) fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, CString)> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    let fd = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: `fd` is a valid pty master (owned above) and TIOCSPTLCK reads one `int`
    // from the pointer, which points to a live local.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &raw const unlock) })?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one `unsigned int` through the pointer, which points to a
    // live local.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &raw mut number) })?;
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` through the pointer, which points to a
    // live, initialised local.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &raw const size) })?;
    let path = CString::new(format!("/dev/pts/{number}")).map_err(io::Error::other)?;
    Ok((master, path))
}

/// Reads the window size of a terminal.
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which points to a
    // live local.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &raw mut size) })?;
    Ok((size.ws_row, size.ws_col))
}

/// Sets the window size of a terminal (the child gets `SIGWINCH`).
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` through the pointer, which points to a
    // live, initialised local.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) })?;
    Ok(())
}

// `spawn` writes the first 8 bytes of a `sigset_t`.
const _: () = assert!(size_of::<libc::sigset_t>() >= 8);

/// What the child is started with.
pub(crate) struct SpawnRequest<'a> {
    /// The path to execute (already resolved through `PATH`).
    pub(crate) program: &'a CStr,
    pub(crate) argv: &'a [CString],
    /// `NAME=value` entries.
    pub(crate) envp: &'a [CString],
    /// The pty slave, opened in the child as its stdin, stdout, stderr and controlling
    /// terminal.
    pub(crate) slave: &'a CStr,
    pub(crate) cwd: Option<&'a CStr>,
}

/// Starts a child with `posix_spawn`: a new session (`setsid`), the pty slave opened as
/// descriptor 0 (which makes it the controlling terminal of the new session, since the
/// child is a session leader without one) and duplicated to 1 and 2, every other
/// descriptor closed (`close_range` in the child), every signal disposition reset to the
/// default and an empty signal mask, then `chdir` and `execve`.
///
/// A failure of any of these steps in the child is returned here, with the child already
/// gone; on success the child has executed the program.
pub(crate) fn spawn(request: &SpawnRequest<'_>) -> io::Result<libc::pid_t> {
    let argv = null_terminated(request.argv);
    let envp = null_terminated(request.envp);
    let actions = FileActions::new()?;
    let attr = SpawnAttr::new()?;
    // SAFETY (every call below): the pointers are to the initialised `actions`/`attr`
    // objects, owned until after `posix_spawn` returns, and to NUL-terminated strings that
    // outlive the calls (`posix_spawn` copies what it needs before returning).
    {
        let a = actions.as_ptr();
        // SAFETY: see above.
        cvt_rc(unsafe {
            libc::posix_spawn_file_actions_addopen(a, 0, request.slave.as_ptr(), libc::O_RDWR, 0)
        })?;
        // SAFETY: see above.
        cvt_rc(unsafe { libc::posix_spawn_file_actions_adddup2(a, 0, 1) })?;
        // SAFETY: see above.
        cvt_rc(unsafe { libc::posix_spawn_file_actions_adddup2(a, 0, 2) })?;
        if let Some(cwd) = request.cwd {
            // SAFETY: see above.
            cvt_rc(unsafe { libc::posix_spawn_file_actions_addchdir_np(a, cwd.as_ptr()) })?;
        }
        // SAFETY: see above.
        cvt_rc(unsafe { libc::posix_spawn_file_actions_addclosefrom_np(a, 3) })?;
    }
    {
        let p = attr.as_ptr();
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `sigfillset` initialises the set it is given.
        cvt(unsafe { libc::sigfillset(all.as_mut_ptr()) })?;
        // glibc's `sigfillset` leaves out the two signals it uses internally (32 and 33),
        // and its `posix_spawn` then sets them to SIG_IGN in the child, which exec keeps.
        // Add them by hand so the program starts with every disposition at its default.
        // SAFETY: on Linux, glibc's `sigset_t` is the kernel's signal bitmap, an array of
        // at least 64 bits where signal n is bit n-1; the first 8 bytes hold signals 1 to
        // 64, all of Linux's signals. The set was initialised just before, and the write
        // stays within it (`sigset_t` is 128 bytes).
        unsafe { all.as_mut_ptr().cast::<u64>().write_unaligned(u64::MAX) };
        let mut none = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `sigemptyset` initialises the set it is given.
        cvt(unsafe { libc::sigemptyset(none.as_mut_ptr()) })?;
        // SAFETY: see above; both sets were initialised just before.
        cvt_rc(unsafe { libc::posix_spawnattr_setsigdefault(p, all.as_ptr()) })?;
        // SAFETY: see above.
        cvt_rc(unsafe { libc::posix_spawnattr_setsigmask(p, none.as_ptr()) })?;
        let flags = libc::POSIX_SPAWN_SETSID
            | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short
            | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short;
        // SAFETY: see above.
        cvt_rc(unsafe { libc::posix_spawnattr_setflags(p, flags) })?;
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: see above; `argv` and `envp` are NULL-terminated arrays of pointers to
    // NUL-terminated strings owned by `request`, alive for the call.
    cvt_rc(unsafe {
        libc::posix_spawn(
            &raw mut pid,
            request.program.as_ptr(),
            actions.as_ptr(),
            attr.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    Ok(pid)
}

fn null_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings.iter().map(|s| s.as_ptr().cast_mut()).chain(std::iter::once(ptr::null_mut())).collect()
}

/// An initialised `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(Box<MaybeUninit<libc::posix_spawn_file_actions_t>>);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        let mut inner = Box::new(MaybeUninit::uninit());
        // SAFETY: `init` initialises the object behind the pointer.
        cvt_rc(unsafe { libc::posix_spawn_file_actions_init(inner.as_mut_ptr()) })?;
        Ok(FileActions(inner))
    }

    fn as_ptr(&self) -> *mut libc::posix_spawn_file_actions_t {
        self.0.as_ptr().cast_mut()
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: the object was initialised in `new` and is destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(self.0.as_mut_ptr()) };
    }
}

/// An initialised `posix_spawnattr_t`, destroyed on drop.
struct SpawnAttr(Box<MaybeUninit<libc::posix_spawnattr_t>>);

impl SpawnAttr {
    fn new() -> io::Result<SpawnAttr> {
        let mut inner = Box::new(MaybeUninit::uninit());
        // SAFETY: `init` initialises the object behind the pointer.
        cvt_rc(unsafe { libc::posix_spawnattr_init(inner.as_mut_ptr()) })?;
        Ok(SpawnAttr(inner))
    }

    fn as_ptr(&self) -> *mut libc::posix_spawnattr_t {
        self.0.as_ptr().cast_mut()
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: the object was initialised in `new` and is destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.0.as_mut_ptr()) };
    }
}

/// Registers a descriptor with the current tokio runtime's reactor. Gives the descriptor
/// back with the error if that fails, including when there is no runtime.
///
/// # Panics
///
/// If the current runtime was built without IO (tokio panics then).
pub(crate) fn register(
    fd: OwnedFd,
    interest: Interest,
) -> Result<AsyncFd<OwnedFd>, (OwnedFd, io::Error)> {
    if tokio::runtime::Handle::try_current().is_err() {
        let error = io::Error::other("no tokio runtime: the async API must run inside one");
        return Err((fd, error));
    }
    // SAFETY: an `OwnedFd` owns its descriptor: it stays open, names the same open file
    // description and is returned by every `as_raw_fd` call until the `OwnedFd` is dropped,
    // which happens only when the `AsyncFd` is dropped or gives it back.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts())
}

/// A pidfd for a process (`pidfd_open`, close-on-exec). `ESRCH` if it no longer exists.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just installed `fd` in our table and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends a signal to the process a pidfd names. `ESRCH` once it has been reaped.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a null `siginfo`
    // pointer (allowed: the kernel fills in a default one) and flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Reaps our child `pid` and returns its raw wait status; `None` if `nohang` and it has
/// not exited yet. Retries on `EINTR`.
pub(crate) fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<libc::c_int>> {
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a live local the kernel writes one int to.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, flags) };
        match rc {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(status)),
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

/// Forks this process, which must have a single thread (the caller checks it: with one
/// thread, the child is a complete copy and may run any code). Returns the child's pid
/// in the parent and `None` in the child.
#[expect(
    clippy::disallowed_methods,
    reason = "the guard's fork, from a process checked to have one thread"
)]
pub(crate) fn fork_single_threaded() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the caller checked that this process has one thread, and only this thread
    // could start another; so no lock or allocator state is held by a thread that does
    // not exist in the child.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(None),
    }
}

/// Ends this process at once, without running exit handlers or flushing buffers (which,
/// in a forked guard, belong to the parent's copy of the program).
pub(crate) fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: `_exit` takes a status and never returns; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Sets a signal's disposition to "ignore".
pub(crate) fn ignore_signal(
    signal: nix::sys::signal::Signal,
) -> nix::Result<nix::sys::signal::SigHandler> {
    // SAFETY: `SigIgn` installs no handler function, so no code can run in signal context.
    unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn) }
}

/// Makes descriptor `target` a duplicate of `fd` (`dup2`), without close-on-exec.
pub(crate) fn dup_onto(fd: BorrowedFd<'_>, target: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is open (borrowed); `dup2` replaces whatever `target` was. Used only
    // in the guard process for 0, 1 and 2, which no Rust object there owns.
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
    Ok(())
}

/// Closes a descriptor by number.
pub(crate) fn close_raw(fd: libc::c_int) {
    // SAFETY: used only in the guard process, a fork that never returns to the code that
    // owns its inherited descriptors (it ends with `_exit`), so nothing uses or closes
    // them again.
    unsafe { libc::close(fd) };
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// For the `posix_spawn*` family, which returns the error number instead of setting errno.
fn cvt_rc(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn pty_has_the_requested_window_size() {
        let (master, path) = open_pty(24, 80).unwrap();
        assert!(path.to_str().unwrap().starts_with("/dev/pts/"));
        assert_eq!(window_size(master.as_fd()).unwrap(), (24, 80));
        set_window_size(master.as_fd(), 50, 132).unwrap();
        assert_eq!(window_size(master.as_fd()).unwrap(), (50, 132));
    }

    #[test]
    fn pidfd_of_a_missing_process_is_esrch() {
        // Pid numbers never reach i32::MAX (pid_max is at most 2^22).
        let error = pidfd_open(i32::MAX).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ESRCH));
    }
}
