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

use std::{
    collections::HashMap,
    fmt,
    net::{SocketAddr, TcpListener},
    os::fd::OwnedFd,
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ave_exceptions::AveException;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch},
    task::JoinSet,
    time::Instant,
};

use crate::{
    Address, Connection, ConnectionParts, Error,
    connection::LOCALHOST,
    frame::DEFAULT_MAX_FRAME,
    handshake::{DigestPolicy, Keys},
    service::Service,
    session::{self, Phase},
};

/// The default limit on concurrent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// The default time a client has to answer the challenge.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The default bound on a shutdown: finishing calls in progress, delivering the last
/// replies and exit messages.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

/// The shortest idle interval; shorter ones are raised to it (an interval of 0 made the
/// original spin).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Identifies a connection of a `Control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

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
    /// A termination signal arrived (SIGTERM, with [`ControlBuilder::handle_signals`]).
    Signal(i32),
    /// A successor took over the listener and every connection
    /// ([`crate::handover`]); nothing was closed.
    Replaced,
}

/// The per-connection record shared between the connection's task, the table and the
/// method contexts.
pub(crate) struct ConnShared {
    pub(crate) id: ConnectionId,
    pub(crate) address: Address,
    identity: Mutex<Option<String>>,
    established: AtomicBool,
    detach: Mutex<Option<oneshot::Sender<Result<DetachedConnection, Error>>>>,
    pub(crate) wake: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConnShared {
    pub(crate) fn identity(&self) -> Option<String> {
        lock(&self.identity).clone()
    }

    pub(crate) fn set_identity(&self, identity: Option<String>) {
        *lock(&self.identity) = identity;
    }

    pub(crate) fn is_established(&self) -> bool {
        self.established.load(Ordering::Acquire)
    }

    pub(crate) fn set_established(&self) {
        self.established.store(true, Ordering::Release);
    }

    pub(crate) fn detach_requested(&self) -> bool {
        lock(&self.detach).is_some()
    }

    pub(crate) fn take_detach_request(
        &self,
    ) -> Option<oneshot::Sender<Result<DetachedConnection, Error>>> {
        lock(&self.detach).take()
    }

    pub(crate) fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            address: self.address.clone(),
            identity: self.identity(),
            established: self.is_established(),
        }
    }
}

/// The shutdown in progress, as connection tasks see it.
#[derive(Clone)]
pub(crate) struct ShutdownSignal {
    /// What to send every connection, if anything.
    pub(crate) details: Option<AveException>,
    /// When connection tasks must be done.
    pub(crate) deadline: Instant,
}

/// What the event loop is asked to do.
pub(crate) enum Command {
    Stop,
    Shutdown(Option<AveException>),
    Exit(AveException),
    StopListening(oneshot::Sender<()>),
    Adopt(Adoption),
    TakeListener(oneshot::Sender<Option<TcpListener>>),
    SetListener(TcpListener, oneshot::Sender<Result<(), Error>>),
    Replaced,
}

/// A connection to serve that did not come from the listener.
pub(crate) struct Adoption {
    conn: Arc<ConnShared>,
    source: AdoptionSource,
    phase: Phase,
}

enum AdoptionSource {
    Tokio(Connection),
    Parts(ConnectionParts),
}

/// The settings of a `Control`.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) digest: DigestPolicy,
    pub(crate) interval: Option<Duration>,
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) linger: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) home: Option<std::path::PathBuf>,
}

/// What a `Control`, its handles, its connection tasks and its method contexts share.
pub(crate) struct Shared {
    pub(crate) service: Service,
    pub(crate) keys: Keys,
    pub(crate) config: Config,
    conns: Mutex<HashMap<ConnectionId, Arc<ConnShared>>>,
    next_id: AtomicU64,
    commands: mpsc::UnboundedSender<Command>,
    pub(crate) shutdown: watch::Sender<Option<ShutdownSignal>>,
    pub(crate) activity: AtomicU64,
    local_addr: Mutex<Option<SocketAddr>>,
    listening: AtomicBool,
    /// The deferred joins ([`ControlHandle::join_later`]).
    pub(crate) reaper: crate::defjoin::Reaper,
    /// Signal handling installed before [`Control::run`] (by a child serving the Control).
    pub(crate) signals: Mutex<Option<crate::signals::ControlSignals>>,
}

