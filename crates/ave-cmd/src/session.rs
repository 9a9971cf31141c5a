//! Finding the live processes of a session, as pidfds, so they can be signalled and
//! waited for without racing pid reuse.

use std::{
    fs,
    os::fd::{AsFd, OwnedFd},
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    unistd::{Pid, getsid},
};

use crate::sys;

/// A live member of a session.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: OwnedFd,
}

/// The live processes of session `sid`, except `exclude`, each with a pidfd opened while
/// the process was verified to be in the session (so a reused pid is never signalled).
///
/// One `getsid` per process of the system: much cheaper than reading every
/// `/proc/<pid>/stat`.
pub(crate) fn members(sid: libc::pid_t, exclude: libc::pid_t) -> Vec<Member> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        if pid == exclude || session_of(pid) != Some(sid) {
            continue;
        }
        let Ok(pidfd) = sys::pidfd_open(pid) else { continue };
        // The pidfd names whichever process had this pid when it was opened; check again
        // that it is the one in the session. A readable pidfd is a process that has
        // exited already (a zombie whose parent has not reaped it, which may never
        // happen under a careless init): nothing to end there.
        if session_of(pid) == Some(sid) && !exited(&pidfd) {
            found.push(Member { pid, pidfd });
        }
    }
    found
}

/// Whether the process a pidfd names has exited (its pidfd is readable).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// The session id of a process, if it exists.
fn session_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    getsid(Some(Pid::from_raw(pid))).ok().map(Pid::as_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_session_is_found() {
        let me = std::process::id().cast_signed();
        let sid = getsid(None).unwrap().as_raw();
        assert_eq!(session_of(me), Some(sid));
        assert!(members(sid, 0).iter().any(|m| m.pid == me));
        assert!(!members(sid, me).iter().any(|m| m.pid == me));
        // Pid numbers never reach i32::MAX (pid_max is at most 2^22).
        assert_eq!(session_of(i32::MAX), None);
    }

    #[test]
    fn zombies_are_not_members() {
        let sid = getsid(None).unwrap().as_raw();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id().cast_signed();
        let pidfd = sys::pidfd_open(pid).unwrap();
        // Wait for the exit without reaping: the child is a zombie in our session.
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::NONE).unwrap();
        assert_eq!(session_of(pid), Some(sid));
        assert!(!members(sid, 0).iter().any(|m| m.pid == pid));
        child.wait().unwrap();
    }
}
