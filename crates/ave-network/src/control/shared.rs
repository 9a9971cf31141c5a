//! What a `Control`, its handles, its connection tasks and its method contexts share: the
//! connection table, the settings, the command channel to the event loop, the shutdown.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
    },
    time::Duration,
};

use ave_exceptions::AveException;
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};

use crate::control::{ConnectionId, ConnectionInfo, DetachedConnection};
use crate::{
    Error,
    connection::{Address, Connection, ConnectionParts},
    control::service::Service,
    control::session::Phase,
    control::wake::Wake,
    wire::handshake::{DigestPolicy, Keys},
};

/// The per-connection record shared between the connection's task, the table and the
/// method contexts.
pub(crate) struct ConnShared {
    pub(crate) id: ConnectionId,
    pub(crate) address: Address,
    /// Shared, so that each request reads it without copying the key.
    pub(crate) identity: Mutex<Option<Arc<str>>>,
    pub(crate) established: AtomicBool,
    pub(crate) detach: Mutex<Option<DetachRequest>>,
    /// Raised when the task must look up from its requests: shutdown, removal.
    pub(crate) wake: Wake,
    /// Whether a method call is running on the connection.
    pub(crate) busy: AtomicBool,
    /// Set (with the doorbell) to close the connection to make room for another.
    pub(crate) evicted: AtomicBool,
    /// When the connection last connected or sent a request, in microseconds since
    /// [`Shared::epoch`]: which connection without an identity is the longest idle.
    pub(crate) last_active: AtomicU64,
}

/// A request to take a connection out of its task, at a frame boundary.
pub(crate) struct DetachRequest {
    pub(crate) reply: oneshot::Sender<Result<Detached, Error>>,
    /// Give up if the connection is in a call (rather than wait for the call to end).
    pub(crate) unless_busy: bool,
}

/// What a connection task answers a [`DetachRequest`].
pub(crate) enum Detached {
    /// The connection, out of its task.
    Done(DetachedConnection),
    /// The connection is in a call and stays where it is (`unless_busy` only).
    InCall,
}

pub(crate) use crate::sync::lock;

impl ConnShared {
    pub(crate) fn identity(&self) -> Option<String> {
        lock(&self.identity).as_deref().map(str::to_owned)
    }

    /// The identity without a copy of the key.
    pub(crate) fn identity_ref(&self) -> Option<Arc<str>> {
        lock(&self.identity).clone()
    }