impl Shared {
    pub(crate) fn send(&self, command: Command) {
        // The receiver lives as long as the event loop; after it, commands have nothing to do.
        let _ = self.commands.send(command);
    }

    pub(crate) fn new_conn(&self, address: Address, identity: Option<String>) -> Arc<ConnShared> {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let conn = Arc::new(ConnShared {
            id,
            address,
            identity: Mutex::new(identity),
            established: AtomicBool::new(false),
            detach: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
        });
        lock(&self.conns).insert(id, conn.clone());
        conn
    }

    pub(crate) fn forget(&self, id: ConnectionId) {
        lock(&self.conns).remove(&id);
    }

    fn conn(&self, id: ConnectionId) -> Result<Arc<ConnShared>, Error> {
        lock(&self.conns)
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no such connection: {id}")))
    }
}

/// Declares a [`Control`]; see [`Control::builder`].
#[derive(Debug)]
pub struct ControlBuilder {
    service: Service,
    listen: Listen,
    keys: Keys,
    config: Config,
}

#[derive(Debug)]
enum Listen {
    Addr(SocketAddr),
    Listener(TcpListener),
    Nothing,
}

impl ControlBuilder {
    /// Listens on `addr` (default `127.0.0.1:0`, a free port on the loopback interface).
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> ControlBuilder {
        self.listen = Listen::Addr(addr);
        self
    }

    /// Serves on an existing listening socket, such as one from
    /// [`find_free_port`](crate::find_free_port) or one inherited from another process.
    #[must_use]
    pub fn listener(mut self, listener: TcpListener) -> ControlBuilder {
        self.listen = Listen::Listener(listener);
        self
    }

    /// Serves on an existing listening socket given as a descriptor.
    #[must_use]
    pub fn listener_fd(self, fd: OwnedFd) -> ControlBuilder {
        self.listener(TcpListener::from(fd))
    }

    /// Serves no listener at all: only connections added with
    /// [`ControlHandle::add_connection`] or adopted.
    #[must_use]
    pub fn no_listener(mut self) -> ControlBuilder {
        self.listen = Listen::Nothing;
        self
    }

    /// The primary key (`None`: no primary key). An empty key is a key that matches
    /// clients without one, yet does not pass `auth`.
    #[must_use]
    pub fn authkey(mut self, key: Option<&str>) -> ControlBuilder {
        let mut keys = Keys::new(key);
        for (name, key) in self.keys.accounts() {
            keys.set_account(name, key);
        }
        self.keys = keys;
        self
    }

    /// An account and its key (the original's `alt_keys`); `None` for an account without
    /// a key (which opens `preauth` methods naming it, see
    /// [`Keys::preauth_allows`](crate::handshake::Keys::preauth_allows)).
    #[must_use]
    pub fn account(mut self, name: &str, key: Option<&str>) -> ControlBuilder {
        self.keys.set_account(name, key);
        self
    }

    /// Replaces the whole key table.
    #[must_use]
    pub fn keys(mut self, keys: Keys) -> ControlBuilder {
        self.keys = keys;
        self
    }

    /// Which handshake digests to offer and accept (default: MD5 only, the original's
    /// handshake byte for byte).
    #[must_use]
    pub fn digest(mut self, policy: DigestPolicy) -> ControlBuilder {
        self.config.digest = policy;
        self
    }

    /// Calls the idle hook after this much quiet time (`None`, the default: never).
    /// Intervals below [`MIN_INTERVAL`] are raised to it.
    #[must_use]
    pub fn interval(mut self, interval: Option<Duration>) -> ControlBuilder {
        self.config.interval = interval.map(|i| i.max(MIN_INTERVAL));
        self
    }

    /// The largest request frame accepted (default 64 MiB). A larger header gets the
    /// original's "invalid RPC" answer and a disconnect.
    #[must_use]
    pub fn max_frame(mut self, max: usize) -> ControlBuilder {
        self.config.max_frame = max;
        self
    }

