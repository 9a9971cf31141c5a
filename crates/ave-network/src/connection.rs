//! Framed connections: [`Connection`] for tokio, [`BlockingConnection`] for synchronous
//! callers, and the socket helpers ([`find_free_port`], [`bind`], keepalive).
//!
//! Both connection types keep their partly received input and their partly sent output
//! in the value itself, so a timeout or a cancelled operation never leaves the byte stream
//! out of step: the next operation continues where the last one stopped. The same state
//! can be taken apart ([`ConnectionParts`]) and put back together in another task or
//! process.

use std::{
    fmt,
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    ops::RangeInclusive,
    os::fd::{AsFd, OwnedFd},
    str::FromStr,
    time::{Duration, Instant},
};

use ave_exceptions::NetworkError;
use serde::Serialize;
use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::AsyncWriteExt;

use crate::{
    Error,
    frame::{self, DEFAULT_MAX_FRAME, FrameBuffer},
    json,
};

/// TCP keepalive as the original sets it: idle 5 s, interval 5 s, 5 probes, so a silent
/// dead peer is noticed after about 30 s.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// See [`KEEPALIVE_IDLE`].
pub const KEEPALIVE_COUNT: u32 = 5;

/// How long an optimistic connect waits before trying again after a refusal.
pub const OPTIMIST_RETRY: Duration = Duration::from_millis(100);

/// Output kept allocated between frames; larger buffers are freed once sent.
const KEEP_OUTPUT: usize = 64 * 1024;

/// Where a service listens: a host name or address and a port.
///
/// An empty host means the local host, as in the original (`('', port)`). Parse one from
/// `host:port` (`[::1]:4000` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The host name or address; empty for the local host.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Address {
    /// An address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Address {
        Address { host: host.into(), port }
    }

    /// The host to connect to: the given one, or `127.0.0.1` for an empty host.
    pub fn connect_host(&self) -> &str {
        if self.host.is_empty() { "127.0.0.1" } else { &self.host }
    }

    /// Resolves the address (a blocking lookup for host names).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the name cannot be resolved.
    pub fn resolve(&self) -> Result<SocketAddr, Error> {
        let host = self.connect_host();
        let resolve_err = |e| Error::io(format!("resolve {host}"), e);
        (host, self.port)
            .to_socket_addrs()
            .map_err(resolve_err)?
            .next()
            .ok_or_else(|| resolve_err(io::Error::from(io::ErrorKind::NotFound)))
    }

    async fn resolve_async(&self) -> Result<SocketAddr, Error> {
        let host = self.connect_host();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let resolve_err = |e| Error::io(format!("resolve {host}"), e);
        tokio::net::lookup_host((host, self.port))
            .await
            .map_err(resolve_err)?
            .next()
            .ok_or_else(|| resolve_err(io::Error::from(io::ErrorKind::NotFound)))
    }

    /// The address as the original sends it in JSON: `[host, port]`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!([self.host, self.port])
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address { host: addr.ip().to_string(), port: addr.port() }
    }
}

