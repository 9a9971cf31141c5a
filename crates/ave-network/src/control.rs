//! `Control`: the RPC server.
//!
//! A [`Control`] owns a listening socket and serves one [`Service`]. Its event loop
//! ([`Control::run`]) accepts connections, runs the idle hook, obeys commands from
//! [`ControlHandle`]s, and owns the shutdown. Every connection is served by its own task:
//! the handshake, then one request at a time, strictly in order, so a slow method delays
//! only the later calls of its own connection.
//!
//! The state of a connection is explicit and can be taken out at a frame boundary
//! ([`ControlHandle::remove_connection`] gives a [`DetachedConnection`]: the socket, the
//! identity, the partial input and the unsent output) and served again by this or another
//! `Control` ([`ControlHandle::adopt_connection`]).
//!
//! # The one import cycle of the crate
//!
//! The files of this folder import each other, and nothing outside it takes part: the
//! event loop (`control.rs`, `shared.rs`) spawns a session per connection (`session.rs`);
//! a session reports to the loop through the shared state and serves the methods of the
//! [`Service`] (`service.rs`, `dispatch.rs`); every method gets a [`Context`] that holds a
//! [`ControlHandle`] (`handle.rs`), whose commands are the loop's; deferred joins and
//! hickup dumps (`defjoin.rs`, `hickup.rs`) are `ControlHandle` methods the loop drives.
//! The types force it: a method may stop the server that is calling it. Everything below
//! (`wire`, `connection`, `process`) and above (`handover`, `diagnostic`, `systemd`) only
//! points one way (`cargo xtask tidy` checks it).
//!
//! # Example
//!
//! ```
//! use ave_network::control::{Control, ControlBuilder, Service, params};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ave_network::Error> {
//! let service = Service::builder("echo")
//!     .rpc("upper", params(["message"]), |_ctx, (message,): (String,)| async move {
//!         Ok(message.to_uppercase())
//!     })
//!     .build();
//! let builder: ControlBuilder = Control::builder(service).authkey(Some("secret"));
//! let control = builder.build()?;
//! assert_ne!(control.port(), 0);
//! let handle = control.handle();
//! let server = tokio::spawn(control.run());
//! handle.stop();
//! server.await.expect("the server task")?;
//! # Ok(())
//! # }
//! ```

mod builder;
pub(crate) mod defjoin;
pub(crate) mod dispatch;
#[doc(hidden)]
pub use crate::control::dispatch::fuzz_prepare;
mod handle;
pub(crate) mod hickup;
mod into_process;
pub(crate) mod limits;
pub(crate) mod service;
pub(crate) mod session;
pub(crate) mod shared;
pub(crate) mod signals;
mod wake;

pub use crate::control::{
    builder::ControlBuilder,
    handle::ControlHandle,
    limits::{
        DEFAULT_DRAIN, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTION_OUTPUT,
        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ECHO, DEFAULT_MAX_HANDSHAKE_FRAME,
        DEFAULT_MAX_SLEEP, DEFAULT_MAX_TEXT, DEFAULT_MAX_TOTAL_OUTPUT, Limits,
    },
    service::{
        Context, LIST_METHODS, MethodInfo, Params, RawArgs, RpcResult, Service, ServiceBuilder,
        params, type_error,
    },
};
pub(crate) use crate::control::{
    builder::Listen,
    shared::{Adoption, AdoptionSource, Command, Config, ConnShared, Shared, ShutdownSignal, lock},
};

use std::{
    fmt,
    net::{SocketAddr, TcpListener},
    panic::AssertUnwindSafe,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use ave_exceptions::AveException;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinSet,
    time::Instant,
};

use crate::{
    Error,
    connection::LOCALHOST,
    connection::{Address, Connection, ConnectionParts},
    control::session::Phase,
    wire::handshake::{DigestPolicy, Keys},
};

/// The default bound on a shutdown: finishing calls in progress, delivering the last
/// replies and exit messages.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

/// The shortest idle interval; shorter ones are raised to it (an interval of 0 made the
/// original spin).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Identifies a connection of a `Control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection #{}", self.0)
    }
}

/// What hooks and listings see of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection.
    pub id: ConnectionId,
    /// The peer's address (for an added connection, the address it was added with).
    pub address: Address,
    /// The key the connection authenticated with, if any.
    pub identity: Option<String>,
    /// Whether the handshake is over.
    pub established: bool,
}

