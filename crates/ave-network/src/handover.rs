//! Live handover: a new process takes over a running [`Control`]'s listening socket and
//! every live connection, and no client notices.
//!
//! The serving instance listens on a [`HandoverSocket`] under its home
//! ([`socket_path`]: `<home>/.ave/handover/<name>.sock`, in a 0700 directory, mode 0600,
//! and only a peer running as the same user or root is heard). A successor calls
//! [`take_over`]; then:
//!
//! 1. the old instance stops accepting (the listener stays open: new connects wait in the
//!    kernel's backlog) and takes every connection out at a frame boundary, after the call
//!    in progress on it is answered (bounded by [`HandoverOptions::drain_timeout`]);
//! 2. it sends the listener and each connection (the socket, its address, its
//!    authenticated identity, where it is in the handshake, the bytes received but not yet
//!    consumed and the bytes queued but not yet sent) over [`FdTx`](crate::fdtx) messages
//!    of at most 250 descriptors;
//! 3. the successor, holding everything but serving nothing yet, says it is ready
//!    ([`Inheritance::commit`]); the old instance confirms, closes its copies, and its
//!    [`Control::run`] returns [`Stopped::Replaced`];
//! 4. the successor serves the listener and the connections
//!    ([`Inherited::into_control`]). Requests sent meanwhile waited in the kernel's
//!    buffers and are answered by the successor.
//!
//! Until the old instance confirms, it keeps its own copies of every descriptor: if the
//! successor dies, disconnects or does not say it is ready within
//! [`HandoverOptions::ready_timeout`], the old instance takes its listener and connections
//! back and serves on (rollback). The decision point is one message each way, and the
//! side that gives up first shuts its receive direction before looking one last time, so
//! the two sides can never both serve the same connection.
//!
//! A call still running when the drain timeout expires makes the old instance refuse the
//! handover: nothing moves, it serves on, and [`take_over`] returns the reason.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use ave_network::{
//!     Control, Stopped, diagnostic,
//!     handover::{self, HandoverOptions, HandoverSocket},
//! };
//!
//! # async fn example() -> Result<(), ave_network::Error> {
//! let path = handover::socket_path("/home/ave".as_ref(), "ave-serve");
//! let service = || diagnostic::service(diagnostic::Options::new());
//!
//! // The successor: receive everything, then commit, then serve, replaceable in turn.
//! let inheritance = handover::take_over(&path, Duration::from_secs(5)).await?;
//! let mut socket = HandoverSocket::bind_successor(&path)?;
//! let control = inheritance.commit().await?.into_control(Control::builder(service()))?;
//! socket.install()?;
//! let (stopped, successor) =
//!     handover::run_replaceable(control, socket, HandoverOptions::default()).await?;
//! if stopped == Stopped::Replaced {
//!     println!("replaced by {successor:?}");
//! }
//! # Ok(())
//! # }
//! ```

