//! `FdTx`: passing open descriptors (sockets, files, pipes) to another process over a Unix
//! socket, as the original's `ave.network.fdtx` and its C helper `libfdtx`.
//!
//! A message is one chunk of bytes plus up to [`MAX_FDS`] descriptors, sent with one
//! `sendmsg` and an `SCM_RIGHTS` control message: the convention of the original, so an
//! unmodified peer reads what [`FdTx::put`] sends and [`FdTx::get`] reads what it sends
//! (the broker handover: a 16-digit session key plus one socket per message, read with
//! `get(32, 2)`).
//!
//! Where the original was careless, this one is not (spec section 13, item 18):
//! - send errors are reported;
//! - there is no limit of 8 descriptors (and no stack overflow above it): up to the
//!   kernel's 253 per message;
//! - received descriptors are close-on-exec from the start (`MSG_CMSG_CLOEXEC`) and come
//!   back as [`OwnedFd`]s, so they are closed when dropped;
//! - truncated control data (`MSG_CTRUNC`: more descriptors were sent than the receiver
//!   made room for) is an error, and the descriptors that did arrive are closed;
//! - the number of bytes received is returned, and bytes are not cut at the first NUL;
//! - [`FdTxListener::listen`] reports why it cannot create its directory;
//!   [`FdTx::connect`] waits until the socket exists *and* accepts.
//!
//! The stream is `SOCK_STREAM`, as in the original: message boundaries are not kept, but on
//! Linux a receive never goes past a segment that carried descriptors, so traffic of one
//! short text plus descriptors per message stays aligned. Protocols that send longer texts
//! should frame them (the live handover of [`crate::handover`] does).
//!
//! # Example
//!
//! ```
//! use std::{fs::File, io::Read, os::fd::AsFd};
//!
//! use ave_network::fdtx::{FdTx, MAX_FDS};
//!
//! let (sender, receiver) = FdTx::pair()?;
//! let file = File::open("/proc/self/status")?;
//! sender.put(b"here is a file", &[file.as_fd()])?;
//! let received = receiver.get(64, MAX_FDS)?;
//! assert_eq!(received.bytes, b"here is a file");
//! let mut text = String::new();
//! File::from(received.fds.into_iter().next().expect("one descriptor")).read_to_string(&mut text)?;
//! assert!(text.starts_with("Name:"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    fmt, fs, io,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::{
            fs::{DirBuilderExt, FileTypeExt, PermissionsExt},
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ave_exceptions::NetworkError;
use tokio::io::Interest;

use crate::{Error, sys::fdtx as sys};

/// The most descriptors one message may carry (Linux's `SCM_MAX_FD`).
pub const MAX_FDS: usize = sys::MAX_FDS_PER_MESSAGE;

/// How often [`FdTx::connect`] tries again while the socket is missing or refuses.
const CONNECT_RETRY: Duration = Duration::from_millis(20);

/// One message received: its bytes and its descriptors.
#[derive(Debug)]
pub struct Received {
    /// The bytes, exactly as many as arrived (at most the `max_len` asked for).
    pub bytes: Vec<u8>,
    /// The descriptors, in the order they were sent, owned and close-on-exec.
    pub fds: Vec<OwnedFd>,
}

/// A listening Unix socket for one [`FdTx`] peer, as the original's `FdTx.listen`.
///
/// The socket file is removed by [`FdTxListener::close`], or when the listener is dropped.
pub struct FdTxListener {
    listener: UnixListener,
    path: PathBuf,
}

impl fmt::Debug for FdTxListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdTxListener").field("path", &self.path).finish()
    }
}

