//! What a `Control`, its handles, its connection tasks and its method contexts share: the
//! connection table, the settings, the command channel to the event loop, the shutdown.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
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
    pub(crate) detach: Mutex<Option<oneshot::Sender<Result<DetachedConnection, Error>>>>,
    /// Raised when the task must look up from its requests: shutdown, removal.
    pub(crate) wake: Wake,
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
        });
        lock(&self.conns).insert(id, conn.clone());
        conn
    }

    pub(crate) fn forget(&self, id: ConnectionId) {
        lock(&self.conns).remove(&id);
    }

    pub(crate) fn conn(&self, id: ConnectionId) -> Result<Arc<ConnShared>, Error> {
        lock(&self.conns).get(&id).cloned().ok_or(Error::NoSuchConnection { id: id.get() })
    }
}
