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
    control::{Control, ControlBuilder, DetachedConnection},
    handover::{
        PROTOCOL_VERSION,
        channel::{Channel, Header, check_peer, unexpected},
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
    /// As [`ControlBuilder::build`] and [`ControlHandle::adopt_connection`](crate::control::ControlHandle::adopt_connection).
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