/// Where a connection is in its life: what a detached connection resumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionPhase {
    /// The challenge (this payload) is sent or queued; the answer has not arrived.
    Challenged {
        /// The challenge payload the client is answering.
        challenge: Vec<u8>,
    },
    /// Handshake over: requests are served.
    Established,
}

/// A connection taken out of a `Control` at a frame boundary: everything needed to serve
/// it on elsewhere with no byte lost or repeated.
#[derive(Debug)]
pub struct DetachedConnection {
    /// The socket, the unconsumed input and the unsent output.
    pub parts: ConnectionParts,
    /// The peer's address, as the `Control` knew it.
    pub address: Address,
    /// The connection's identity.
    pub identity: Option<String>,
    /// Where the connection was in its life.
    pub phase: ConnectionPhase,
}

/// Why a `Control` stopped.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Stopped {
    /// [`ControlHandle::stop`] was called.
    Stop,
    /// A method raised `Exit`: it was answered, and its details were sent to every other
    /// connection.
    Exit(AveException),
    /// [`ControlHandle::shutdown`] was called; the details, if any, were sent to every
    /// connection.
    Shutdown(Option<AveException>),
    /// A termination signal arrived (SIGTERM or SIGHUP, with [`ControlBuilder::handle_signals`]).
    Signal(i32),
    /// A successor took over the listener and every connection
    /// ([`crate::handover`]); nothing was closed.
    Replaced,
}

/// The RPC server: a listening socket, a service, and the event loop that serves them.
///
/// ```no_run
/// use ave_network::control::{Control, Service, params};
///
/// # async fn example() -> Result<(), ave_network::Error> {
/// let service = Service::builder("echo")
///     .rpc("upper", params(["message"]), |_ctx, (message,): (String,)| async move {
///         Ok(message.to_uppercase())
///     })
///     .build();
/// let control = Control::builder(service).authkey(Some("secret")).build()?;
/// println!("serving on port {}", control.port());
/// let stopped = control.run().await?;
/// # let _ = stopped;
/// # Ok(())
/// # }
/// ```
pub struct Control {
    pub(crate) shared: Arc<Shared>,
    pub(crate) listener: Option<TcpListener>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// Tasks that run beside the event loop and end with it (a successor receiving the
    /// connections its predecessor drains).
    pub(crate) alongside: Vec<Alongside>,
}