impl From<(&str, u16)> for Address {
    fn from((host, port): (&str, u16)) -> Address {
        Address::new(host, port)
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address, Error> {
        let bad = || Error::Invalid(format!("invalid address {s:?} (expected HOST:PORT)"));
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let port = port.parse().map_err(|_| bad())?;
        Ok(Address::new(host, port))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Turns on keepalive as the original sets it ([`KEEPALIVE_IDLE`]) and `TCP_NODELAY` (every
/// frame is written whole, so nothing is gained by delaying small segments).
///
/// # Errors
///
/// The `setsockopt` error.
pub fn configure_socket(socket: &impl AsFd) -> io::Result<()> {
    let sock = SockRef::from(socket);
    sock.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_COUNT),
    )?;
    sock.set_tcp_nodelay(true)
}

/// Sets a socket's receive and send buffer sizes and returns the sizes the kernel chose
/// (Linux doubles the request and applies a minimum).
///
/// # Errors
///
/// The `setsockopt` or `getsockopt` error.
pub fn set_buffer_sizes(
    socket: &impl AsFd,
    recv: usize,
    send: usize,
) -> io::Result<(usize, usize)> {
    let sock = SockRef::from(socket);
    sock.set_recv_buffer_size(recv)?;
    sock.set_send_buffer_size(send)?;
    Ok((sock.recv_buffer_size()?, sock.send_buffer_size()?))
}

/// A listening socket on `addr` with `SO_REUSEADDR` and the largest backlog the kernel
/// allows.
///
/// # Errors
///
/// [`Error::Io`] if the socket cannot be bound or put in listening state.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let context = || format!("listen on {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| Error::io(context(), e))?;
    socket.set_reuse_address(true).map_err(|e| Error::io(context(), e))?;
    socket.bind(&addr.into()).map_err(|e| Error::io(context(), e))?;
    socket.listen(4096).map_err(|e| Error::io(context(), e))?;
    Ok(socket.into())
}

/// A socket bound to a free port found by [`find_free_port`].
#[derive(Debug)]
pub struct FreePort {
    socket: Socket,
    port: u16,
    listening: bool,
}

impl FreePort {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the socket is listening.
    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// The socket as a listener, put in listening state if it is not yet. Give it to a
    /// `Control` to serve on the port without a window in which another process could
    /// take it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `listen` fails.
    pub fn into_listener(self) -> Result<TcpListener, Error> {
        if !self.listening {
            self.socket
                .listen(4096)
                .map_err(|e| Error::io(format!("listen on port {}", self.port), e))?;
        }
        Ok(self.socket.into())
    }

    /// The socket's descriptor, bound (and listening if it was asked for).
    pub fn into_fd(self) -> OwnedFd {
        self.socket.into()
    }
}

/// The original's `find_free_port`: binds a socket with `SO_REUSEADDR` to a random port
/// of 49152..=65535 on `ip` (trying up to 20,000 ports), and listens on it if `listen`.
///
/// # Errors
///
/// [`Error::Io`] (`no free port available`) when every attempt failed.
pub fn find_free_port(ip: IpAddr, listen: bool) -> Result<FreePort, Error> {
    find_free_port_in(ip, 49152..=65535, listen)
}

/// [`find_free_port`] on a range of ports.
///
/// # Errors
///
/// [`Error::Io`] (`no free port available`) when every attempt failed.
pub fn find_free_port_in(
    ip: IpAddr,
    range: RangeInclusive<u16>,
    listen: bool,
) -> Result<FreePort, Error> {
    let (low, high) = (u32::from(*range.start()), u32::from(*range.end()));
    if low > high {
        return Err(Error::Invalid(format!("empty port range {low}..={high}")));
    }
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..20_000 {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random)
            .map_err(|e| Error::io("read random bytes", io::Error::other(e.to_string())))?;
        let port = (low + u32::from_ne_bytes(random) % (high - low + 1)) as u16;
        let attempt = (|| {
            let addr = SocketAddr::new(ip, port);
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            if listen {
                socket.listen(4096)?;
            }
            Ok::<_, io::Error>(socket)
        })();
        match attempt {
            Ok(socket) => return Ok(FreePort { socket, port, listening: listen }),
            Err(e) => last = e,
        }
    }
    Err(Error::io("no free port available", last))
}

/// The state of a connection, taken apart: the socket, the bytes received but not yet
/// consumed as frames, and the bytes queued but not yet sent.
///
/// This is what moves when a connection is handed to another task or process; build the
/// connection again with [`Connection::from_parts`] or [`BlockingConnection::from_parts`].
#[derive(Debug)]
pub struct ConnectionParts {
    /// The socket.
    pub stream: TcpStream,
    /// Received bytes that do not form a consumed frame yet (possibly whole frames).
    pub input: Vec<u8>,
    /// Frame bytes queued and not yet written.
    pub output: Vec<u8>,
}

fn closed_from(e: &io::Error) -> Error {
    Error::Network(NetworkError::Closed(e.to_string()))
}

fn map_read_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected => closed_from(&e),
        _ => Error::io("read from the connection", e),
    }
}

fn map_write_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected => closed_from(&e),
        _ => Error::io("write to the connection", e),
    }
}

fn connect_timeout() -> Error {
    Error::Network(NetworkError::Timeout("connection attempt timed out".to_owned()))
}