    /// How long a client has to answer the challenge (default 30 s); then the connection
    /// is closed.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> ControlBuilder {
        self.config.handshake_timeout = timeout;
        self
    }

    /// At most this many connections at once (default 16,384). Beyond it the server stops
    /// accepting (new clients wait in the kernel's backlog) until a connection ends.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> ControlBuilder {
        self.config.max_connections = max.max(1);
        self
    }

    /// The bound on a shutdown (default 1 s): calls in progress may finish and the last
    /// replies and exit messages are delivered within it; then everything is closed.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> ControlBuilder {
        self.config.linger = linger;
        self
    }

    /// Shuts down cleanly on SIGTERM and writes a hickup dump on SIGUSR1
    /// ([`ControlHandle::hickup`]) (default: off). The handlers are installed for the
    /// whole process when [`Control::run`] starts. A `Control` served by a child
    /// ([`Control::into_process`]) always handles both.
    #[must_use]
    pub fn handle_signals(mut self, on: bool) -> ControlBuilder {
        self.config.handle_signals = on;
        self
    }

    /// The AVE home directory: hickup dumps go to `<home>/.ave/hickup/` (default: `HOME`).
    #[must_use]
    pub fn home(mut self, home: impl Into<std::path::PathBuf>) -> ControlBuilder {
        self.config.home = Some(home.into());
        self
    }

    /// The process name of the service, for logs (default `ave-<service name>`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> ControlBuilder {
        self.config.name = name.into();
        self
    }

    /// Binds the listener (if an address was given) and makes the `Control`. No runtime is
    /// needed until [`Control::run`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the address cannot be bound or the socket is not usable.
    pub fn build(self) -> Result<Control, Error> {
        let listener = match self.listen {
            Listen::Addr(addr) => Some(crate::connection::bind(addr)?),
            Listen::Listener(l) => Some(l),
            Listen::Nothing => None,
        };
        let local_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(|e| Error::io("get the listening address", e))?),
            None => None,
        };
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            service: self.service,
            keys: self.keys,
            config: self.config,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            commands,
            shutdown,
            activity: AtomicU64::new(0),
            local_addr: Mutex::new(local_addr),
            listening: AtomicBool::new(listener.is_some()),
            reaper: crate::defjoin::Reaper::new(),
            signals: Mutex::new(None),
        });
        Ok(Control { shared, listener, commands: commands_rx })
    }
}