use std::{
    collections::VecDeque,
    fmt, fs, io,
    net::{SocketAddr, TcpListener, TcpStream},
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::{
            fs::{MetadataExt, PermissionsExt},
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ave_exceptions::NetworkError;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::{
    Address, ConnectionParts, ConnectionPhase, Control, ControlBuilder, ControlHandle,
    DetachedConnection, Error, Stopped,
    fdtx::{self, AsyncFdTx},
};

/// The version of the handover conversation; both sides must speak the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default bound on waiting for every connection to reach a frame boundary.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The default time a successor has, once everything is sent, to say it is ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Descriptors per message: below the kernel's 253 (`SCM_MAX_FD`).
const FDS_PER_MESSAGE: usize = 250;

/// Connection state bytes per message, beyond which a batch is sent early.
const BODY_PER_MESSAGE: usize = 4 * 1024 * 1024;

/// The largest JSON header accepted.
const MAX_HEADER: usize = 16 * 1024 * 1024;

/// How long a peer that connects to the handover socket has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a successor waits for the old instance to confirm its commit. The old
/// instance confirms as soon as it reads `ready`, so this only runs out if it is stuck.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the handover socket of the service `name` lives under `home`:
/// `<home>/.ave/handover/<name>.sock`.
pub fn socket_path(home: &Path, name: &str) -> PathBuf {
    home.join(".ave").join("handover").join(format!("{name}.sock"))
}

/// How the serving side conducts a handover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverOptions {
    /// How long to wait for every connection to reach a frame boundary (the call in
    /// progress on each is answered first). If a call runs longer, the handover is
    /// refused and nothing moves. Default [`DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
    /// How long the successor has to receive everything and say it is ready; after it,
    /// the old instance takes everything back. Default [`DEFAULT_READY_TIMEOUT`].
    pub ready_timeout: Duration,
}

impl Default for HandoverOptions {
    fn default() -> HandoverOptions {
        HandoverOptions {
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// What the old instance learns about the successor that took over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Successor {
    /// The successor's process id (from the kernel's peer credentials).
    pub pid: u32,
    /// The connections handed over.
    pub connections: usize,
    /// Whether the listener was handed over.
    pub listener: bool,
    /// From the successor's hello to its ready message.
    pub elapsed: Duration,
}

/// The socket a serving instance listens on for a successor.
pub struct HandoverSocket {
    listener: Option<UnixListener>,
    /// Where the socket file is now.
    path: PathBuf,
    /// Where it goes once installed (the same as `path` when bound in place).
    target: PathBuf,
    /// The socket file's device and inode, to remove it only while it is ours.
    id: (u64, u64),
    handed_over: bool,
}

impl fmt::Debug for HandoverSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoverSocket").field("path", &self.path).finish_non_exhaustive()
    }
}

impl HandoverSocket {
    /// Listens at `path` for a successor. The directory is created 0700 if missing; a
    /// stale socket left by an instance that died is replaced.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with an `AddrInUse` source if a live instance already listens there
    /// (take it over with [`take_over`] instead); [`Error::Io`] if the directory or the
    /// socket cannot be created, or the directory belongs to another user.
    pub fn bind(path: &Path) -> Result<HandoverSocket, Error> {
        private_parent(path)?;
        if fs::symlink_metadata(path).is_ok() {
            if !fdtx::is_socket(path) {
                return Err(Error::io(
                    format!("{} exists and is not a socket", path.display()),
                    io::Error::from(io::ErrorKind::AlreadyExists),
                ));
            }
            match UnixStream::connect(path) {
                // The probe closes before saying hello; the instance ignores it.
                Ok(_) => return Err(live_instance(path)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "removing a stale handover socket");
                    remove_if_exists(path)?;
                }
                Err(e) => return Err(Error::io(format!("probe {}", path.display()), e)),
            }
        }
        let listener = match UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(live_instance(path)),
            Err(e) => return Err(Error::io(format!("listen on {}", path.display()), e)),
        };
        HandoverSocket::new(listener, path.to_owned(), path.to_owned())
    }

    /// Listens beside `path`, for a successor that will be the serving instance once its
    /// handover is committed: [`HandoverSocket::install`] then moves the socket to `path`
    /// in one atomic rename, so the next successor always finds someone to talk to.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or the socket cannot be created.
    pub fn bind_successor(path: &Path) -> Result<HandoverSocket, Error> {
        private_parent(path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        remove_abandoned(path, &name);
        let temp = path.with_file_name(format!(".{name}.{}", std::process::id()));
        remove_if_exists(&temp)?;
        let listener = UnixListener::bind(&temp)
            .map_err(|e| Error::io(format!("listen on {}", temp.display()), e))?;
        HandoverSocket::new(listener, temp, path.to_owned())
    }

    fn new(
        listener: UnixListener,
        path: PathBuf,
        target: PathBuf,
    ) -> Result<HandoverSocket, Error> {
        let mut socket = HandoverSocket {
            listener: Some(listener),
            path,
            target,
            id: (0, 0),
            handed_over: false,
        };
        fs::set_permissions(&socket.path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("restrict {}", socket.path.display()), e))?;
        let meta = fs::symlink_metadata(&socket.path)
            .map_err(|e| Error::io(format!("inspect {}", socket.path.display()), e))?;
        socket.id = (meta.dev(), meta.ino());
        Ok(socket)
    }

    /// Moves a socket bound with [`HandoverSocket::bind_successor`] to its final path,
    /// replacing the previous instance's (a no-op for [`HandoverSocket::bind`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the rename fails.
    pub fn install(&mut self) -> Result<(), Error> {
        if self.path != self.target {
            fs::rename(&self.path, &self.target).map_err(|e| {
                Error::io(format!("move {} to {}", self.path.display(), self.target.display()), e)
            })?;
            self.path = self.target.clone();
        }
        Ok(())
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves successors of the `Control` behind `handle`, one at a time, until one takes
    /// over; then ends the `Control`'s loop with
    /// [`Stopped::Replaced`] and returns the successor. A
    /// handover that fails is rolled back, logged, and the next successor is awaited.
    /// Returns `Ok(None)` when the `Control` stops first.
    ///
    /// Must run on the runtime of the `Control` (spawn it).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be registered with the runtime or accepting
    /// fails.
    pub async fn serve(
        mut self,
        handle: ControlHandle,
        options: HandoverOptions,
    ) -> Result<Option<Successor>, Error> {
        let Some(std) = self.listener.take() else { return Ok(None) };
        let listener = std
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixListener::from_std(std))
            .map_err(|e| Error::io("use the handover socket", e))?;
        let mut stopping = handle.shared.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stopping.wait_for(Option::is_some) => return Ok(None),
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => return Err(Error::io("accept on the handover socket", e)),
            };
            let pid = match check_peer(&stream) {
                Ok(pid) => pid,
                Err(e) => {
                    tracing::warn!(error = %crate::error::error_chain(&e), "handover peer refused");
                    continue;
                }
            };
            let stream = match stream.into_std().map_err(|e| Error::io("use a handover peer", e)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "handover peer dropped");
                    continue;
                }
            };
            match hand_over(&handle, stream, pid, &options).await {
                Ok(Some(successor)) => {
                    self.handed_over = true;
                    tracing::info!(
                        pid = successor.pid,
                        connections = successor.connections,
                        elapsed_ms = successor.elapsed.as_secs_f64() * 1e3,
                        "handed over to a successor"
                    );
                    handle.replaced();
                    return Ok(Some(successor));
                }
                Ok(None) => tracing::debug!(pid, "a peer left the handover socket before hello"),
                Err(e) => tracing::warn!(
                    pid,
                    error = %crate::error::error_chain(&e),
                    "handover failed; still serving"
                ),
            }
        }
    }
}

