//! [`ControlHandle`]: what methods, hooks and other tasks use to control a running
//! [`Control`](crate::control::Control).

use std::{
    fmt,
    net::{SocketAddr, TcpListener},
    sync::{Arc, atomic::Ordering},
};

use ave_exceptions::AveException;
use tokio::sync::oneshot;

use crate::control::{
    Adoption, AdoptionSource, Command, ConnectionId, ConnectionInfo, ConnectionPhase,
    DetachedConnection, Shared, lock,
};
use crate::{
    Error,
    connection::{Address, Connection},
    control::service::Service,
    control::session::Phase,
    wire::handshake::Keys,
};

/// Controls a running (or not yet running) [`Control`](crate::control::Control) from anywhere: its methods, its
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
    /// [`Error::ShuttingDown`] if the server is shutting down or has stopped.
    pub async fn set_listener(&self, listener: TcpListener) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.shared.send(Command::SetListener(listener, reply));
        done.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Ends the event loop with [`Stopped::Replaced`](crate::control::Stopped::Replaced): a successor serves every
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

    /// The bounds the server enforces ([`ControlBuilder::limits`](crate::control::ControlBuilder::limits)):
    /// methods that do work sized by a client read theirs here.
    pub fn limits(&self) -> &crate::control::Limits {
        &self.shared.config.limits
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
    /// `RemoteControl` ([`RemoteControl::into_connection`](crate::client::RemoteControl::into_connection)),
    /// to learn when the peer goes away. `address` defaults to the peer's address.
    ///
    /// # Errors
    ///
    /// [`Error::ShuttingDown`] if the server is shutting down or has stopped.
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
    /// [`Error::ShuttingDown`] if the server is shutting down or has stopped.
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
            return Err(Error::ShuttingDown);
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
    /// [`Error::NoSuchConnection`] if there is no such connection or it ended first.
    pub async fn remove_connection(&self, id: ConnectionId) -> Result<DetachedConnection, Error> {
        match self.detach(id, false).await? {
            Some(detached) => Ok(detached),
            None => Err(Error::NoSuchConnection { id: id.get() }),
        }
    }

    /// Runs `task` beside the event loop, on the `Control`'s runtime, until it has stopped
    /// (dropped if it is stopping already).
    pub(crate) fn run_alongside(&self, task: crate::control::Alongside) {
        self.shared.send(Command::Alongside(task));
    }

    /// Takes a connection out at once if it is not in a call: `Ok(None)` if a call is
    /// running on it (it stays, and its call is answered here). For a handover, which
    /// leaves the connections in a call to drain.
    pub(crate) async fn remove_idle_connection(
        &self,
        id: ConnectionId,
    ) -> Result<Option<DetachedConnection>, Error> {
        self.detach(id, true).await
    }

    /// Asks a connection's task to detach it; `Ok(None)` if `unless_busy` and it is in a
    /// call.
    async fn detach(
        &self,
        id: ConnectionId,
        unless_busy: bool,
    ) -> Result<Option<DetachedConnection>, Error> {
        use crate::control::shared::{DetachRequest, Detached};
        let conn = self.shared.conn(id)?;
        let (reply, result) = oneshot::channel();
        *lock(&conn.detach) = Some(DetachRequest { reply, unless_busy });
        conn.wake.raise();
        // A task in a call looks at its doorbell only when the call ends: withdraw the
        // request. If the task took it meanwhile, it answers.
        if unless_busy && conn.is_busy_after_raise() && lock(&conn.detach).take().is_some() {
            return Ok(None);
        }
        drop(conn);
        match result.await {
            Ok(Ok(Detached::Done(detached))) => Ok(Some(detached)),
            Ok(Ok(Detached::InCall)) => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::NoSuchConnection { id: id.get() }),
        }
    }

    /// Gives an established connection without an identity the key `key`, as the
    /// original's `set_connection_authkey` (the broker gives anonymous clients one).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchConnection`]; [`Error::NotEstablished`] (`not established: ...`)
    /// before the handshake is over; [`Error::AlreadyAuthenticated`] (`connection already
    /// has authkey`) if it has a key.
    pub fn set_connection_authkey(&self, id: ConnectionId, key: &str) -> Result<(), Error> {
        let conn = self.shared.conn(id)?;
        if !conn.is_established() {
            return Err(Error::NotEstablished { id: id.get() });
        }
        let mut identity = lock(&conn.identity);
        if identity.is_some() {
            return Err(Error::AlreadyAuthenticated { id: id.get() });
        }
        *identity = Some(Arc::from(key));
        Ok(())
    }

    /// A connection's identity.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchConnection`] if there is no such connection.
    pub fn get_connection_authkey(&self, id: ConnectionId) -> Result<Option<String>, Error> {
        Ok(self.shared.conn(id)?.identity())
    }
}
