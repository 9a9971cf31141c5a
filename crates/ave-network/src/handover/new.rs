//! The new side of a handover: receive the listener and the connections, hold them
//! without serving until the old instance confirms the commit, then serve them.

use std::{
    fmt, io,
    net::{SocketAddr, TcpListener},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use ave_exceptions::NetworkError;

use crate::{
    Error,
    control::{Control, ControlBuilder, ControlHandle, DetachedConnection},
    handover::{
        PROTOCOL_VERSION,
        channel::{Channel, Header, SuspendedChannel, check_peer, unexpected},
    },
};

/// How long a successor waits for the old instance to confirm its commit. The old
/// instance confirms as soon as it reads `ready`, so this only runs out if it is stuck.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a successor has received and does not serve yet: the old instance still holds
/// its own copies and serves nothing. [`Inheritance::commit`] makes it the successor's;
/// dropping it gives everything back to the old instance.
pub struct Inheritance {
    channel: Channel,
    pid: u32,
    service: String,
    listener: Option<TcpListener>,
    connections: Vec<DetachedConnection>,
    kept: usize,
}

impl fmt::Debug for Inheritance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inheritance")
            .field("pid", &self.pid)
            .field("service", &self.service)
            .field("listener", &self.local_addr())
            .field("connections", &self.connections.len())
            .field("kept", &self.kept)
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

    /// The connections the old instance kept because a call was running on them: they
    /// follow after the commit, each once its call is answered (the drain).
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Tells the old instance this one is ready and waits for its confirmation; from then
    /// on the listener and the connections are this instance's alone.
    ///
    /// If the old instance dies instead of confirming, nobody else can serve what was
    /// received: the commit succeeds (with a warning in the log).
    ///
    /// # Errors
    ///
    /// `ConnectionClosed` or [`Error::Protocol`] if the old instance took everything back
    /// (its ready timeout ran out) and serves on; nothing was served here, and dropping
    /// the error closes this instance's copies only.
    pub async fn commit(mut self) -> Result<Inherited, Error> {
        let confirmed = match self.channel.send(&Header::Ready, &[], &[]).await {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(COMMIT_TIMEOUT, self.channel.recv()).await {
                Ok(result) => result,
                Err(_) => {
                    // Refuse a late confirmation, then look once more: a confirmation
                    // that arrived before the shutdown counts, one after it fails on the
                    // old side, which then takes everything back.
                    self.channel.shutdown_read();
                    self.channel.recv().await
                }
            },
        };
        let refusal = match confirmed {
            Ok(frame) => match frame.header {
                Header::Committed => {
                    let mut inherited = self.inherited();
                    if self.kept == 0 {
                        return Ok(inherited);
                    }
                    // Served by the `Control`, which may run on another runtime.
                    match self.channel.suspend() {
                        Ok(channel) => inherited.drained = Drained(Some((channel, self.pid))),
                        Err(e) => {
                            tracing::warn!(error = %ave_exceptions::error_chain(&e), "cannot follow the drain of the old instance")
                        }
                    }
                    return Ok(inherited);
                }
                other => unexpected("committed", &other),
            },
            Err(e) => e,
        };
        if old_instance_died(self.pid).await {
            tracing::warn!(
                pid = self.pid,
                connections = self.connections.len(),
                "the old instance died before it confirmed the handover; serving everything it sent"
            );
            return Ok(self.inherited());
        }
        Err(refusal)
    }

    fn inherited(&mut self) -> Inherited {
        Inherited {
            listener: self.listener.take(),
            connections: std::mem::take(&mut self.connections),
            drained: Drained(None),
        }
    }
}

/// How long a process whose handover channel closed may take to be seen dead: its
/// descriptors close a little before the kernel marks it a zombie.
const DEATH_GRACE: Duration = Duration::from_millis(500);