/// A task run beside a `Control`'s event loop.
pub(crate) type Alongside = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("service", &self.shared.service.name())
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Starts declaring a server for `service`.
    pub fn builder(service: Service) -> ControlBuilder {
        let name = format!("ave-{}", service.name());
        ControlBuilder {
            service,
            listen: Listen::Addr(SocketAddr::new(LOCALHOST, 0)),
            keys: Keys::default(),
            config: Config {
                name,
                digest: DigestPolicy::Md5,
                interval: None,
                limits: Limits::default(),
                linger: DEFAULT_LINGER,
                handle_signals: false,
                home: None,
            },
        }
    }

    /// Installs the signal handling of [`ControlBuilder::handle_signals`] now rather than
    /// when [`Control::run`] starts, so that a SIGTERM or SIGUSR1 arriving in between is
    /// handled instead of ending the process. Call it inside the runtime before announcing
    /// the service (printing its address, writing a port file); [`Control::run`] then uses
    /// this handling. Does nothing without `handle_signals` or when already installed.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the handling cannot be installed (for instance outside a runtime).
    pub fn install_signal_handling(&self) -> Result<(), Error> {
        let mut slot = lock(&self.shared.signals);
        if self.shared.config.handle_signals && slot.is_none() {
            *slot = Some(
                crate::control::signals::ControlSignals::install()
                    .map_err(|e| Error::io("install the SIGTERM and SIGUSR1 handling", e))?,
            );
        }
        Ok(())
    }

    /// The listening address, if there is a listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.shared.local_addr)
    }

    /// The listening port (0 without a listener).
    pub fn port(&self) -> u16 {
        self.local_addr().map_or(0, |a| a.port())
    }

    /// The listening socket, to keep it open in a child.
    pub(crate) fn listener_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.listener.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    /// A handle to control the server from methods, hooks, or other tasks.
    pub fn handle(&self) -> ControlHandle {
        ControlHandle { shared: self.shared.clone() }
    }

    /// Serves until the server is stopped, then shuts down: the listener is closed first
    /// (new connects are refused), then every connection finishes its current call,
    /// receives the exit message if there is one, and is closed, within the linger time.
    /// Returns why it stopped.
    ///
    /// Must run inside a tokio runtime; connections are served by tasks spawned on it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the listener cannot be registered with the runtime or the signal
    /// handler cannot be installed.
    pub async fn run(mut self) -> Result<Stopped, Error> {
        let shared = self.shared.clone();
        let handle = self.handle();
        let mut listener = match self.listener.take() {
            Some(l) => {
                l.set_nonblocking(true).map_err(|e| Error::io("use the listening socket", e))?;
                Some(
                    tokio::net::TcpListener::from_std(l)
                        .map_err(|e| Error::io("use the listening socket", e))?,
                )
            }
            None => None,
        };
        let mut signals = match lock(&shared.signals).take() {
            Some(installed) => Some(installed),
            None if shared.config.handle_signals => Some(
                crate::control::signals::ControlSignals::install()
                    .map_err(|e| Error::io("install the SIGTERM and SIGUSR1 handling", e))?,
            ),
            None => None,
        };
        let mut reaper = shared.reaper.driver();
        let mut alongside = JoinSet::new();
        for task in std::mem::take(&mut self.alongside) {
            alongside.spawn(task);
        }
        let permits = Arc::new(Semaphore::new(shared.config.limits.max_connections));
        let mut tasks = JoinSet::new();
        let interval = shared.config.interval;
        let mut idle_at = interval.map(|i| Instant::now() + i);
        let mut idle_seen = shared.activity.load(Ordering::Relaxed);
        let mut accept_pause: Option<Instant> = None;
        let mut room = Room::default();
        tracing::info!(service = %shared.config.name, addr = ?self.local_addr(), "serving");

        let reason = loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    None | Some(Command::Stop) => break Stopped::Stop,
                    Some(Command::Shutdown(details)) => break Stopped::Shutdown(details),
                    Some(Command::Exit(details)) => break Stopped::Exit(details),
                    Some(Command::StopListening(ack)) => {
                        listener = None;
                        shared.listening.store(false, Ordering::Release);
                        let _ = ack.send(());
                    }
                    Some(Command::Adopt(adoption)) => {
                        let permit = permits.clone().try_acquire_owned().ok();
                        spawn_adopted(&shared, &mut tasks, adoption, permit);
                    }
                    Some(Command::TakeListener(reply)) => {
                        shared.listening.store(false, Ordering::Release);
                        let taken = listener.take().and_then(|l| match l.into_std() {
                            Ok(l) => Some(l),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot take the listener out of the runtime");
                                None
                            }
                        });
                        if let Err(Some(back)) = reply.send(taken) {
                            // Nobody took it: serve on, rather than close it.
                            listener = register_listener(back).ok();
                            shared.listening.store(listener.is_some(), Ordering::Release);
                        }
                    }
                    Some(Command::SetListener(new, reply)) => {
                        let addr = new.local_addr().ok();
                        match register_listener(new) {
                            Ok(l) => {
                                listener = Some(l);
                                *lock(&shared.local_addr) = addr;
                                shared.listening.store(true, Ordering::Release);
                                let _ = reply.send(Ok(()));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Some(Command::Replaced) => break Stopped::Replaced,
                    Some(Command::Alongside(task)) => {
                        alongside.spawn(task);
                    }
                },
                Some(signal) = crate::control::signals::next(&mut signals) => match signal {
                    crate::control::signals::ControlSignal::Terminate(n) => break Stopped::Signal(n),
                    crate::control::signals::ControlSignal::Hickup => crate::control::hickup::on_signal(&handle),
                },
                (pid, joined) = crate::control::defjoin::next(&mut reaper) => {
                    crate::control::defjoin::joined(&handle, pid, joined);
                }
                accepted = accept(listener.as_ref()), if listener.is_some() && accept_pause.is_none() && room.waiting.is_none() => {
                    match accepted {
                        Ok((stream, peer)) => {
                            room.accepted();
                            match permits.clone().try_acquire_owned() {
                                Ok(permit) => start_session(&shared, &mut tasks, stream, peer, permit),
                                // At the cap: the newcomer waits for the room made for it.
                                Err(_) => room.wait(&shared, stream, peer),
                            }
                        }
                        Err(e) => accept_pause = Some(room.accept_failed(&shared, &e)),
                    }
                }
                permit = permits.clone().acquire_owned(), if room.waiting.is_some() => {
                    if let (Ok(permit), Some((stream, peer))) = (permit, room.waiting.take()) {
                        start_session(&shared, &mut tasks, stream, peer, permit);
                    }
                }
                () = sleep_until(room.retry), if room.waiting.is_some() => {
                    room.make_room(&shared, "the connection cap");
                }
                () = sleep_until(accept_pause), if accept_pause.is_some() => {
                    accept_pause = None;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    // A connection ended: its descriptor is free for the next accept.
                    accept_pause = None;
                    if let Err(e) = joined {
                        if e.is_panic() {
                            tracing::error!("a connection task panicked");
                        }
                    }
                }
                () = sleep_until(idle_at), if idle_at.is_some() => {
                    let seen = shared.activity.load(Ordering::Relaxed);
                    if seen == idle_seen {
                        if let Some(hook) = &shared.service.hooks().idle {
                            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&handle))).is_err() {
                                tracing::error!("the idle hook panicked");
                            }
                        }
                    }
                    idle_seen = seen;
                    idle_at = interval.map(|i| Instant::now() + i);
                }
            }
        };

        // Shutdown: refuse new connects first, then let every connection finish.
        drop(listener);
        shared.listening.store(false, Ordering::Release);
        self.commands.close();
        let mut deadline = Instant::now() + shared.config.linger;
        let close_by = deadline;
        let mut cut_only = false;
        let details = match &reason {
            Stopped::Exit(details) => Some(details.clone()),
            Stopped::Shutdown(details) => details.clone(),
            Stopped::Stop | Stopped::Signal(_) => None,
            Stopped::Replaced => {
                // The successor serves everything else, and the drain time is over: the
                // calls still running are cut now and answered with an Exit.
                let drain = shared.config.limits.drain;
                deadline = Instant::now();
                cut_only = true;
                let left = lock(&shared.conns).len();
                if left > 0 {
                    tracing::info!(service = %shared.config.name, connections = left, "calls still running after the drain time are cut");
                }
                Some(AveException::exit(format!(
                    "the server was replaced and the call did not finish within the drain time of {}",
                    crate::control::limits::describe(drain)
                )))
            }
        };
        tracing::info!(service = %shared.config.name, reason = ?reason, "shutting down");
        shared.shutdown.send_replace(Some(ShutdownSignal {
            details,
            cut_only,
            deadline,
            close_by,
        }));
        // Connection tasks look for the shutdown when their doorbell rings; a task that
        // starts after this sees the shutdown before it waits.
        for conn in lock(&shared.conns).values() {
            conn.wake.raise();
        }
        // Connections adopted while the loop was stopping are served only to be closed.
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Adopt(adoption) => spawn_adopted(&shared, &mut tasks, adoption, None),
                Command::StopListening(ack) => {
                    let _ = ack.send(());
                }
                Command::TakeListener(reply) => {
                    let _ = reply.send(None);
                }
                Command::SetListener(_, reply) => {
                    let _ = reply.send(Err(Error::ShuttingDown));
                }
                Command::Alongside(task) => {
                    alongside.spawn(task);
                }
                Command::Stop | Command::Shutdown(_) | Command::Exit(_) | Command::Replaced => {}
            }
        }
        let grace = close_by + Duration::from_millis(500);
        let _ =
            tokio::time::timeout_at(grace, async { while tasks.join_next().await.is_some() {} })
                .await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        // What runs alongside (a drain reporting its end) has had the same grace.
        let _ = tokio::time::timeout_at(grace, async {
            while alongside.join_next().await.is_some() {}
        })
        .await;
        alongside.abort_all();
        if let Some(hook) = &shared.service.hooks().shutdown {
            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&handle, &reason))).is_err() {
                tracing::error!("the shutdown hook panicked");
            }
        }
        Ok(reason)
    }
}

