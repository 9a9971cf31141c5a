//! [`ControlBuilder`]: the settings of a [`Control`] and where it listens.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    os::fd::OwnedFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Duration,
};

use tokio::sync::{mpsc, watch};

use crate::control::{Config, Control, Limits, MIN_INTERVAL, Shared};
use crate::{
    Error,
    control::service::Service,
    wire::handshake::{DigestPolicy, Keys},
};

/// Declares a [`Control`]; see [`Control::builder`].
#[derive(Debug)]
pub struct ControlBuilder {
    pub(crate) service: Service,
    pub(crate) listen: Listen,
    pub(crate) keys: Keys,
    pub(crate) config: Config,
}

#[derive(Debug)]
pub(crate) enum Listen {
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
    /// [`find_free_port`](crate::connection::find_free_port) or one inherited from another process.
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
    /// [`ControlHandle::add_connection`](crate::control::ControlHandle::add_connection) or adopted.
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
    /// [`Keys::preauth_allows`](crate::wire::handshake::Keys::preauth_allows)).
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

    /// Every bound at once (see [`Limits`] and `ave::guide::limits`); the setters below
    /// change one each.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> ControlBuilder {
        self.config.limits = limits;
        self.config.limits.max_connections = limits.max_connections.max(1);
        self
    }

    /// The largest frame after the handshake, requests and replies (default 64 MiB). A
    /// larger request header gets the original's "invalid RPC" answer and a disconnect; a
    /// larger reply is replaced by an exception that says so.
    #[must_use]
    pub fn max_frame(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_frame = max;
        self
    }

    /// The largest frame before the handshake is over (default 32 bytes, the longest valid
    /// answer to the challenge); a larger one closes the connection at once.
    #[must_use]
    pub fn max_handshake_frame(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_handshake_frame = max;
        self
    }

    /// How long a client has to answer the challenge (default 30 s); then the connection
    /// is closed.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> ControlBuilder {
        self.config.limits.handshake_timeout = timeout;
        self
    }

    /// At most this many connections at once (default 16,384). At the cap (or when the
    /// process runs out of descriptors) the longest-idle connection without an identity is
    /// closed to make room; if every connection has an identity, new clients wait in the
    /// kernel's backlog until one ends.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_connections = max.max(1);
        self
    }

    /// How long a replaced instance may take to finish the calls in flight that it kept
    /// (default 30 s, [`Limits::drain`](crate::control::Limits::drain)); a call still
    /// running then is answered with an `Exit` exception.
    #[must_use]
    pub fn drain(mut self, drain: Duration) -> ControlBuilder {
        self.config.limits.drain = drain;
        self
    }

    /// How many bytes of a malformed request its error reply echoes (default 256).
    #[must_use]
    pub fn max_echo(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_echo = max;
        self
    }

    /// Unsent reply bytes one connection may hold before its next request waits for the
    /// client to read (default 1 MiB).
    #[must_use]
    pub fn max_connection_output(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_connection_output = max;
        self
    }

    /// Unsent reply bytes all connections may hold together (default 256 MiB); beyond it
    /// replies larger than 4 KiB are replaced by an exception that says so.
    #[must_use]
    pub fn max_total_output(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_total_output = max;
        self
    }

    /// The deepest structure a method builds for a client (default 1000); methods read it
    /// with [`ControlHandle::limits`](crate::control::ControlHandle::limits).
    #[must_use]
    pub fn max_depth(mut self, max: u32) -> ControlBuilder {
        self.config.limits.max_depth = max;
        self
    }

    /// The longest wait a method does for a client (default 1 hour).
    #[must_use]
    pub fn max_sleep(mut self, max: Duration) -> ControlBuilder {
        self.config.limits.max_sleep = max;
        self
    }

    /// The longest text, in bytes, a method transforms for a client (default 1 MiB).
    #[must_use]
    pub fn max_text(mut self, max: usize) -> ControlBuilder {
        self.config.limits.max_text = max;
        self
    }

    /// The bound on a shutdown (default 1 s): calls in progress may finish and the last
    /// replies and exit messages are delivered within it; then everything is closed.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> ControlBuilder {
        self.config.linger = linger;
        self
    }

    /// Shuts down cleanly on SIGTERM and SIGHUP, and writes a hickup dump on SIGUSR1
    /// ([`ControlHandle::hickup`](crate::control::ControlHandle::hickup)) (default: off). The handlers are installed for the
    /// whole process when [`Control::run`] starts. A `Control` served by a child
    /// ([`Control::into_process`]) always handles all three.
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
            buffered_output: std::sync::atomic::AtomicUsize::new(0),
            local_addr: Mutex::new(local_addr),
            listening: AtomicBool::new(listener.is_some()),
            reaper: crate::control::defjoin::Reaper::new(),
            signals: Mutex::new(None),
            epoch: std::time::Instant::now(),
        });
        Ok(Control { shared, listener, commands: commands_rx, alongside: Vec::new() })
    }
}