/// Whether the process `pid` has ended (gone, or a zombie), waiting up to
/// [`DEATH_GRACE`] for an exit in progress.
async fn old_instance_died(pid: u32) -> bool {
    let until = tokio::time::Instant::now() + DEATH_GRACE;
    loop {
        if !process_alive(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `pid` names a process that has not ended (neither gone nor a zombie).
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S ...`: the state follows the last parenthesis (comm may hold any byte).
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X' | 'x'))
}

/// The listener and connections of a committed handover, to serve at once.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inherited {
    /// The listening socket, if the old instance had one.
    pub listener: Option<TcpListener>,
    /// The connections, in the old instance's order.
    pub connections: Vec<DetachedConnection>,
    /// The channel on which the old instance sends the connections of the calls it
    /// drains, as they end.
    drained: Drained,
}

/// The channel of the drain and the old instance's pid, if there is a drain to follow.
struct Drained(Option<(SuspendedChannel, u32)>);

impl fmt::Debug for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Drained").field(&self.0.as_ref().map(|(_, pid)| pid)).finish()
    }
}

/// Receives the connections the old instance drains and serves each as it arrives, until
/// the old instance says the drain is over or goes away.
async fn receive_drained(channel: SuspendedChannel, pid: u32, handle: ControlHandle) {
    let mut channel = match Channel::resume(channel) {
        Ok(channel) => channel,
        Err(e) => {
            tracing::warn!(pid, error = %ave_exceptions::error_chain(&e), "cannot follow the drain of the old instance");
            return;
        }
    };
    let mut received = 0;
    loop {
        let frame = match channel.recv().await {
            Ok(frame) => frame,
            Err(e) => {
                if !e.is_closed() {
                    tracing::warn!(pid, error = %ave_exceptions::error_chain(&e), "the drain of the old instance broke off");
                }
                return;
            }
        };
        match frame.header {
            Header::Connections { items } => {
                let mut body = frame.body.as_slice();
                for (state, fd) in items.into_iter().zip(frame.fds) {
                    let adopted = state
                        .rebuild(fd, &mut body)
                        .and_then(|detached| handle.adopt_connection(detached));
                    match adopted {
                        Ok(id) => {
                            received += 1;
                            tracing::info!(pid, conn = %id, "took over a connection whose call ended");
                        }
                        Err(e) => {
                            tracing::warn!(pid, error = %ave_exceptions::error_chain(&e), "cannot serve a drained connection");
                        }
                    }
                }
            }
            Header::Drained { connections } => {
                tracing::info!(pid, received, sent = connections, "the old instance has drained");
                return;
            }
            other => {
                tracing::warn!(pid, error = %unexpected("connections", &other), "the drain of the old instance broke off");
                return;
            }
        }
    }
}

impl Inherited {
    /// Builds the `Control` that serves on: `builder` with the inherited listener (or none),
    /// every connection adopted where it was. Run it at once: while it runs, it also
    /// serves the connections the old instance drains, as their calls end.
    ///
    /// # Errors
    ///
    /// As [`ControlBuilder::build`] and [`ControlHandle::adopt_connection`](crate::control::ControlHandle::adopt_connection).
    pub fn into_control(self, builder: ControlBuilder) -> Result<Control, Error> {
        let builder = match self.listener {
            Some(l) => builder.listener(l),
            None => builder.no_listener(),
        };
        let mut control = builder.build()?;
        let handle = control.handle();
        for connection in self.connections {
            handle.adopt_connection(connection)?;
        }
        if let Drained(Some((channel, pid))) = self.drained {
            control.alongside.push(Box::pin(receive_drained(channel, pid, handle)));
        }
        Ok(control)
    }
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
        let (service, has_listener, expected, kept) = match begin.header {
            Header::Begin { version, service, listener, connections, kept, .. } => {
                if version != PROTOCOL_VERSION {
                    return Err(Error::Protocol(format!(
                        "the serving instance speaks handover version {version}, not {PROTOCOL_VERSION}"
                    )));
                }
                (service, listener, connections, kept)
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
        Ok::<_, Error>((service, listener, connections, kept))
    };
    let (service, listener, connections, kept) =
        tokio::time::timeout(timeout, receive).await.map_err(|_| {
            Error::Network(NetworkError::Timeout(
                "the handover did not complete in time".to_owned(),
            ))
        })??;
    Ok(Inheritance { channel, pid, service, listener, connections, kept })
}