/// Registers a listening socket with the runtime.
fn register_listener(l: TcpListener) -> Result<tokio::net::TcpListener, Error> {
    l.set_nonblocking(true).map_err(|e| Error::io("use the listening socket", e))?;
    tokio::net::TcpListener::from_std(l).map_err(|e| Error::io("use the listening socket", e))
}

fn spawn_adopted(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    adoption: Adoption,
    permit: Option<OwnedSemaphorePermit>,
) {
    let io = match adoption.source {
        AdoptionSource::Tokio(io) => Ok(io),
        AdoptionSource::Parts(parts) => Connection::from_parts(parts),
    };
    match io {
        Ok(mut io) => {
            io.set_max_frame(shared.config.limits.max_frame);
            let task = session::Session::new(shared.clone(), adoption.conn, io, permit);
            tasks.spawn(task.run(adoption.phase));
        }
        Err(e) => {
            tracing::warn!(error = %ave_exceptions::error_chain(&e), "cannot adopt a connection");
            shared.forget(adoption.conn.id);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    let Some(listener) = listener else { return std::future::pending().await };
    listener.accept().await
}

/// Starts serving a connection from the listener.
fn start_session(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    shared.activity.fetch_add(1, Ordering::Relaxed);
    match Connection::from_tokio(stream) {
        Ok(mut io) => {
            io.set_max_frame(shared.config.limits.max_frame);
            let conn = shared.new_conn(Address::from(peer), None);
            let task = session::Session::new(shared.clone(), conn, io, Some(permit));
            tasks.spawn(task.run(Phase::Greeting));
        }
        Err(e) => {
            tracing::debug!(error = %ave_exceptions::error_chain(&e), "dropping a new connection");
        }
    }
}

/// How long a newcomer at the connection cap waits before the loop looks again for a
/// connection to close for it (when none could be closed, or the closed one is slow to
/// go).
const ROOM_RETRY: Duration = Duration::from_secs(1);

/// The longest pause after a failed accept; the first is [`FIRST_ACCEPT_PAUSE`], each
/// failure in a row doubles it. A connection that ends ends the pause at once.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// The first pause after a failed accept.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How often the same warning (a failed accept, a connection closed to make room) is
/// logged at most; the next one says how many were not.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Making room at the connection cap and when descriptors run out: the longest-idle
/// connection without an identity is closed, so a client with a key is still served.
#[derive(Default)]
struct Room {
    /// A newcomer accepted at the cap, waiting for a permit.
    waiting: Option<(tokio::net::TcpStream, SocketAddr)>,
    /// When to look again for a connection to close for `waiting`.
    retry: Option<Instant>,
    /// The pause after the last failed accept (`None` after a success).
    pause: Option<Duration>,
    accept_warnings: Throttle,
    eviction_warnings: Throttle,
}

impl Room {
    fn accepted(&mut self) {
        self.pause = None;
    }

    /// Holds a newcomer accepted at the cap and closes a connection for it.
    fn wait(&mut self, shared: &Shared, stream: tokio::net::TcpStream, peer: SocketAddr) {
        self.waiting = Some((stream, peer));
        self.make_room(shared, "the connection cap");
    }

    /// Closes the longest-idle connection without an identity, if there is one.
    fn make_room(&mut self, shared: &Shared, why: &str) -> bool {
        self.retry = Some(Instant::now() + ROOM_RETRY);
        let Some((victim, idle)) = shared.evict_one() else { return false };
        if let Some(suppressed) = self.eviction_warnings.allow() {
            tracing::warn!(
                conn = %victim.id,
                peer = %victim.address,
                idle_s = idle.as_secs(),
                why,
                not_logged_since = suppressed,
                "closing the longest-idle connection without an identity to make room"
            );
        }
        true
    }

    /// After a failed accept: closes a connection if descriptors ran out, says so at
    /// most once a minute, and returns when to try again.
    fn accept_failed(&mut self, shared: &Shared, e: &std::io::Error) -> Instant {
        use nix::errno::Errno;
        let out_of_descriptors = e.raw_os_error().is_some_and(|n| {
            [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM]
                .contains(&Errno::from_raw(n))
        });
        let made_room = out_of_descriptors && self.make_room(shared, "the descriptor limit");
        if let Some(suppressed) = self.accept_warnings.allow() {
            tracing::warn!(error = %e, made_room, failed_since = suppressed, "accept failed; retrying when a connection ends");
        }
        let pause = self.pause.map_or(FIRST_ACCEPT_PAUSE, |p| (p * 2).min(MAX_ACCEPT_PAUSE));
        self.pause = Some(pause);
        Instant::now() + pause
    }
}

/// Lets a repeated warning through at most once per [`WARN_EVERY`].
#[derive(Default)]
struct Throttle {
    next: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(number not logged since the last one)` if this one may be logged.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + WARN_EVERY);
        Some(std::mem::take(&mut self.suppressed))
    }
}
