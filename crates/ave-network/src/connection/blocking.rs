//! [`BlockingConnection`]: a framed connection for synchronous callers.

use std::{
    fmt,
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsFd,
    time::{Duration, Instant},
};

use ave_exceptions::NetworkError;
use serde::Serialize;

use crate::{
    Error,
    connection::{
        Address, ConnectionParts, KEEP_OUTPUT, OPTIMIST_RETRY, configure_socket, connect_timeout,
        map_read_error, map_write_error,
    },
    wire::{
        frame::{self, DEFAULT_MAX_FRAME, FrameBuffer},
        json,
    },
};

/// What [`BlockingConnection::poll`] waits for, and what it found: the original's `poll`
/// mask (`POLLIN`, `POLLOUT`) and events (`POLLHUP`, `POLLERR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Input is waiting (or the end of the stream).
    pub readable: bool,
    /// The socket takes more output.
    pub writable: bool,
    /// The peer hung up or the socket has an error (only ever reported, never asked for).
    pub closed: bool,
}

impl Readiness {
    /// Ready to read.
    pub const READ: Readiness = Readiness { readable: true, writable: false, closed: false };
    /// Ready to write.
    pub const WRITE: Readiness = Readiness { readable: false, writable: true, closed: false };
    /// Ready to read or to write.
    pub const BOTH: Readiness = Readiness { readable: true, writable: true, closed: false };
}

/// A deadline for one blocking operation: `None` waits forever.
#[derive(Debug, Clone, Copy)]
struct Deadline(Option<Instant>);

impl Deadline {
    fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| Instant::now() + t))
    }

    /// The time left: `Ok(None)` without a deadline, `Err(())` once it has passed.
    fn remaining(self) -> Result<Option<Duration>, ()> {
        match self.0 {
            None => Ok(None),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() { Err(()) } else { Ok(Some(left)) }
            }
        }
    }
}

/// A framed connection for synchronous callers, as the original's `BlockingConnection`:
/// every operation takes a timeout (`None`: no limit) that bounds the whole operation.
///
/// Unlike the original, a timeout in the middle of a frame loses nothing: received bytes
/// stay buffered for the next [`BlockingConnection::get`] or
/// [`BlockingConnection::read`], and unsent bytes are sent first by the next write.
pub struct BlockingConnection {
    stream: TcpStream,
    input: FrameBuffer,
    output: Vec<u8>,
    written: usize,
}

impl fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingConnection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered_input", &self.input.buffered().len())
            .field("pending_output", &(self.output.len() - self.written))
            .finish()
    }
}