/// A framed connection for tokio.
///
/// Reading ([`Connection::read_frame`]) and writing ([`Connection::flush`]) are
/// cancellation-safe: progress is kept in the connection, so either may be raced against
/// a timer or a shutdown signal and resumed later. An idle connection holds no read
/// buffer.
pub struct Connection {
    stream: tokio::net::TcpStream,
    input: FrameBuffer,
    output: Vec<u8>,
    written: usize,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered_input", &self.input.buffered().len())
            .field("pending_output", &(self.output.len() - self.written))
            .finish()
    }
}

impl Connection {
    /// Connects to `address`, as the original's `BlockingConnection.connect`: within
    /// `timeout` (`None`: no limit), retrying every 100 ms while the connection is refused
    /// if `optimist`.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout` (`connection attempt timed out`), `ConnectionRefused`, or
    /// [`Error::Io`] for other failures (unreachable networks, unknown hosts).
    pub async fn connect(
        address: &Address,
        timeout: Option<Duration>,
        optimist: bool,
    ) -> Result<Connection, Error> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(connect_timeout());
            }
            let attempt = async {
                let addr = address.resolve_async().await?;
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| Error::io(format!("connect to {address}"), e))
            };
            let result = match deadline {
                Some(d) => match tokio::time::timeout_at(d, attempt).await {
                    Ok(r) => r,
                    Err(_) => return Err(connect_timeout()),
                },
                None => attempt.await,
            };
            match result {
                Ok(stream) => return Connection::from_tokio(stream),
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::ConnectionRefused =>
                {
                    if !optimist {
                        return Err(Error::Network(NetworkError::refused()));
                    }
                    let wake = tokio::time::Instant::now() + OPTIMIST_RETRY;
                    tokio::time::sleep_until(deadline.map_or(wake, |d| d.min(wake))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Wraps a connected tokio stream, setting keepalive and `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket options cannot be set.
    pub fn from_tokio(stream: tokio::net::TcpStream) -> Result<Connection, Error> {
        configure_socket(&stream).map_err(|e| Error::io("configure the socket", e))?;
        Ok(Connection {
            stream,
            input: FrameBuffer::new(DEFAULT_MAX_FRAME),
            output: Vec::new(),
            written: 0,
        })
    }

    /// Wraps a connected std stream (an adopted descriptor, for example). Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the stream cannot be registered with the runtime.
    pub fn from_std(stream: TcpStream) -> Result<Connection, Error> {
        Connection::from_parts(ConnectionParts { stream, input: Vec::new(), output: Vec::new() })
    }

    /// Rebuilds a connection from its parts, partial input and pending output included.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the stream cannot be registered with the runtime.
    pub fn from_parts(parts: ConnectionParts) -> Result<Connection, Error> {
        parts.stream.set_nonblocking(true).map_err(|e| Error::io("adopt the socket", e))?;
        let stream = tokio::net::TcpStream::from_std(parts.stream)
            .map_err(|e| Error::io("adopt the socket", e))?;
        let mut conn = Connection::from_tokio(stream)?;
        conn.input = FrameBuffer::from_bytes(parts.input, DEFAULT_MAX_FRAME);
        conn.output = parts.output;
        Ok(conn)
    }

    /// Takes the connection apart: the socket (in non-blocking mode), the unconsumed input
    /// and the unsent output.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be detached from the runtime.
    pub fn into_parts(mut self) -> Result<ConnectionParts, Error> {
        let output = self.output.split_off(self.written);
        let max = self.input.max();
        let input = std::mem::replace(&mut self.input, FrameBuffer::new(max)).into_bytes();
        let stream = self.stream.into_std().map_err(|e| Error::io("detach the socket", e))?;
        Ok(ConnectionParts { stream, input, output })
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket has no peer any more.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        self.stream.peer_addr().map_err(|e| Error::io("get the peer address", e))
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket has no address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.stream.local_addr().map_err(|e| Error::io("get the local address", e))
    }

    /// The largest frame accepted ([`DEFAULT_MAX_FRAME`] unless changed).
    pub fn max_frame(&self) -> usize {
        self.input.max()
    }

    /// Changes the largest frame accepted.
    pub fn set_max_frame(&mut self, max: usize) {
        self.input.set_max(max);
    }

    /// The underlying stream, for socket options.
    pub fn stream(&self) -> &tokio::net::TcpStream {
        &self.stream
    }

    /// Receives one frame.
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` at end of stream (also in the middle of a frame),
    /// [`Error::FrameTooLarge`] for a header above the limit, [`Error::Io`] otherwise.
    pub async fn read_frame(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(frame) = self.input.next_frame()? {
                return Ok(frame.to_vec());
            }
            self.fill().await?;
        }
    }

    /// Takes a complete frame that has already been received, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] for a header above the limit.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        self.input.next_frame()
    }

    /// Whether received bytes are waiting to be consumed.
    pub fn has_buffered_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Waits for input and receives what is there (at least one byte). Cancellation-safe.
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` at end of stream or on a reset, [`Error::Io`] otherwise.
    pub async fn fill(&mut self) -> Result<(), Error> {
        loop {
            self.input.release_if_empty();
            self.stream.readable().await.map_err(map_read_error)?;
            match self.stream.try_read_buf(self.input.read_target()) {
                Ok(0) => return Err(Error::Network(NetworkError::closed())),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(map_read_error(e)),
            }
        }
    }

    /// Receives what is available now without waiting, up to end of stream; returns
    /// whether the peer has closed its side. Used to drain input before a close, so the
    /// kernel does not answer the close with a reset.
    pub(crate) fn drain_available(&mut self) -> bool {
        let mut scratch = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Queues one frame for [`Connection::flush`].
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] if the payload does not fit a frame.
    pub fn queue(&mut self, payload: &[u8]) -> Result<(), Error> {
        frame::encode(payload, &mut self.output)
    }

    /// Queues one frame holding a value's JSON (the wire's ASCII dialect).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value cannot be serialized.
    pub fn queue_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        json::encode_frame(value, &mut self.output)
    }

    /// Whether queued bytes are waiting to be written.
    pub fn has_pending_output(&self) -> bool {
        self.written < self.output.len()
    }

    /// Writes everything queued. Cancellation-safe: what was written stays written and the
    /// rest stays queued.
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` if the peer is gone, [`Error::Io`] otherwise.
    pub async fn flush(&mut self) -> Result<(), Error> {
        while self.written < self.output.len() {
            let n =
                self.stream.write(&self.output[self.written..]).await.map_err(map_write_error)?;
            if n == 0 {
                return Err(Error::Network(NetworkError::closed()));
            }
            self.written += n;
        }
        if self.output.capacity() > KEEP_OUTPUT {
            self.output = Vec::new();
        } else {
            self.output.clear();
        }
        self.written = 0;
        Ok(())
    }

    /// Queues one frame and writes everything queued.
    ///
    /// # Errors
    ///
    /// As [`Connection::queue`] and [`Connection::flush`].
    pub async fn write_frame(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.queue(payload)?;
        self.flush().await
    }

    /// Closes the sending side (the peer reads end of stream after the queued bytes);
    /// reading goes on.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }
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

/// The loopback address, for tests and local services.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let a: Address = "example.org:4000".parse().unwrap();
        assert_eq!(a, Address::new("example.org", 4000));
        assert_eq!(a.to_string(), "example.org:4000");
        let v6: Address = "[::1]:80".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:80");
        let empty: Address = ":5".parse().unwrap();
        assert_eq!(empty.connect_host(), "127.0.0.1");
        assert_eq!(empty.to_json(), serde_json::json!(["", 5]));
        for bad in ["nohost", "a:b", "::1:80", "[::1:80", "h:70000"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn free_ports_are_bound() {
        let free = find_free_port(LOCALHOST, false).unwrap();
        assert!(free.port() >= 49152);
        assert!(!free.is_listening());
        let listener = free.into_listener().unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(TcpStream::connect((LOCALHOST, port)).is_ok());
        let taken = find_free_port_in(LOCALHOST, port..=port, true);
        assert!(
            matches!(taken, Err(Error::Io { ref context, .. }) if context == "no free port available")
        );
    }

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
