//! Descriptor passing with `SCM_RIGHTS`: the two system calls, and the one place where
//! received descriptors become [`OwnedFd`]s.
//!
//! Invariants this file relies on:
//! - `recvmsg` is called with `MSG_CMSG_CLOEXEC`, so every descriptor the kernel installs
//!   is close-on-exec from its first instant (no window in which a concurrent `exec`
//!   could inherit it);
//! - every descriptor the kernel installed in our table during that call is found by
//!   walking the control messages it wrote (bounded by the control length it reported),
//!   and is wrapped in an `OwnedFd` before anything else can fail, including when the
//!   control data was truncated (`MSG_CTRUNC`): those are closed, not leaked.

use std::{
    io::{self, IoSlice},
    mem,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
    ptr,
};

use nix::{
    errno::Errno,
    libc,
    sys::socket::{ControlMessage, MsgFlags, sendmsg},
};

/// The most descriptors one message may carry on Linux (`SCM_MAX_FD`).
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 253;

/// Sends `data` and `fds` with one `sendmsg`. Returns the number of bytes sent, which may
/// be fewer than `data.len()` (the descriptors always travel with the first byte); the
/// caller sends the rest without descriptors. Never raises `SIGPIPE`.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            result => return result.map_err(io::Error::from),
        }
    }
}

/// What one `recvmsg` gave.
#[derive(Debug)]
pub(crate) struct Received {
    /// The number of bytes written to the start of the buffer (0: end of stream, unless
    /// descriptors arrived).
    pub(crate) len: usize,
    /// The descriptors received, close-on-exec, in the order they were sent.
    pub(crate) fds: Vec<OwnedFd>,
    /// Whether the kernel had to drop control data (`MSG_CTRUNC`): more descriptors were
    /// sent than `max_fds`. The ones that did arrive are in `fds`.
    pub(crate) truncated: bool,
}

/// Receives once into `buf`, with room for up to `max_fds` descriptors.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<Received> {
    let fd_bytes = u32::try_from(max_fds.min(MAX_FDS_PER_MESSAGE) * mem::size_of::<libc::c_int>())
        .map_err(io::Error::other)?;
    // The buffer is sized with CMSG_SPACE (aligned), but the length given to the kernel is
    // CMSG_LEN: exactly `max_fds` descriptors fit, and one more truncates (CMSG_SPACE
    // rounds up to 8 bytes, which would silently make room for an extra descriptor).
    let (space, control_len) = if max_fds == 0 {
        (0, 0)
    } else {
        // SAFETY: CMSG_SPACE is pure arithmetic; it reads no memory.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes) };
        // SAFETY: CMSG_LEN is pure arithmetic; it reads no memory.
        let len = unsafe { libc::CMSG_LEN(fd_bytes) };
        (space as usize, len as usize)
    };
    // u64 elements: the control buffer must be aligned for `cmsghdr`.
    let mut control = vec![0u64; space.div_ceil(mem::size_of::<u64>())];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: `msghdr` is a plain C struct for which all-zero bytes are a valid value
    // (null pointers, zero lengths and flags).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if space > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_len as _;
    }
    let len = loop {
        // SAFETY: `msg` points to one valid iovec over `buf` (writable, `buf.len()` bytes)
        // and to `control` (writable, `space` bytes, aligned), all of which outlive the
        // call; `sock` is an open descriptor for the duration of the borrow.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let fds = take_fds(&msg);
    Ok(Received { len, fds, truncated: msg.msg_flags & libc::MSG_CTRUNC != 0 })
}

/// Every descriptor in the `SCM_RIGHTS` control messages of a `msghdr` that `recvmsg`
/// just filled, owned.
fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    if msg.msg_control.is_null() {
        return fds;
    }
    let control_end = msg.msg_control as usize + msg.msg_controllen;
    // SAFETY: `msg` was filled by a successful `recvmsg`; CMSG_FIRSTHDR only reads its
    // control pointer and length.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return either null or a pointer to a whole,
        // aligned `cmsghdr` inside the control buffer (they check the reported length).
        let header = unsafe { ptr::read(cmsg) };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_DATA is pointer arithmetic on a valid header pointer.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            // SAFETY: CMSG_LEN is pure arithmetic.
            let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
            // Never read past what the kernel reported as written, whatever the header says.
            let claimed = (header.cmsg_len as usize).saturating_sub(header_len);
            let available = control_end.saturating_sub(data as usize);
            let count = claimed.min(available) / mem::size_of::<libc::c_int>();
            for i in 0..count {
                let slot = data.cast::<libc::c_int>().wrapping_add(i);
                // SAFETY: `i < count`, so the int lies inside the control data the kernel
                // wrote; it may be unaligned, hence `read_unaligned`.
                let raw = unsafe { ptr::read_unaligned(slot) };
                if raw >= 0 {
                    // SAFETY: the kernel just installed this descriptor in our table for
                    // this call; nothing else in the process knows it, so we own it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        // SAFETY: `cmsg` is a header inside `msg`'s control buffer; CMSG_NXTHDR checks the
        // next one against the control length.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    fds
}

#[cfg(test)]
mod tests {
    use std::os::{fd::AsFd, unix::net::UnixStream};

    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe().unwrap()
    }

    fn cloexec(fd: &OwnedFd) -> bool {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
    }

    #[test]
    fn descriptors_arrive_close_on_exec_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let pipes: Vec<_> = (0..3).map(|_| pipe()).collect();
        let ends: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
        assert_eq!(send_with_fds(a.as_fd(), b"abc", &ends).unwrap(), 3);
        let mut buf = [0u8; 16];
        let got = recv_with_fds(b.as_fd(), &mut buf, 3).unwrap();
        assert_eq!((&buf[..got.len], got.fds.len(), got.truncated), (&b"abc"[..], 3, false));
        assert!(got.fds.iter().all(cloexec));
        for ((read, _), write) in pipes.iter().zip(&got.fds) {
            nix::unistd::write(write, b"x").unwrap();
            let mut one = [0u8; 1];
            assert_eq!(nix::unistd::read(read, &mut one).unwrap(), 1);
        }
    }

    #[test]
    fn truncation_is_reported_and_what_arrived_is_owned() {
        let (a, b) = UnixStream::pair().unwrap();
        let (read, write) = pipe();
        let (read2, write2) = pipe();
        send_with_fds(a.as_fd(), b"x", &[write.as_fd(), write2.as_fd()]).unwrap();
        drop((write, write2));
        let mut buf = [0u8; 4];
        let got = recv_with_fds(b.as_fd(), &mut buf, 1).unwrap();
        assert!(got.truncated);
        assert_eq!(got.fds.len(), 1);
        drop(got);
        // Every copy of both write ends is closed: the readers see end of file.
        for read in [read, read2] {
            assert_eq!(nix::unistd::read(&read, &mut [0u8; 1]).unwrap(), 0);
        }
    }
}