impl BlockingConnection {
    /// Connects to `address` within `timeout`, retrying every 100 ms while the connection
    /// is refused if `optimist`.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`connection attempt timed out`), `ConnectionRefused`, or
    /// [`Error::Io`] for other failures, which the original wrongly took for success.
    pub fn connect(
        address: &Address,
        timeout: Option<Duration>,
        optimist: bool,
    ) -> Result<BlockingConnection, Error> {
        let deadline = Deadline::after(timeout);
        loop {
            let left = deadline.remaining().map_err(|()| connect_timeout())?;
            let addr = address.resolve()?;
            let result = match left {
                Some(left) => TcpStream::connect_timeout(&addr, left),
                None => TcpStream::connect(addr),
            };
            match result {
                Ok(stream) => return BlockingConnection::from_stream(stream),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if !optimist {
                        return Err(Error::Network(NetworkError::refused()));
                    }
                    let pause = match deadline.remaining() {
                        Ok(Some(left)) => left.min(OPTIMIST_RETRY),
                        Ok(None) => OPTIMIST_RETRY,
                        Err(()) => return Err(connect_timeout()),
                    };
                    std::thread::sleep(pause);
                }
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) =>
                {
                    return Err(connect_timeout());
                }
                Err(e) => return Err(Error::io(format!("connect to {address}"), e)),
            }
        }
    }

    /// Accepts one connection on `listener` within `timeout`.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`nothing to accept`), `ConnectionClosed` (`error condition on
    /// socket`), `ConnectionAgain` if another accepter took the connection first, or
    /// [`Error::Io`].
    pub fn accept(
        listener: &TcpListener,
        timeout: Option<Duration>,
    ) -> Result<BlockingConnection, Error> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let deadline = Deadline::after(timeout);
        loop {
            let left = deadline.remaining().map_err(|()| {
                Error::Network(NetworkError::Timeout("nothing to accept".to_owned()))
            })?;
            let wait = match left {
                None => PollTimeout::NONE,
                Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
            };
            let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) => {
                    return Err(Error::Network(NetworkError::Timeout(
                        "nothing to accept".to_owned(),
                    )));
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io("wait for a connection", e.into())),
            }
            let events = fds[0].revents().unwrap_or(PollFlags::empty());
            if events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
                return Err(Error::Network(NetworkError::Closed(
                    "error condition on socket".to_owned(),
                )));
            }
            return match listener.accept() {
                Ok((stream, _)) => BlockingConnection::from_stream(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Err(Error::Network(NetworkError::again()))
                }
                Err(e) => Err(Error::io("accept a connection", e)),
            };
        }
    }

    /// Wraps a connected stream: blocking mode, keepalive and `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket options cannot be set.
    pub fn from_stream(stream: TcpStream) -> Result<BlockingConnection, Error> {
        BlockingConnection::from_parts(ConnectionParts {
            stream,
            input: Vec::new(),
            output: Vec::new(),
        })
    }

    /// Rebuilds a connection from its parts.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket options cannot be set.
    pub fn from_parts(parts: ConnectionParts) -> Result<BlockingConnection, Error> {
        let setup = || {
            parts.stream.set_nonblocking(false)?;
            configure_socket(&parts.stream)
        };
        setup().map_err(|e| Error::io("configure the socket", e))?;
        Ok(BlockingConnection {
            stream: parts.stream,
            input: FrameBuffer::from_bytes(parts.input, DEFAULT_MAX_FRAME),
            output: parts.output,
            written: 0,
        })
    }

    /// Takes the connection apart.
    pub fn into_parts(mut self) -> ConnectionParts {
        let output = self.output.split_off(self.written);
        let max = self.input.max();
        let input = std::mem::replace(&mut self.input, FrameBuffer::new(max)).into_bytes();
        ConnectionParts { stream: self.stream, input, output }
    }

    /// The underlying stream, for socket options.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket has no peer any more.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        self.stream.peer_addr().map_err(|e| Error::io("get the peer address", e))
    }

    /// The largest frame accepted ([`DEFAULT_MAX_FRAME`] unless changed).
    pub fn max_frame(&self) -> usize {
        self.input.max()
    }

    /// Changes the largest frame accepted.
    pub fn set_max_frame(&mut self, max: usize) {
        self.input.set_max(max);
    }

    /// Waits until the connection is ready for what `interest` asks (reading, writing or
    /// both) or `timeout` passes, as the original's `BlockingConnection.poll(mask,
    /// timeout)`; `Ok(None)` when time ran out first (the original returned `None`).
    ///
    /// Input already received and kept in the connection (the rest of a frame that arrived
    /// with the previous one) counts as readable at once. The end of the stream and a reset
    /// count as readable too: the next read says which.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be polled.
    pub fn poll(
        &self,
        interest: Readiness,
        timeout: Option<Duration>,
    ) -> Result<Option<Readiness>, Error> {
        use nix::{
            errno::Errno,
            poll::{PollFd, PollFlags, PollTimeout, poll},
        };
        if interest.readable && !self.input.buffered().is_empty() {
            return Ok(Some(Readiness { readable: true, writable: false, closed: false }));
        }
        let mut flags = PollFlags::empty();
        if interest.readable {
            flags |= PollFlags::POLLIN;
        }
        if interest.writable {
            flags |= PollFlags::POLLOUT;
        }
        let deadline = Deadline::after(timeout);
        loop {
            let wait = match deadline.remaining() {
                Err(()) => return Ok(None),
                Ok(None) => PollTimeout::NONE,
                // Rounded up: a wait cut to 0 ms would spin until the deadline.
                Ok(Some(left)) => PollTimeout::try_from(left + Duration::from_micros(999))
                    .unwrap_or(PollTimeout::MAX),
            };
            let mut fds = [PollFd::new(self.stream.as_fd(), flags)];
            match poll(&mut fds, wait) {
                Ok(0) => continue,
                Ok(_) => {
                    let events = fds[0].revents().unwrap_or(PollFlags::empty());
                    let closed = events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
                    return Ok(Some(Readiness {
                        readable: events.contains(PollFlags::POLLIN)
                            || (closed && interest.readable),
                        writable: events.contains(PollFlags::POLLOUT),
                        closed,
                    }));
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::io("poll the connection", e.into())),
            }
        }
    }

    /// Receives once, within the deadline.
    fn fill(&mut self, deadline: Deadline, expired: &str) -> Result<(), Error> {
        loop {
            let left = deadline
                .remaining()
                .map_err(|()| Error::Network(NetworkError::Timeout(expired.to_owned())))?;
            self.stream.set_read_timeout(left).map_err(|e| Error::io("set a read timeout", e))?;
            let target = self.input.read_target();
            let have = target.len();
            target.resize(target.capacity(), 0);
            let result = self.stream.read(&mut target[have..]);
            let got = *result.as_ref().unwrap_or(&0);
            target.truncate(have + got);
            return match result {
                Ok(0) => Err(Error::Network(NetworkError::closed())),
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    Err(Error::Network(NetworkError::Timeout(expired.to_owned())))
                }
                Err(e) => Err(map_read_error(e)),
            };
        }
    }

    /// Writes everything queued within the deadline.
    fn flush(&mut self, deadline: Deadline) -> Result<(), Error> {
        let expired =
            || Error::Network(NetworkError::Timeout("write attempt timed out".to_owned()));
        while self.written < self.output.len() {
            let left = deadline.remaining().map_err(|()| expired())?;
            self.stream.set_write_timeout(left).map_err(|e| Error::io("set a write timeout", e))?;
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(Error::Network(NetworkError::closed())),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Err(expired());
                }
                Err(e) => return Err(map_write_error(e)),
            }
        }
        if self.output.capacity() > KEEP_OUTPUT {
            self.output = Vec::new();
        } else {
            self.output.clear();
        }
        self.written = 0;
        Ok(())
    }

    /// Reads exactly `size` raw bytes (no framing) within `timeout`.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`timed out`) when time runs out, with the bytes received so
    /// far kept for the next read; `ConnectionClosed` at end of stream.
    pub fn read(&mut self, size: usize, timeout: Option<Duration>) -> Result<Vec<u8>, Error> {
        let deadline = Deadline::after(timeout);
        while self.input.buffered().len() < size {
            self.fill(deadline, "timed out")?;
        }
        Ok(self.input.take_raw(size))
    }

    /// Writes raw bytes (no framing) within `timeout`, after any bytes a timed-out write
    /// left unsent.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`write attempt timed out`), with the rest kept queued;
    /// `ConnectionClosed` if the peer is gone.
    pub fn write(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        self.output.extend_from_slice(data);
        self.flush(Deadline::after(timeout))
    }

    /// Receives one frame within `timeout`.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`timed out`) with the partial frame kept for the next call,
    /// `ConnectionClosed`, or [`Error::FrameTooLarge`].
    pub fn get(&mut self, timeout: Option<Duration>) -> Result<Vec<u8>, Error> {
        let deadline = Deadline::after(timeout);
        loop {
            if let Some(frame) = self.input.next_frame()? {
                return Ok(frame.to_vec());
            }
            self.fill(deadline, "timed out")?;
        }
    }

    /// Sends one frame within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`BlockingConnection::write`], and [`Error::FrameTooLarge`] for a payload of
    /// 4 GiB or more.
    pub fn put(&mut self, payload: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        frame::encode(payload, &mut self.output)?;
        self.flush(Deadline::after(timeout))
    }

    /// Sends one frame holding a value's JSON.
    ///
    /// # Errors
    ///
    /// As [`BlockingConnection::put`], and [`Error::Encode`].
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        json::encode_frame(value, &mut self.output)?;
        self.flush(Deadline::after(timeout))
    }

    /// Closes both directions at once, as the original's `close(hard=True)`.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{LOCALHOST, bind};

    #[test]
    fn blocking_frames_round_trip() {
        let listener = bind(SocketAddr::new(LOCALHOST, 0)).unwrap();
        let addr = Address::from(listener.local_addr().unwrap());
        let peer = std::thread::spawn(move || {
            let mut conn =
                BlockingConnection::accept(&listener, Some(Duration::from_secs(5))).unwrap();
            let frame = conn.get(Some(Duration::from_secs(5))).unwrap();
            conn.put(&frame, None).unwrap();
            conn.put(b"", None).unwrap();
        });
        let mut conn =
            BlockingConnection::connect(&addr, Some(Duration::from_secs(5)), false).unwrap();
        conn.put(b"hello", Some(Duration::from_secs(5))).unwrap();
        assert_eq!(conn.get(Some(Duration::from_secs(5))).unwrap(), b"hello");
        assert_eq!(conn.get(Some(Duration::from_secs(5))).unwrap(), b"");
        peer.join().unwrap();
        assert!(conn.get(Some(Duration::from_secs(5))).unwrap_err().is_closed());
    }
}