/// The RPC server: a listening socket, a service, and the event loop that serves them.
///
/// ```no_run
/// use ave_network::{Control, Service, params};
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
    shared: Arc<Shared>,
    listener: Option<TcpListener>,
    commands: mpsc::UnboundedReceiver<Command>,
}

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
                max_frame: DEFAULT_MAX_FRAME,
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
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
                crate::signals::ControlSignals::install()
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
                crate::signals::ControlSignals::install()
                    .map_err(|e| Error::io("install the SIGTERM and SIGUSR1 handling", e))?,
            ),
            None => None,
        };
        let mut reaper = shared.reaper.driver();
        let permits = Arc::new(Semaphore::new(shared.config.max_connections));
        let mut tasks = JoinSet::new();
        let interval = shared.config.interval;
        let mut idle_at = interval.map(|i| Instant::now() + i);
        let mut idle_seen = shared.activity.load(Ordering::Relaxed);
        let mut accept_pause: Option<Instant> = None;
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
                },
                Some(signal) = crate::signals::next(&mut signals) => match signal {
                    crate::signals::ControlSignal::Terminate => break Stopped::Signal(nix::libc::SIGTERM),
                    crate::signals::ControlSignal::Hickup => crate::hickup::on_signal(&handle),
                },
                (pid, joined) = crate::defjoin::next(&mut reaper) => {
                    crate::defjoin::joined(&handle, pid, joined);
                }
                accepted = accept(listener.as_ref(), &permits), if listener.is_some() && accept_pause.is_none() => {
                    match accepted {
                        Ok((stream, peer, permit)) => {
                            shared.activity.fetch_add(1, Ordering::Relaxed);
                            match Connection::from_tokio(stream) {
                                Ok(mut io) => {
                                    io.set_max_frame(shared.config.max_frame);
                                    let conn = shared.new_conn(Address::from(peer), None);
                                    let task = session::Session::new(shared.clone(), conn, io, Some(permit));
                                    tasks.spawn(task.run(Phase::Greeting));
                                }
                                Err(e) => tracing::debug!(error = %crate::error::error_chain(&e), "dropping a new connection"),
                            }
                        }
                        Err(e) => {
                            // Out of descriptors or memory: wait a little instead of spinning.
                            tracing::warn!(error = %e, "accept failed; pausing for 100 ms");
                            accept_pause = Some(Instant::now() + Duration::from_millis(100));
                        }
                    }
                }
                () = sleep_until(accept_pause), if accept_pause.is_some() => {
                    accept_pause = None;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
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
        let deadline = Instant::now() + shared.config.linger;
        let details = match &reason {
            Stopped::Exit(details) => Some(details.clone()),
            Stopped::Shutdown(details) => details.clone(),
            Stopped::Stop | Stopped::Signal(_) | Stopped::Replaced => None,
        };
        tracing::info!(service = %shared.config.name, reason = ?reason, "shutting down");
        shared.shutdown.send_replace(Some(ShutdownSignal { details, deadline }));
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
                    let _ =
                        reply.send(Err(Error::Invalid("the server is shutting down".to_owned())));
                }
                Command::Stop | Command::Shutdown(_) | Command::Exit(_) | Command::Replaced => {}
            }
        }
        let grace = deadline + Duration::from_millis(500);
        let _ =
            tokio::time::timeout_at(grace, async { while tasks.join_next().await.is_some() {} })
                .await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
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
            io.set_max_frame(shared.config.max_frame);
            let task = session::Session::new(shared.clone(), adoption.conn, io, permit);
            tasks.spawn(task.run(adoption.phase));
        }
        Err(e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "cannot adopt a connection");
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
    permits: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let Some(listener) = listener else { return std::future::pending().await };
    let permit = permits.clone().acquire_owned().await.map_err(std::io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

/// Controls a running (or not yet running) [`Control`] from anywhere: its methods, its
/// hooks, other tasks. Cheap to clone.
#[derive(Clone)]
pub struct ControlHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ControlHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlHandle").field("service", &self.shared.service.name()).finish()
    }
}

impl ControlHandle {
    /// Stops the server: the event loop ends and the shutdown runs with no exit message.
    /// A method that calls this still gets its reply delivered.
    pub fn stop(&self) {
        self.shared.send(Command::Stop);
    }

    /// Shuts the server down, sending `details` (an `Exit`, typically) to every
    /// connection first, as the original's `shutdown(details)`.
    pub fn shutdown(&self, details: Option<AveException>) {
        self.shared.send(Command::Shutdown(details));
    }

    /// Closes the listener: new connects are refused, existing connections are served on.
    /// Returns once the listener is closed (or the server has stopped).
    pub async fn stop_listening(&self) {
        let (ack, done) = oneshot::channel();
        self.shared.send(Command::StopListening(ack));
        let _ = done.await;
    }

    /// Takes the listener out of the server, open: new connects wait in the kernel's
    /// backlog until some server accepts on it again (this one after
    /// [`ControlHandle::set_listener`], or another process it was handed to). `None` if
    /// there was no listener or the server has stopped.
    pub async fn take_listener(&self) -> Option<TcpListener> {
        let (reply, taken) = oneshot::channel();
        self.shared.send(Command::TakeListener(reply));
        taken.await.ok().flatten()
    }

