//! The old side of a handover: take every connection that is not in a call out at a frame
//! boundary, send them with the listener, and commit or roll back. The connections in a
//! call stay to finish it: the `Control` drains them once it is replaced.

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
    control::{ConnectionId, ControlHandle, DetachedConnection},
    handover::{
        HandoverOptions, PROTOCOL_VERSION, Successor,
        channel::{Channel, ConnState, Header, SuspendedChannel, check_peer, unexpected},
    },
};

/// Descriptors per message: below the kernel's 253 (`SCM_MAX_FD`).
const FDS_PER_MESSAGE: usize = 250;

/// Connection state bytes per message, beyond which a batch is sent early.
const BODY_PER_MESSAGE: usize = 4 * 1024 * 1024;

/// How long connections that are not in a call may take to reach a frame boundary.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a peer that connects to the handover socket has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// A committed handover whose connections in a call are still here: [`Drain::run`]
/// sends each to the successor when its call ends.
pub(crate) struct Drain {
    /// Out of the runtime of the handover socket: the drain runs on the `Control`'s.
    channel: Option<SuspendedChannel>,
    kept: Vec<ConnectionId>,
}

/// The old side of one handover, up to the commit. `Ok(None)`: the peer left before
/// saying hello.
pub(crate) async fn hand_over(
    handle: &ControlHandle,
    stream: UnixStream,
    pid: u32,
    options: &HandoverOptions,
) -> Result<Option<(Successor, Drain)>, Error> {
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

    // Stop accepting, then take every connection that is not in a call out at a frame
    // boundary; those in a call stay here to finish it (the drain, once committed).
    let listener = handle.take_listener().await;
    let mut held = Held { handle: handle.clone(), listener, connections: Vec::new(), done: false };
    let mut removing = JoinSet::new();
    for info in handle.connections() {
        let h = handle.clone();
        removing.spawn(async move { (info.id, h.remove_idle_connection(info.id).await) });
    }
    let mut kept = Vec::new();
    let deadline = tokio::time::Instant::now() + DETACH_TIMEOUT;
    while !removing.is_empty() {
        match tokio::time::timeout_at(deadline, removing.join_next()).await {
            Ok(Some(Ok((_, Ok(Some(detached)))))) => held.connections.push(detached),
            Ok(Some(Ok((id, Ok(None))))) => kept.push(id),
            // The connection ended on its own meanwhile.
            Ok(Some(Ok((_, Err(_))))) => {}
            Ok(Some(Err(e))) => tracing::error!(error = %e, "a connection removal panicked"),
            Ok(None) => break,
            Err(_) => {
                // Only a task stuck outside its requests gets here.
                let stuck = removing.len();
                held.adopt_stragglers(removing);
                let reason = format!(
                    "{stuck} connection(s) did not reach a frame boundary within {DETACH_TIMEOUT:?}"
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
            kept: kept.len(),
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
    let successor = Successor {
        pid,
        connections: count,
        kept: kept.len(),
        listener: has_listener,
        elapsed: started.elapsed(),
    };
    let channel = match channel.suspend() {
        Ok(channel) => Some(channel),
        Err(e) => {
            tracing::warn!(error = %ave_exceptions::error_chain(&e), "cannot send the drained connections");
            None
        }
    };
    Ok(Some((successor, Drain { channel, kept })))
}

impl Drain {
    /// Sends each kept connection to the successor as its call ends, within `drain`;
    /// then says the drain is over and ends the `Control` (which cuts the calls still
    /// running, answering them with an `Exit`).
    pub(crate) async fn run(self, handle: ControlHandle, drain: Duration) {
        let Drain { channel, kept } = self;
        if kept.is_empty() {
            // Nothing follows: the successor has closed its side already.
            handle.replaced();
            return;
        }
        let channel = channel.and_then(|c| match Channel::resume(c) {
            Ok(channel) => Some(channel),
            Err(e) => {
                tracing::warn!(error = %ave_exceptions::error_chain(&e), "cannot send the drained connections");
                None
            }
        });
        let mut successor_gone = channel.is_none();
        let count = kept.len();
        let mut deadline = tokio::time::Instant::now() + drain;
        let mut removing = JoinSet::new();
        for id in kept {
            let h = handle.clone();
            removing.spawn(async move { h.remove_connection(id).await });
        }
        let mut moved = 0;
        let mut cut = false;
        loop {
            let joined = match tokio::time::timeout_at(deadline, removing.join_next()).await {
                Ok(Some(joined)) => joined,
                Ok(None) => break,
                Err(_) if cut => break,
                Err(_) => {
                    // The drain time is over: the calls still running are cut (and answered
                    // with an Exit); a call that ended just now still moves.
                    cut = true;
                    tracing::info!(still_in_a_call = removing.len(), "drain time over");
                    handle.replaced();
                    deadline = tokio::time::Instant::now() + handle.shared.config.linger;
                    continue;
                }
            };
            // A connection that ended meanwhile (or was cut) has nothing to move.
            let Ok(Ok(detached)) = joined else { continue };
            let Some(channel) = channel.as_ref().filter(|_| !successor_gone) else { continue };
            let mut body = Vec::new();
            let items = vec![ConnState::of(&detached, &mut body)];
            let fds = [detached.parts.stream.as_fd()];
            match channel.send(&Header::Connections { items }, &body, &fds).await {
                Ok(()) => moved += 1,
                Err(e) => {
                    // Its call was answered; the connection closes here.
                    tracing::warn!(error = %ave_exceptions::error_chain(&e), "the successor left during the drain");
                    successor_gone = true;
                }
            }
        }
        tracing::info!(kept = count, moved, "drain over");
        if let Some(channel) = channel.as_ref().filter(|_| !successor_gone) {
            let _ = channel.send(&Header::Drained { connections: moved }, &[], &[]).await;
        }
        if !cut {
            handle.replaced();
        }
    }
}

/// Answers a peer of the handover socket with a refusal (after its hello, so that the
/// close does not destroy the answer), as when another handover is in progress.
pub(crate) async fn refuse(stream: tokio::net::UnixStream, reason: &'static str) {
    let pid = match check_peer(&stream) {
        Ok(pid) => pid,
        Err(e) => {
            tracing::warn!(error = %ave_exceptions::error_chain(&e), "handover peer refused");
            return;
        }
    };
    let Ok(stream) = stream.into_std() else { return };
    let Ok(mut channel) = Channel::new(stream) else { return };
    channel.set_max_body(0);
    if let Ok(Ok(_)) = tokio::time::timeout(HELLO_TIMEOUT, channel.recv()).await {
        tracing::info!(pid, reason, "a successor is refused");
        let refusal = Header::Refused { reason: reason.to_owned() };
        let _ = channel.send(&refusal, &[], &[]).await;
    }
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
    /// Rolls back now, and re-adopts the stragglers as they come.
    fn adopt_stragglers(
        &mut self,
        mut removing: JoinSet<(ConnectionId, Result<Option<DetachedConnection>, Error>)>,
    ) {
        self.roll_back();
        let handle = self.handle.clone();
        tokio::spawn(async move {
            while let Some(joined) = removing.join_next().await {
                if let Ok((_, Ok(Some(detached)))) = joined {
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