impl Drop for HandoverSocket {
    fn drop(&mut self) {
        if self.handed_over {
            // The successor's socket is at the path now.
            return;
        }
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.id {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// What a successor has received and does not serve yet: the old instance still holds
/// its own copies and serves nothing. [`Inheritance::commit`] makes it the successor's;
/// dropping it gives everything back to the old instance.
pub struct Inheritance {
    channel: Channel,
    pid: u32,
    service: String,
    listener: Option<TcpListener>,
    connections: Vec<DetachedConnection>,
}

impl fmt::Debug for Inheritance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inheritance")
            .field("pid", &self.pid)
            .field("service", &self.service)
            .field("listener", &self.local_addr())
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl Inheritance {
    /// The old instance's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The old instance's server name (such as `ave-serve`).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The listening address handed over, if there is a listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The connections handed over.
    pub fn connections(&self) -> &[DetachedConnection] {
        &self.connections
    }

    /// Tells the old instance this one is ready and waits for its confirmation; from then
    /// on the listener and the connections are this instance's alone.
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` or [`Error::Protocol`] if the old instance took everything back
    /// (its ready timeout ran out) or went away; nothing was served here, and dropping
    /// the error closes this instance's copies only.
    pub async fn commit(mut self) -> Result<Inherited, Error> {
        self.channel.send(&Header::Ready, &[], &[]).await?;
        let confirmed = match tokio::time::timeout(COMMIT_TIMEOUT, self.channel.recv()).await {
            Ok(result) => result,
            Err(_) => {
                // Refuse a late confirmation, then look once more: a confirmation that
                // arrived before the shutdown counts, one after it fails on the old side,
                // which then takes everything back.
                self.channel.shutdown_read();
                self.channel.recv().await
            }
        };
        match confirmed?.header {
            Header::Committed => Ok(Inherited {
                listener: self.listener.take(),
                connections: std::mem::take(&mut self.connections),
            }),
            other => Err(unexpected("committed", &other)),
        }
    }
}

/// The listener and connections of a committed handover, to serve at once.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inherited {
    /// The listening socket, if the old instance had one.
    pub listener: Option<TcpListener>,
    /// The connections, in the old instance's order.
    pub connections: Vec<DetachedConnection>,
}

impl Inherited {
    /// Builds the `Control` that serves on: `builder` with the inherited listener (or none),
    /// every connection adopted where it was. Run it at once.
    ///
    /// # Errors
    ///
    /// As [`ControlBuilder::build`] and [`ControlHandle::adopt_connection`].
    pub fn into_control(self, builder: ControlBuilder) -> Result<Control, Error> {
        let builder = match self.listener {
            Some(l) => builder.listener(l),
            None => builder.no_listener(),
        };
        let control = builder.build()?;
        let handle = control.handle();
        for connection in self.connections {
            handle.adopt_connection(connection)?;
        }
        Ok(control)
    }
}

/// Runs `control` until it stops, replaceable through `socket` meanwhile; returns why it
/// stopped and, if it was replaced, by whom. Spawns the socket's task on the current
/// runtime.
///
/// # Errors
///
/// As [`Control::run`].
pub async fn run_replaceable(
    control: Control,
    socket: HandoverSocket,
    options: HandoverOptions,
) -> Result<(Stopped, Option<Successor>), Error> {
    let offer = tokio::spawn(socket.serve(control.handle(), options));
    let stopped = control.run().await?;
    // The socket's task ends with the control: with the successor, or with nothing.
    let successor = match offer.await {
        Ok(Ok(successor)) => successor,
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "the handover socket failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "the handover socket's task failed");
            None
        }
    };
    Ok((stopped, successor))
}

/// Connects to the instance serving at `path` and receives its listener and connections,
/// within `timeout`. Commit with [`Inheritance::commit`] before serving them.
///
/// # Errors
///
/// [`Error::Io`] with a `NotFound` or `ConnectionRefused` source if no instance serves
/// there; `ConnectionTimeout` if the handover does not complete in time;
/// [`Error::Protocol`] if the instance refused (a call that did not finish, another
/// handover in progress) or spoke another protocol version.
pub async fn take_over(path: &Path, timeout: Duration) -> Result<Inheritance, Error> {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) =>
        {
            return Err(Error::io(format!("no instance is serving at {}", path.display()), e));
        }
        Err(e) => return Err(Error::io(format!("connect to {}", path.display()), e)),
    };
    let pid = check_peer(&stream)?;
    let mut channel = Channel::new(stream)?;
    let receive = async {
        let hello = Header::Hello { version: PROTOCOL_VERSION, pid: std::process::id() };
        channel.send(&hello, &[], &[]).await?;
        let begin = channel.recv().await?;
        let (service, has_listener, expected) = match begin.header {
            Header::Begin { version, service, listener, connections, .. } => {
                if version != PROTOCOL_VERSION {
                    return Err(Error::Protocol(format!(
                        "the serving instance speaks handover version {version}, not {PROTOCOL_VERSION}"
                    )));
                }
                (service, listener, connections)
            }
            Header::Refused { reason } => {
                return Err(Error::Protocol(format!("the serving instance refused: {reason}")));
            }
            other => return Err(unexpected("begin", &other)),
        };
        let mut fds = begin.fds.into_iter();
        let listener = if has_listener { fds.next().map(TcpListener::from) } else { None };
        let mut connections = Vec::with_capacity(expected);
        loop {
            let frame = channel.recv().await?;
            match frame.header {
                Header::Connections { items } => {
                    let mut body = frame.body.as_slice();
                    for (state, fd) in items.into_iter().zip(frame.fds) {
                        connections.push(state.rebuild(fd, &mut body)?);
                    }
                }
                Header::End { connections: count } => {
                    if count != connections.len() || count != expected {
                        return Err(Error::Protocol(format!(
                            "{} connections received, {count} sent",
                            connections.len()
                        )));
                    }
                    break;
                }
                other => return Err(unexpected("connections", &other)),
            }
        }
        Ok::<_, Error>((service, listener, connections))
    };
    let (service, listener, connections) =
        tokio::time::timeout(timeout, receive).await.map_err(|_| {
            Error::Network(NetworkError::Timeout(
                "the handover did not complete in time".to_owned(),
            ))
        })??;
    Ok(Inheritance { channel, pid, service, listener, connections })
}

/// The old side of one handover. `Ok(None)`: the peer left before saying hello.
async fn hand_over(
    handle: &ControlHandle,
    stream: UnixStream,
    pid: u32,
    options: &HandoverOptions,
) -> Result<Option<Successor>, Error> {
    let mut channel = Channel::new(stream)?;
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, channel.recv()).await {
        Err(_) => return Ok(None),
        Ok(Err(e)) if e.is_closed() => return Ok(None),
        Ok(result) => result?,
    };
    match hello.header {
        Header::Hello { version, .. } if version == PROTOCOL_VERSION => {}
        Header::Hello { version, .. } => {
            let reason = format!("handover version {version} is not {PROTOCOL_VERSION}");
            let _ = channel.send(&Header::Refused { reason: reason.clone() }, &[], &[]).await;
            return Err(Error::Protocol(reason));
        }
        other => return Err(unexpected("hello", &other)),
    }
    let started = Instant::now();
    tracing::info!(pid, "a successor asks to take over");

    // Stop accepting, then take every connection out at a frame boundary.
    let listener = handle.take_listener().await;
    let mut held = Held { handle: handle.clone(), listener, connections: Vec::new(), done: false };
    let mut removing = JoinSet::new();
    for info in handle.connections() {
        let h = handle.clone();
        removing.spawn(async move { h.remove_connection(info.id).await });
    }
    let drain_deadline = tokio::time::Instant::now() + options.drain_timeout;
    while !removing.is_empty() {
        match tokio::time::timeout_at(drain_deadline, removing.join_next()).await {
            Ok(Some(Ok(Ok(detached)))) => held.connections.push(detached),
            // The connection ended on its own meanwhile.
            Ok(Some(Ok(Err(_)))) => {}
            Ok(Some(Err(e))) => tracing::error!(error = %e, "a connection removal panicked"),
            Ok(None) => break,
            Err(_) => {
                let busy = removing.len();
                held.adopt_stragglers(removing);
                let reason = format!(
                    "{busy} connection(s) still in a call after {:?}; try again later",
                    options.drain_timeout
                );
                let _ = channel.send(&Header::Refused { reason: reason.clone() }, &[], &[]).await;
                return Err(Error::Protocol(reason));
            }
        }
    }

    // Send everything, then wait for the successor to be ready.
    let count = held.connections.len();
    let has_listener = held.listener.is_some();
    let ready = tokio::time::timeout(options.ready_timeout, async {
        let begin = Header::Begin {
            version: PROTOCOL_VERSION,
            pid: std::process::id(),
            service: handle.name().to_owned(),
            listener: has_listener,
            connections: count,
        };
        let listener_fd: Vec<BorrowedFd<'_>> = held.listener.iter().map(AsFd::as_fd).collect();
        channel.send(&begin, &[], &listener_fd).await?;
        for batch in batches(&held.connections) {
            let mut body = Vec::new();
            let items = batch.iter().map(|c| ConnState::of(c, &mut body)).collect();
            let fds: Vec<BorrowedFd<'_>> = batch.iter().map(|c| c.parts.stream.as_fd()).collect();
            channel.send(&Header::Connections { items }, &body, &fds).await?;
        }
        channel.send(&Header::End { connections: count }, &[], &[]).await?;
        channel.recv().await
    })
    .await;
    let ready = match ready {
        Ok(result) => result,
        Err(_) => {
            // Refuse a late `ready`, then look once more: one that arrived before the
            // shutdown counts; one after it fails on the successor's side.
            channel.shutdown_read();
            match tokio::time::timeout(Duration::from_millis(100), channel.recv()).await {
                Ok(result) => result,
                Err(_) => Err(Error::Network(NetworkError::Timeout(format!(
                    "the successor was not ready within {:?}",
                    options.ready_timeout
                )))),
            }
        }
    };
    match ready?.header {
        Header::Ready => {}
        other => return Err(unexpected("ready", &other)),
    }
    // The decision: once the confirmation is in the successor's buffer, everything is its.
    channel.send(&Header::Committed, &[], &[]).await?;
    held.done = true;
    Ok(Some(Successor {
        pid,
        connections: count,
        listener: has_listener,
        elapsed: started.elapsed(),
    }))
}

/// What the old instance holds during a handover; unless the handover is committed
/// (`done`), dropping it serves everything here again.
struct Held {
    handle: ControlHandle,
    listener: Option<TcpListener>,
    connections: Vec<DetachedConnection>,
    done: bool,
}

impl Held {
    /// Rolls back now, and re-adopts the connections still finishing a call as they come.
    fn adopt_stragglers(&mut self, mut removing: JoinSet<Result<DetachedConnection, Error>>) {
        self.roll_back();
        let handle = self.handle.clone();
        tokio::spawn(async move {
            while let Some(joined) = removing.join_next().await {
                if let Ok(Ok(detached)) = joined {
                    if let Err(e) = handle.adopt_connection(detached) {
                        tracing::warn!(error = %e, "cannot serve a connection again");
                    }
                }
            }
        });
    }

    fn roll_back(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let count = self.connections.len();
        for detached in self.connections.drain(..) {
            if let Err(e) = self.handle.adopt_connection(detached) {
                tracing::warn!(error = %e, "cannot serve a connection again");
            }
        }
        if let Some(listener) = self.listener.take() {
            let handle = self.handle.clone();
            // The event loop registers it; the command is queued before any later one.
            tokio::spawn(async move {
                if let Err(e) = handle.set_listener(listener).await {
                    tracing::error!(error = %e, "cannot listen again after a failed handover");
                }
            });
        }
        tracing::info!(connections = count, "handover rolled back; serving on");
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.roll_back();
    }
}

/// Cuts the connections into messages of at most [`FDS_PER_MESSAGE`] descriptors and
/// about [`BODY_PER_MESSAGE`] bytes of state.
fn batches(connections: &[DetachedConnection]) -> Vec<&[DetachedConnection]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, c) in connections.iter().enumerate() {
        let size = c.parts.input.len() + c.parts.output.len();
        if i > start && (i - start == FDS_PER_MESSAGE || bytes + size > BODY_PER_MESSAGE) {
            out.push(&connections[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < connections.len() {
        out.push(&connections[start..]);
    }
    out
}

/// The state of one connection on the wire; its bytes follow the header in the body, in
/// the order challenge, input, output.
#[derive(Debug, Serialize, Deserialize)]
struct ConnState {
    host: String,
    port: u16,
    identity: Option<String>,
    /// The challenge's length if the handshake is in progress; `None` once established.
    challenge: Option<usize>,
    input: usize,
    output: usize,
}

impl ConnState {
    fn of(c: &DetachedConnection, body: &mut Vec<u8>) -> ConnState {
        let challenge = match &c.phase {
            ConnectionPhase::Challenged { challenge } => {
                body.extend_from_slice(challenge);
                Some(challenge.len())
            }
            ConnectionPhase::Established => None,
        };
        body.extend_from_slice(&c.parts.input);
        body.extend_from_slice(&c.parts.output);
        ConnState {
            host: c.address.host.clone(),
            port: c.address.port,
            identity: c.identity.clone(),
            challenge,
            input: c.parts.input.len(),
            output: c.parts.output.len(),
        }
    }

    fn rebuild(self, fd: OwnedFd, body: &mut &[u8]) -> Result<DetachedConnection, Error> {
        let mut take = |n: usize| -> Result<Vec<u8>, Error> {
            if body.len() < n {
                return Err(Error::Protocol("connection state shorter than announced".to_owned()));
            }
            let (head, rest) = body.split_at(n);
            *body = rest;
            Ok(head.to_vec())
        };
        let phase = match self.challenge {
            Some(n) => ConnectionPhase::Challenged { challenge: take(n)? },
            None => ConnectionPhase::Established,
        };
        let input = take(self.input)?;
        let output = take(self.output)?;
        Ok(DetachedConnection {
            parts: ConnectionParts { stream: TcpStream::from(fd), input, output },
            address: Address::new(self.host, self.port),
            identity: self.identity,
            phase,
        })
    }
}

/// The messages of the handover conversation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Header {
    /// Successor → old: who is asking.
    Hello { version: u32, pid: u32 },
    /// Old → successor, with the listener's descriptor if `listener`.
    Begin { version: u32, pid: u32, service: String, listener: bool, connections: usize },
    /// Old → successor, with one descriptor per item.
    Connections { items: Vec<ConnState> },
    /// Old → successor: everything is sent.
    End { connections: usize },
    /// Old → successor: no handover now, and why.
    Refused { reason: String },
    /// Successor → old: everything received; nothing served yet.
    Ready,
    /// Old → successor: everything is yours.
    Committed,
}

impl Header {
    /// The number of descriptors that travel with this message.
    fn fds(&self) -> usize {
        match self {
            Header::Begin { listener, .. } => usize::from(*listener),
            Header::Connections { items } => items.len(),
            _ => 0,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Header::Hello { .. } => "hello",
            Header::Begin { .. } => "begin",
            Header::Connections { .. } => "connections",
            Header::End { .. } => "end",
            Header::Refused { .. } => "refused",
            Header::Ready => "ready",
            Header::Committed => "committed",
        }
    }
}

fn unexpected(wanted: &str, got: &Header) -> Error {
    match got {
        Header::Refused { reason } => {
            Error::Protocol(format!("the other instance gave up the handover: {reason}"))
        }
        other => Error::Protocol(format!("expected a {wanted} message, got {}", other.name())),
    }
}

/// One message of the conversation.
struct Frame {
    header: Header,
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// The handover conversation over a Unix stream socket: each message is a 4-byte
/// big-endian header length, an 8-byte body length, the JSON header and the body, sent as
/// one [`FdTx`](crate::fdtx::FdTx) message with its descriptors. Descriptors arrive no
/// later than the first byte of their message, so they are queued in order and each
/// complete message takes as many as its header announces.
struct Channel {
    tx: AsyncFdTx,
    input: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

const PREFIX: usize = 12;

impl Channel {
    fn new(stream: UnixStream) -> Result<Channel, Error> {
        Ok(Channel { tx: AsyncFdTx::new(stream)?, input: Vec::new(), fds: VecDeque::new() })
    }

    async fn send(
        &self,
        header: &Header,
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), Error> {
        debug_assert_eq!(header.fds(), fds.len());
        let json = serde_json::to_vec(header).map_err(Error::Encode)?;
        let mut message = Vec::with_capacity(PREFIX + json.len() + body.len());
        message.extend_from_slice(&(json.len() as u32).to_be_bytes());
        message.extend_from_slice(&(body.len() as u64).to_be_bytes());
        message.extend_from_slice(&json);
        message.extend_from_slice(body);
        self.tx.put(&message, fds).await
    }

    async fn recv(&mut self) -> Result<Frame, Error> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(frame);
            }
            let (n, fds) = self.tx.get_into(&mut chunk, fdtx::MAX_FDS).await?;
            self.input.extend_from_slice(&chunk[..n]);
            self.fds.extend(fds);
        }
    }

    fn parse(&mut self) -> Result<Option<Frame>, Error> {
        if self.input.len() < PREFIX {
            return Ok(None);
        }
        let header_len =
            u32::from_be_bytes(self.input[..4].try_into().unwrap_or_default()) as usize;
        let body_len = u64::from_be_bytes(self.input[4..PREFIX].try_into().unwrap_or_default());
        if header_len > MAX_HEADER {
            return Err(Error::Protocol(format!("handover header of {header_len} bytes")));
        }
        let body_len = usize::try_from(body_len)
            .map_err(|_| Error::Protocol(format!("handover body of {body_len} bytes")))?;
        let total = PREFIX + header_len + body_len;
        if self.input.len() < total {
            return Ok(None);
        }
        let header: Header = serde_json::from_slice(&self.input[PREFIX..PREFIX + header_len])
            .map_err(|e| Error::Protocol(format!("invalid handover message: {e}")))?;
        let body = self.input[PREFIX + header_len..total].to_vec();
        self.input.drain(..total);
        let wanted = header.fds();
        if self.fds.len() < wanted {
            return Err(Error::Protocol(format!(
                "a {} message announced {wanted} descriptors; {} arrived",
                header.name(),
                self.fds.len()
            )));
        }
        let fds = self.fds.drain(..wanted).collect();
        Ok(Some(Frame { header, body, fds }))
    }

    /// Refuses anything the peer sends from now on (its sends fail), keeping what has
    /// arrived readable.
    fn shutdown_read(&self) {
        let _ = socket2::SockRef::from(self.tx.stream()).shutdown(std::net::Shutdown::Read);
    }
}

/// Checks that the peer runs as this user or as root, and returns its pid.
fn check_peer(stream: &impl AsFd) -> Result<u32, Error> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let creds = getsockopt(stream, PeerCredentials)
        .map_err(|e| Error::io("read the peer's credentials", e.into()))?;
    let me = nix::unistd::geteuid().as_raw();
    if creds.uid() != me && creds.uid() != 0 {
        return Err(Error::Invalid(format!(
            "handover peer pid {} runs as uid {}, not {me}",
            creds.pid(),
            creds.uid()
        )));
    }
    Ok(u32::try_from(creds.pid()).unwrap_or(0))
}

/// Creates the socket's directory (0700) and makes sure it is this user's and private.
fn private_parent(path: &Path) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| Error::Invalid(format!("{} has no directory", path.display())))?;
    fdtx::ensure_private_dir(dir)?;
    let meta = fs::metadata(dir).map_err(|e| Error::io(format!("inspect {}", dir.display()), e))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::io(
            format!("{} belongs to uid {}, not {me}", dir.display(), meta.uid()),
            io::Error::from(io::ErrorKind::PermissionDenied),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        tracing::info!(dir = %dir.display(), "making the handover directory private (0700)");
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("restrict {}", dir.display()), e))?;
    }
    Ok(())
}

/// Removes the sockets that successors which died before installing theirs left beside
/// `path` (`.<name>.<pid>` of a process that no longer exists).
fn remove_abandoned(path: &Path, name: &str) {
    let Some(dir) = path.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        let alive = Path::new("/proc").join(pid).exists();
        if pid.parse::<u32>().is_ok() && !alive && fdtx::is_socket(&entry.path()) {
            tracing::debug!(path = %entry.path().display(), "removing an abandoned handover socket");
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

fn live_instance(path: &Path) -> Error {
    Error::io(
        format!("another instance is serving (its handover socket {} is live)", path.display()),
        io::Error::from(io::ErrorKind::AddrInUse),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_descriptor_and_size_limits() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let make = |input: usize| DetachedConnection {
            parts: ConnectionParts {
                stream: {
                    // Accept each one, so the backlog never fills.
                    let stream = TcpStream::connect(addr).unwrap();
                    drop(listener.accept().unwrap());
                    stream
                },
                input: vec![0; input],
                output: Vec::new(),
            },
            address: Address::new("127.0.0.1", 1),
            identity: None,
            phase: ConnectionPhase::Established,
        };
        let many: Vec<_> = (0..501).map(|_| make(0)).collect();
        let sizes: Vec<usize> = batches(&many).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [250, 250, 1]);
        let big: Vec<_> = (0..3).map(|_| make(3 * 1024 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn state_round_trips_through_the_body() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let detached = DetachedConnection {
            parts: ConnectionParts {
                stream,
                input: b"partial".to_vec(),
                output: b"unsent".to_vec(),
            },
            address: Address::new("::1", 4000),
            identity: Some("admin".to_owned()),
            phase: ConnectionPhase::Challenged { challenge: b"#CHALLENGE#salt".to_vec() },
        };
        let mut body = Vec::new();
        let state = ConnState::of(&detached, &mut body);
        let json = serde_json::to_string(&state).unwrap();
        let state: ConnState = serde_json::from_str(&json).unwrap();
        let fd = OwnedFd::from(detached.parts.stream.try_clone().unwrap());
        let mut rest = body.as_slice();
        let back = state.rebuild(fd, &mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(back.parts.input, b"partial");
        assert_eq!(back.parts.output, b"unsent");
        assert_eq!(back.address, detached.address);
        assert_eq!(back.identity, detached.identity);
        assert_eq!(back.phase, detached.phase);
    }
}