impl FdTxListener {
    /// Listens at `dir/name`, `name` defaulting to 16 random decimal digits.
    ///
    /// `dir` is created if it is missing, with mode 0700 (an existing directory keeps its
    /// mode). The socket file gets mode 0600, so only this user (and root) can connect.
    ///
    /// # Errors
    ///
    /// [`Error::BadArgument`] for an empty name or one with a `/`;
    /// [`Error::Io`]: the directory cannot be created or is not a directory, the path
    /// already exists (`AlreadyExists`, as the original's `file already exists`), the path
    /// is too long for a Unix socket (108 bytes), or the socket cannot be bound.
    pub fn listen(dir: impl AsRef<Path>, name: Option<&str>) -> Result<FdTxListener, Error> {
        let dir = dir.as_ref();
        let name = match name {
            Some(name) => name.to_owned(),
            None => random_name()?,
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::BadArgument {
                what: "socket name",
                value: name,
                expected: "a non-empty file name without '/'",
            });
        }
        ensure_private_dir(dir)?;
        let path = dir.join(name);
        let context = || format!("listen on {}", path.display());
        if fs::symlink_metadata(&path).is_ok() {
            return Err(Error::io(context(), io::Error::from(io::ErrorKind::AlreadyExists)));
        }
        let listener = UnixListener::bind(&path).map_err(|e| Error::io(context(), e))?;
        let listener = FdTxListener { listener, path };
        fs::set_permissions(&listener.path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("restrict {}", listener.path.display()), e))?;
        Ok(listener)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one peer within `timeout` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`timed out`) if no peer connects in time, [`Error::Io`] for
    /// other failures.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<FdTx, Error> {
        wait_for(self.listener.as_fd(), Interest::READABLE, timeout.map(|t| Instant::now() + t))?;
        let (stream, _) = self.listener.accept().map_err(|e| Error::io("accept a peer", e))?;
        Ok(FdTx { stream })
    }

    /// Stops listening and removes the socket file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be removed (a missing file is not an error).
    pub fn close(mut self) -> Result<(), Error> {
        let path = std::mem::take(&mut self.path);
        drop(self);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(format!("remove {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for FdTxListener {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A connected Unix socket that carries messages with descriptors.
pub struct FdTx {
    stream: UnixStream,
}

impl fmt::Debug for FdTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdTx").field("peer", &self.stream.peer_addr().ok()).finish()
    }
}

impl FdTx {
    /// Connects to the socket at `path`, waiting up to `timeout` for it to exist and to
    /// accept (the original only waited for the file to exist).
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`no such socket file: <path>` if it never appeared, otherwise
    /// `connection attempt timed out`), or [`Error::Io`] for other failures such as a path
    /// that is not a socket or a permission error.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<FdTx, Error> {
        let path = path.as_ref();
        let deadline = Instant::now() + timeout;
        loop {
            let missing = match UnixStream::connect(path) {
                Ok(stream) => return Ok(FdTx { stream }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => false,
                Err(e) => return Err(Error::io(format!("connect to {}", path.display()), e)),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let message = if missing {
                    format!("no such socket file: {}", path.display())
                } else {
                    "connection attempt timed out".to_owned()
                };
                return Err(Error::Network(NetworkError::Timeout(message)));
            }
            std::thread::sleep(left.min(CONNECT_RETRY));
        }
    }

    /// Two connected ends, for a parent and the child it forks.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket pair cannot be created.
    pub fn pair() -> Result<(FdTx, FdTx), Error> {
        let (a, b) = UnixStream::pair().map_err(|e| Error::io("create a socket pair", e))?;
        Ok((FdTx { stream: a }, FdTx { stream: b }))
    }

    /// Wraps a connected Unix stream socket.
    pub fn from_stream(stream: UnixStream) -> FdTx {
        FdTx { stream }
    }

    /// The socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Bounds every later [`FdTx::put`] and [`FdTx::get`] (`None`: no limit, the default).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket options cannot be set.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let set = || {
            self.stream.set_read_timeout(timeout)?;
            self.stream.set_write_timeout(timeout)
        };
        set().map_err(|e| Error::io("set the socket timeouts", e))
    }

    /// Sends `message` and `fds` as one message: one `sendmsg` carries the descriptors and
    /// as much of the text as the socket takes, and the rest of the text follows.
    ///
    /// The descriptors stay open here: the peer receives new descriptors for the same
    /// open files.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyFds`] for more than [`MAX_FDS`] descriptors; [`Error::BadArgument`]
    /// for descriptors without a byte to carry them; `ConnectionClosed` if the peer is gone; `ConnectionTimeout`
    /// (`write attempt timed out`) if a timeout is set and runs out, after which the
    /// stream may hold part of the message and should be closed; [`Error::Io`] otherwise
    /// (`EBADF` for a descriptor that is not open, `ETOOMANYREFS`, ...).
    pub fn put(&self, message: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        check_put(message, fds)?;
        let mut sent = 0;
        let mut fds = fds;
        while sent < message.len() {
            match sys::send_with_fds(self.stream.as_fd(), &message[sent..], fds) {
                Ok(n) => {
                    sent += n;
                    fds = &[];
                }
                Err(e) if is_timeout(&e) => {
                    return Err(Error::Network(NetworkError::Timeout(
                        "write attempt timed out".to_owned(),
                    )));
                }
                Err(e) => return Err(send_error(e)),
            }
        }
        Ok(())
    }

    /// Receives once: up to `max_len` bytes and up to `max_fds` descriptors.
    ///
    /// Unlike the original, the bytes are returned as they arrived (not cut at a NUL) and
    /// only the descriptors that arrived are returned (no `-1` padding): compare their
    /// number with what your protocol expects.
    ///
    /// # Errors
    ///
    /// [`Error::BadArgument`] for a `max_len` of 0; `ConnectionClosed` at end of stream;
    /// [`Error::Protocol`] if the peer sent more than `max_fds` descriptors (the ones that
    /// arrived are closed); `ConnectionTimeout` if a timeout is set and runs out;
    /// [`Error::Io`] otherwise.
    pub fn get(&self, max_len: usize, max_fds: usize) -> Result<Received, Error> {
        if max_len == 0 {
            return Err(Error::BadArgument {
                what: "buffer length",
                value: "0".to_owned(),
                expected: "at least one byte",
            });
        }
        let mut bytes = vec![0u8; max_len];
        let got = match sys::recv_with_fds(self.stream.as_fd(), &mut bytes, max_fds) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) => return Err(Error::Network(NetworkError::timeout())),
            Err(e) => return Err(recv_error(e)),
        };
        let received = checked(got, max_fds)?;
        bytes.truncate(received.0);
        Ok(Received { bytes, fds: received.1 })
    }

    /// Closes both directions, then the socket, as the original's `close`. (A listener's
    /// socket file is removed by [`FdTxListener::close`].)
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl AsFd for FdTx {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl From<FdTx> for OwnedFd {
    fn from(tx: FdTx) -> OwnedFd {
        tx.stream.into()
    }
}

/// The tokio side of an [`FdTx`], for the live handover: the same messages, waiting for
/// readiness in the runtime (through `async_io`, so readiness is cleared correctly after
/// `EAGAIN`).
#[derive(Debug)]
pub(crate) struct AsyncFdTx {
    stream: tokio::net::UnixStream,
}

impl AsyncFdTx {
    pub(crate) fn new(stream: UnixStream) -> Result<AsyncFdTx, Error> {
        let setup = || {
            stream.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(stream)
        };
        setup().map(|stream| AsyncFdTx { stream }).map_err(|e| Error::io("use a Unix socket", e))
    }

    pub(crate) fn stream(&self) -> &tokio::net::UnixStream {
        &self.stream
    }

    /// The socket, out of the runtime it was registered with (to move to another).
    pub(crate) fn into_std(self) -> Result<UnixStream, Error> {
        self.stream.into_std().map_err(|e| Error::io("take a Unix socket out of the runtime", e))
    }

    /// As [`FdTx::put`].
    pub(crate) async fn put(&self, message: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
        check_put(message, fds)?;
        let mut sent = 0;
        let mut fds = fds;
        while sent < message.len() {
            let n = self
                .stream
                .async_io(Interest::WRITABLE, || {
                    sys::send_with_fds(self.stream.as_fd(), &message[sent..], fds)
                })
                .await
                .map_err(send_error)?;
            sent += n;
            fds = &[];
        }
        Ok(())
    }

    /// Receives once into `buf`: the number of bytes (0 at end of stream) and the
    /// descriptors.
    pub(crate) async fn get_into(
        &self,
        buf: &mut [u8],
        max_fds: usize,
    ) -> Result<(usize, Vec<OwnedFd>), Error> {
        let got = self
            .stream
            .async_io(Interest::READABLE, || sys::recv_with_fds(self.stream.as_fd(), buf, max_fds))
            .await
            .map_err(recv_error)?;
        checked(got, max_fds)
    }
}

fn check_put(message: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Error> {
    if fds.len() > MAX_FDS {
        return Err(Error::TooManyFds { count: fds.len(), max: MAX_FDS });
    }
    if message.is_empty() && !fds.is_empty() {
        return Err(Error::BadArgument {
            what: "message",
            value: String::new(),
            expected: "at least one byte for the descriptors to travel with",
        });
    }
    Ok(())
}

/// The bytes and descriptors of a receive, or the error it stands for.
fn checked(got: sys::Received, max_fds: usize) -> Result<(usize, Vec<OwnedFd>), Error> {
    if got.truncated {
        let arrived = got.fds.len();
        drop(got.fds);
        return Err(Error::Protocol(format!(
            "control data truncated: the peer sent more than {max_fds} descriptors \
             ({arrived} arrived and were closed)"
        )));
    }
    if got.len == 0 && got.fds.is_empty() {
        return Err(Error::Network(NetworkError::closed()));
    }
    Ok((got.len, got.fds))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn send_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::NotConnected => Error::Network(NetworkError::Closed(e.to_string())),
        _ => Error::io("send a message with descriptors", e),
    }
}

fn recv_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected => {
            Error::Network(NetworkError::Closed(e.to_string()))
        }
        _ => Error::io("receive a message with descriptors", e),
    }
}