    pub(crate) fn set_identity(&self, identity: Option<String>) {
        *lock(&self.identity) = identity.map(Arc::from);
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

    pub(crate) fn take_detach_request(&self) -> Option<DetachRequest> {
        lock(&self.detach).take()
    }

    /// Marks the connection as in a call. A pending request to detach it unless it is
    /// busy is answered [`Detached::InCall`] here: the one who asked and this task each
    /// look at the other's flag after raising their own, so at least one sees the other.
    pub(crate) fn begin_call(&self) {
        self.busy.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.wake.is_raised() {
            let mut slot = lock(&self.detach);
            if slot.as_ref().is_some_and(|r| r.unless_busy) {
                if let Some(request) = slot.take() {
                    let _ = request.reply.send(Ok(Detached::InCall));
                }
            }
        }
    }

    /// Marks the end of the call that [`ConnShared::begin_call`] started.
    pub(crate) fn end_call(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Whether the connection is in a call, for one who has just raised its doorbell.
    pub(crate) fn is_busy_after_raise(&self) -> bool {
        fence(Ordering::SeqCst);
        self.busy.load(Ordering::Relaxed)
    }

    /// Whether the connection is to be closed to make room ([`Shared::evict_one`]).
    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Notes activity now (a request, the connect), for the choice of whom to evict.
    pub(crate) fn touch(&self, shared: &Shared) {
        self.last_active.store(shared.now_us(), Ordering::Relaxed);
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
    /// What to send every connection (or, with `cut_only`, the connections whose call
    /// the deadline cut), if anything.
    pub(crate) details: Option<AveException>,
    /// Whether `details` goes only to the connections whose call was cut (a replaced
    /// instance draining its calls).
    pub(crate) cut_only: bool,
    /// When the calls still running are cut.
    pub(crate) deadline: Instant,
    /// When connection tasks must be done delivering their last messages.
    pub(crate) close_by: Instant,
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
    /// Run a task beside the event loop, on its runtime, until the `Control` has stopped.
    Alongside(crate::control::Alongside),
}

/// A connection to serve that did not come from the listener.
pub(crate) struct Adoption {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) source: AdoptionSource,
    pub(crate) phase: Phase,
}

pub(crate) enum AdoptionSource {
    Tokio(Connection),
    Parts(ConnectionParts),
}

/// The settings of a `Control`.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) digest: DigestPolicy,
    pub(crate) interval: Option<Duration>,
    pub(crate) limits: crate::control::Limits,
    pub(crate) linger: Duration,
    pub(crate) handle_signals: bool,
    pub(crate) home: Option<std::path::PathBuf>,
}

/// What a `Control`, its handles, its connection tasks and its method contexts share.
pub(crate) struct Shared {
    pub(crate) service: Service,
    pub(crate) keys: Keys,
    pub(crate) config: Config,
    pub(crate) conns: Mutex<HashMap<ConnectionId, Arc<ConnShared>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) shutdown: watch::Sender<Option<ShutdownSignal>>,
    pub(crate) activity: AtomicU64,
    /// Reply bytes queued and not yet written, over every connection
    /// ([`Limits::max_total_output`](crate::control::Limits::max_total_output)).
    pub(crate) buffered_output: std::sync::atomic::AtomicUsize,
    pub(crate) local_addr: Mutex<Option<SocketAddr>>,
    pub(crate) listening: AtomicBool,
    /// The deferred joins ([`ControlHandle::join_later`](crate::control::ControlHandle::join_later)).
    pub(crate) reaper: crate::control::defjoin::Reaper,
    /// Signal handling installed before [`Control::run`](crate::control::Control::run) (by a child serving the Control).
    pub(crate) signals: Mutex<Option<crate::control::signals::ControlSignals>>,
    /// The origin of [`ConnShared::last_active`].
    pub(crate) epoch: std::time::Instant,
}

impl Shared {
    /// Counts a request for the idle hook, which only runs after a quiet interval; without
    /// an interval nothing reads the count, and busy connections on several threads do not
    /// contend for it.
    pub(crate) fn note_activity(&self) {
        if self.config.interval.is_some() {
            self.activity.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Microseconds since [`Shared::epoch`].
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) fn send(&self, command: Command) {
        // The receiver lives as long as the event loop; after it, commands have nothing to do.
        let _ = self.commands.send(command);
    }

    pub(crate) fn new_conn(&self, address: Address, identity: Option<String>) -> Arc<ConnShared> {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let conn = Arc::new(ConnShared {
            id,
            address,
            identity: Mutex::new(identity.map(Arc::from)),
            established: AtomicBool::new(false),
            detach: Mutex::new(None),
            wake: Wake::default(),
            busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            last_active: AtomicU64::new(self.now_us()),
        });
        lock(&self.conns).insert(id, conn.clone());
        conn
    }

    /// Closes the longest-idle connection without an identity that is not in a call, to
    /// make room for a new one; returns it, with how long it was idle, or `None` if every
    /// connection has an identity or is busy.
    pub(crate) fn evict_one(&self) -> Option<(Arc<ConnShared>, Duration)> {
        let victim = lock(&self.conns)
            .values()
            .filter(|c| {
                !c.busy.load(Ordering::Relaxed) && !c.is_evicted() && lock(&c.identity).is_none()
            })
            .min_by_key(|c| (c.last_active.load(Ordering::Relaxed), c.id))
            .cloned()?;
        victim.evicted.store(true, Ordering::Release);
        victim.wake.raise();
        let idle = self.now_us().saturating_sub(victim.last_active.load(Ordering::Relaxed));
        Some((victim, Duration::from_micros(idle)))
    }

    pub(crate) fn forget(&self, id: ConnectionId) {
        lock(&self.conns).remove(&id);
    }

    pub(crate) fn conn(&self, id: ConnectionId) -> Result<Arc<ConnShared>, Error> {
        lock(&self.conns).get(&id).cloned().ok_or(Error::NoSuchConnection { id: id.get() })
    }
}