    /// Serves on `listener` from now on, instead of the current listener if any (which is
    /// closed).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be registered with the runtime;
    /// [`Error::Invalid`] if the server has stopped.
    pub async fn set_listener(&self, listener: TcpListener) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.shared.send(Command::SetListener(listener, reply));
        done.await.map_err(|_| Error::Invalid("the server has stopped".to_owned()))?
    }

    /// Ends the event loop with [`Stopped::Replaced`]: a successor serves every
    /// connection now.
    pub(crate) fn replaced(&self) {
        self.shared.send(Command::Replaced);
    }

    /// Whether the listener is open.
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }

    /// Whether the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.borrow().is_some()
    }

    /// The listening address, if there is one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.shared.local_addr)
    }

    /// The key table.
    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// The service being served.
    pub fn service(&self) -> &Service {
        &self.shared.service
    }

    /// The server's name (`ave-<service>` unless set).
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Every connection, in order of arrival.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let mut all: Vec<ConnectionInfo> =
            lock(&self.shared.conns).values().map(|c| c.info()).collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// Serves an open connection as an established one, as the original's
    /// `add_connection(conn, key)`: frames from the peer are taken as requests, and the
    /// `lost_connection` hook runs when it ends. Typically the connection of a
    /// `RemoteControl` ([`RemoteControl::into_connection`](crate::RemoteControl::into_connection)),
    /// to learn when the peer goes away. `address` defaults to the peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the server has stopped.
    pub fn add_connection(
        &self,
        conn: Connection,
        address: Option<Address>,
        identity: Option<String>,
    ) -> Result<ConnectionId, Error> {
        let address = match address {
            Some(a) => a,
            None => conn.peer_addr().map(Address::from).unwrap_or_else(|_| Address::new("", 0)),
        };
        self.adopt(AdoptionSource::Tokio(conn), address, identity, Phase::Established)
    }

    /// Serves a connection detached from this or another `Control` (possibly in another
    /// process), from exactly where it was: mid-handshake or established, with its
    /// identity, its buffered input and its unsent output.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the server has stopped.
    pub fn adopt_connection(&self, detached: DetachedConnection) -> Result<ConnectionId, Error> {
        let phase = match detached.phase {
            ConnectionPhase::Challenged { challenge } => Phase::Challenged(challenge),
            ConnectionPhase::Established => Phase::Established,
        };
        self.adopt(
            AdoptionSource::Parts(detached.parts),
            detached.address,
            detached.identity,
            phase,
        )
    }

    fn adopt(
        &self,
        source: AdoptionSource,
        address: Address,
        identity: Option<String>,
        phase: Phase,
    ) -> Result<ConnectionId, Error> {
        if self.is_shutting_down() {
            return Err(Error::Invalid("the server is shutting down".to_owned()));
        }
        let conn = self.shared.new_conn(address, identity);
        if matches!(phase, Phase::Established) {
            conn.set_established();
        }
        let id = conn.id;
        self.shared.send(Command::Adopt(Adoption { conn, source, phase }));
        Ok(id)
    }

    /// Takes a connection out of the server at the next frame boundary (after the call in
    /// progress, if any, is answered) and returns its state; the `lost_connection` hook
    /// does not run. Drop the result to close the connection, or give it to
    /// [`ControlHandle::adopt_connection`].
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if there is no such connection or it ended first.
    pub async fn remove_connection(&self, id: ConnectionId) -> Result<DetachedConnection, Error> {
        let conn = self.shared.conn(id)?;
        let (reply, result) = oneshot::channel();
        *lock(&conn.detach) = Some(reply);
        conn.wake.notify_one();
        drop(conn);
        result
            .await
            .map_err(|_| Error::Invalid(format!("{id} ended before it could be removed")))?
    }

    /// Gives an established connection without an identity the key `key`, as the
    /// original's `set_connection_authkey` (the broker gives anonymous clients one).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`]: `no such connection`, `not established: ...`, or
    /// `connection already has authkey`.
    pub fn set_connection_authkey(&self, id: ConnectionId, key: &str) -> Result<(), Error> {
        let conn = self.shared.conn(id)?;
        if !conn.is_established() {
            return Err(Error::Invalid(format!("not established: {id}")));
        }
        let mut identity = lock(&conn.identity);
        if identity.is_some() {
            return Err(Error::Invalid("connection already has authkey".to_owned()));
        }
        *identity = Some(key.to_owned());
        Ok(())
    }

    /// A connection's identity.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if there is no such connection.
    pub fn get_connection_authkey(&self, id: ConnectionId) -> Result<Option<String>, Error> {
        Ok(self.shared.conn(id)?.identity())
    }
}