/// 16 random decimal digits, as the original's default socket name.
fn random_name() -> Result<String, Error> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random)
        .map_err(|e| Error::io("read random bytes", io::Error::other(e.to_string())))?;
    // 250 is a multiple of 10 below 256: rejection keeps every digit equally likely.
    let mut name = String::with_capacity(16);
    let mut pool = random.to_vec();
    while name.len() < 16 {
        match pool.pop() {
            Some(b) if b < 250 => name.push(char::from(b'0' + b % 10)),
            Some(_) => {}
            None => {
                let mut more = [0u8; 16];
                getrandom::fill(&mut more)
                    .map_err(|e| Error::io("read random bytes", io::Error::other(e.to_string())))?;
                pool.extend_from_slice(&more);
            }
        }
    }
    Ok(name)
}

/// Creates `dir` (and its parents) with mode 0700 if it is missing; an existing directory
/// keeps its mode.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::io(
            format!("use {} as a directory", dir.display()),
            io::Error::from(io::ErrorKind::NotADirectory),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e)),
        Err(e) => Err(Error::io(format!("inspect {}", dir.display()), e)),
    }
}

/// Whether `path` is a Unix socket file.
pub(crate) fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Waits until `fd` is ready for `interest`, or the deadline passes.
fn wait_for(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
) -> Result<(), Error> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let flags = if interest.is_readable() { PollFlags::POLLIN } else { PollFlags::POLLOUT };
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Network(NetworkError::timeout()));
                }
                // Round up so a sub-millisecond remainder does not become a busy loop.
                let millis = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(u32::try_from(millis).unwrap_or(u32::MAX))
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, wait) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("wait on a socket", e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_are_16_digits() {
        let a = random_name().unwrap();
        let b = random_name().unwrap();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_digit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn put_refuses_what_cannot_be_sent() {
        let (a, _b) = FdTx::pair().unwrap();
        let err = a.put(b"", &[a.as_fd()]).unwrap_err();
        assert!(matches!(err, Error::BadArgument { what: "message", .. }), "{err}");
        let many = vec![a.as_fd(); MAX_FDS + 1];
        let err = a.put(b"x", &many).unwrap_err();
        assert!(matches!(err, Error::TooManyFds { count: 254, max: MAX_FDS }), "{err:?}");
        assert_eq!(err.to_string(), "254 descriptors in one message; at most 253 fit");
        assert!(matches!(a.get(0, 1), Err(Error::BadArgument { what: "buffer length", .. })));
    }
}
