//! The old side of a handover: take every connection out at a frame boundary, send them
//! with the listener, and commit or roll back.

use std::{
    net::TcpListener,
    os::{
        fd::{AsFd, BorrowedFd},
        unix::net::UnixStream,
    },
    time::{Duration, Instant},
};

use ave_exceptions::NetworkError;
use tokio::task::JoinSet;

use crate::{
    Error,
    control::{ControlHandle, DetachedConnection},
    handover::{
        HandoverOptions, PROTOCOL_VERSION, Successor,
        channel::{Channel, ConnState, Header, unexpected},
    },
};

/// Descriptors per message: below the kernel's 253 (`SCM_MAX_FD`).
const FDS_PER_MESSAGE: usize = 250;

/// Connection state bytes per message, beyond which a batch is sent early.
const BODY_PER_MESSAGE: usize = 4 * 1024 * 1024;

/// How long a peer that connects to the handover socket has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The old side of one handover. `Ok(None)`: the peer left before saying hello.
pub(crate) async fn hand_over(
    handle: &ControlHandle,
    stream: UnixStream,
    pid: u32,
    options: &HandoverOptions,
) -> Result<Option<Successor>, Error> {
    let mut channel = Channel::new(stream)?;
    // A hello has no body: a peer announcing one is refused before it is read.
    channel.set_max_body(0);
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

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::*;
    use crate::{
        connection::{Address, ConnectionParts},
        control::ConnectionPhase,
    };

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
}
