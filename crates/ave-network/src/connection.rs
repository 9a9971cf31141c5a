//! Framed connections: [`Connection`] for tokio, [`BlockingConnection`] for synchronous
//! callers, and the socket helpers ([`find_free_port`], [`bind`], keepalive).
//!
//! Both connection types keep their partly received input and their partly sent output
//! in the value itself, so a timeout or a cancelled operation never leaves the byte stream
//! out of step: the next operation continues where the last one stopped. The same state
//! can be taken apart ([`ConnectionParts`]) and put back together in another task or
//! process.
//!
//! # Example
//!
//! ```
//! use std::{net::SocketAddr, thread, time::Duration};
//!
//! use ave_network::connection::{self, Address, BlockingConnection, LOCALHOST};
//!
//! let listener = connection::bind(SocketAddr::new(LOCALHOST, 0))?;
//! let address = Address::from(listener.local_addr()?);
//! let peer = thread::spawn(move || -> Result<(), ave_network::Error> {
//!     let mut conn = BlockingConnection::accept(&listener, Some(Duration::from_secs(5)))?;
//!     let frame = conn.get(Some(Duration::from_secs(5)))?;
//!     conn.put(&frame, None)
//! });
//! let mut conn = BlockingConnection::connect(&address, Some(Duration::from_secs(5)), false)?;
//! conn.put(b"hello", None)?;
//! assert_eq!(conn.get(Some(Duration::from_secs(5)))?, b"hello");
//! peer.join().expect("the peer thread")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod blocking;

pub use crate::connection::{
    address::{
        Address, FreePort, LOCALHOST, bind, configure_socket, find_free_port, find_free_port_in,
        set_buffer_sizes,
    },
    blocking::{BlockingConnection, Readiness},
};

use std::{
    fmt, io,
    net::{SocketAddr, TcpStream},
    pin::Pin,
    task::{self, Poll, ready},
    time::Duration,
};

use ave_exceptions::NetworkError;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{
    Error,
    wire::{
        frame::{self, DEFAULT_MAX_FRAME, FrameBuffer},
        json,
    },
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
pub(crate) const KEEP_OUTPUT: usize = 64 * 1024;

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

pub(crate) fn closed_from(e: &io::Error) -> Error {
    Error::Network(NetworkError::Closed(e.to_string()))
}

pub(crate) fn map_read_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected => closed_from(&e),
        _ => Error::io("read from the connection", e),
    }
}

pub(crate) fn map_write_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected => closed_from(&e),
        _ => Error::io("write to the connection", e),
    }
}

pub(crate) fn connect_timeout() -> Error {
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

    /// How many received bytes are waiting to be consumed.
    pub(crate) fn buffered_input(&self) -> usize {
        self.input.buffered().len()
    }

    /// Waits for input and receives what is there (at least one byte). Cancellation-safe.
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` at end of stream or on a reset, [`Error::Io`] otherwise.
    pub async fn fill(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// [`Connection::fill`] as a poll: ready once at least one byte was received.
    ///
    /// An empty input buffer goes back to a small per-thread stock while the connection
    /// waits, so an idle connection holds no read buffer and a busy one does not allocate
    /// a new one for every request.
    pub(crate) fn poll_fill(&mut self, cx: &mut task::Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if self.input.is_empty() && self.input.capacity() == 0 {
                if let Some(buffer) = spare::take() {
                    self.input.give(buffer);
                }
            }
            // A read through the runtime's `AsyncRead`: when it fills less than the room
            // offered, the socket is known to be drained, so the next wait costs no
            // system call that only says "would block".
            let polled = {
                let read = std::pin::pin!(self.stream.read_buf(self.input.read_target()));
                read.poll(cx)
            };
            match polled {
                Poll::Pending => {
                    if let Some(buffer) = self.input.take_if_empty() {
                        spare::put(buffer);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Network(NetworkError::closed())));
                }
                Poll::Ready(Ok(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(map_read_error(e))),
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

    /// Queues one frame holding the JSON object `{key: value}`, written straight into the
    /// output (the shape of every reply: `{"result": ...}`, `{"exception": ...}`).
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value cannot be serialized.
    pub(crate) fn queue_reply<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), Error> {
        json::encode_frame(&json::Entry { key, value }, &mut self.output)
    }

    /// Whether queued bytes are waiting to be written.
    pub fn has_pending_output(&self) -> bool {
        self.written < self.output.len()
    }

    /// How many queued bytes are waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Takes back the last queued bytes so that `pending` remain (a frame queued and then
    /// refused); no-op if fewer are pending.
    pub(crate) fn truncate_output(&mut self, pending: usize) {
        if pending < self.pending_output() {
            self.output.truncate(self.written + pending);
        }
    }

    /// Writes everything queued. Cancellation-safe: what was written stays written and the
    /// rest stays queued.
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` if the peer is gone, [`Error::Io`] otherwise.
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// [`Connection::flush`] as a poll.
    pub(crate) fn poll_flush(&mut self, cx: &mut task::Context<'_>) -> Poll<Result<(), Error>> {
        while self.written < self.output.len() {
            let pending = &self.output[self.written..];
            let n = match ready!(Pin::new(&mut self.stream).poll_write(cx, pending)) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(map_write_error(e))),
            };
            if n == 0 {
                return Poll::Ready(Err(Error::Network(NetworkError::closed())));
            }
            self.written += n;
        }
        if self.output.capacity() > KEEP_OUTPUT {
            self.output = Vec::new();
        } else {
            self.output.clear();
        }
        self.written = 0;
        Poll::Ready(Ok(()))
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

/// Read buffers of connections that wait, kept per thread for the next connection that
/// receives: a busy server reuses a few buffers instead of allocating one per request.
mod spare {
    use std::cell::RefCell;

    /// How many buffers a thread keeps.
    const KEEP: usize = 4;

    thread_local! {
        static STOCK: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// The largest buffer kept: the usual read chunk and then some, never the room of a
    /// large frame.
    const KEEP_CAPACITY: usize = 64 * 1024;

    /// Keeps an empty buffer (or frees it if the stock is full or it is large).
    pub(super) fn put(buffer: Vec<u8>) {
        if buffer.capacity() > KEEP_CAPACITY {
            return;
        }
        let _ = STOCK.try_with(|stock| {
            let mut stock = stock.borrow_mut();
            if stock.len() < KEEP {
                stock.push(buffer);
            }
        });
    }

    /// A kept buffer, if there is one.
    pub(super) fn take() -> Option<Vec<u8>> {
        STOCK.try_with(|stock| stock.borrow_mut().pop()).ok().flatten()
    }
}
