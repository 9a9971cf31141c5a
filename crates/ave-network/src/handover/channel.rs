//! The handover conversation: its messages, each connection's state on the wire, and the
//! framed channel over a Unix stream socket that carries them with their descriptors.

use std::{
    collections::VecDeque,
    net::TcpStream,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::net::UnixStream,
    },
};

use serde::{Deserialize, Serialize};

use crate::{
    Error,
    connection::{Address, ConnectionParts},
    control::{ConnectionPhase, DetachedConnection},
    fdtx::{self, AsyncFdTx},
};

/// The largest JSON header accepted.
const MAX_HEADER: usize = 16 * 1024 * 1024;

/// The largest body accepted: the state of the connections of one message (about 4 MiB
/// in a batch, more for one connection holding a large frame).
pub const MAX_BODY: usize = 1024 * 1024 * 1024;

/// Takes the next complete message out of `input` (and its descriptors out of `fds`):
/// `None` while it is incomplete. Every length is checked before it is used, so no input
/// can make it panic or wait for more than `max_body` bytes of body.
pub(crate) fn parse_message(
    input: &mut Vec<u8>,
    fds: &mut VecDeque<OwnedFd>,
    max_body: usize,
) -> Result<Option<Frame>, Error> {
    let Some((lengths, _)) = input.split_first_chunk::<PREFIX>() else { return Ok(None) };
    let (header_len, body_len) = lengths.split_at(4);
    let header_len = u32::from_be_bytes(header_len.try_into().unwrap_or_default());
    let body_len = u64::from_be_bytes(body_len.try_into().unwrap_or_default());
    let header_len = usize::try_from(header_len)
        .ok()
        .filter(|n| *n <= MAX_HEADER)
        .ok_or_else(|| Error::Protocol(format!("handover header of {header_len} bytes")))?;
    let body_len = usize::try_from(body_len)
        .ok()
        .filter(|n| *n <= max_body)
        .ok_or_else(|| Error::Protocol(format!("handover body of {body_len} bytes")))?;
    let header_end = PREFIX + header_len;
    let Some(total) = header_end.checked_add(body_len) else {
        return Err(Error::Protocol(format!("handover body of {body_len} bytes")));
    };
    let (Some(header), Some(body)) = (input.get(PREFIX..header_end), input.get(header_end..total))
    else {
        return Ok(None);
    };
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| Error::Protocol(format!("invalid handover message: {e}")))?;
    let body = body.to_vec();
    input.drain(..total);
    let wanted = header.fds();
    if fds.len() < wanted {
        return Err(Error::Protocol(format!(
            "a {} message announced {wanted} descriptors; {} arrived",
            header.name(),
            fds.len()
        )));
    }
    let fds = fds.drain(..wanted).collect();
    Ok(Some(Frame { header, body, fds }))
}

/// Feeds bytes to the message parser as a peer of the handover socket could send them,
/// in pieces, with no descriptors; returns how many messages were complete. For the fuzz
/// target of the parser; not a stable API.
#[doc(hidden)]
pub fn fuzz_parse(pieces: &[&[u8]], max_body: usize) -> Result<usize, Error> {
    let mut input = Vec::new();
    let mut fds = VecDeque::new();
    let mut messages = 0;
    for piece in pieces {
        input.extend_from_slice(piece);
        while let Some(frame) = parse_message(&mut input, &mut fds, max_body)? {
            assert!(frame.body.len() <= max_body);
            messages += 1;
        }
        // What is kept is never more than one message's prefix, header and bounded body.
        assert!(input.len() <= PREFIX + MAX_HEADER + max_body + piece.len());
    }
    Ok(messages)
}

/// The state of one connection on the wire; its bytes follow the header in the body, in
/// the order challenge, input, output.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ConnState {
    host: String,
    port: u16,
    identity: Option<String>,
    /// The challenge's length if the handshake is in progress; `None` once established.
    challenge: Option<usize>,
    input: usize,
    output: usize,
}

impl ConnState {
    pub(crate) fn of(c: &DetachedConnection, body: &mut Vec<u8>) -> ConnState {
        let challenge = match &c.phase {
            ConnectionPhase::Challenged { challenge } => {
                body.extend_from_slice(challenge);
                Some(challenge.len())
            }
            ConnectionPhase::Established => None,
        };
        body.extend_from_slice(&c.parts.input);
        body.extend_from_slice(&c.parts.output);
        ConnState {
            host: c.address.host.clone(),
            port: c.address.port,
            identity: c.identity.clone(),
            challenge,
            input: c.parts.input.len(),
            output: c.parts.output.len(),
        }
    }

    pub(crate) fn rebuild(
        self,
        fd: OwnedFd,
        body: &mut &[u8],
    ) -> Result<DetachedConnection, Error> {
        let mut take = |n: usize| -> Result<Vec<u8>, Error> {
            if body.len() < n {
                return Err(Error::Protocol("connection state shorter than announced".to_owned()));
            }
            let (head, rest) = body.split_at(n);
            *body = rest;
            Ok(head.to_vec())
        };
        let phase = match self.challenge {
            Some(n) => ConnectionPhase::Challenged { challenge: take(n)? },
            None => ConnectionPhase::Established,
        };
        let input = take(self.input)?;
        let output = take(self.output)?;
        Ok(DetachedConnection {
            parts: ConnectionParts { stream: TcpStream::from(fd), input, output },
            address: Address::new(self.host, self.port),
            identity: self.identity,
            phase,
        })
    }
}

/// The messages of the handover conversation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Header {
    /// Successor → old: who is asking.
    Hello { version: u32, pid: u32 },
    /// Old → successor, with the listener's descriptor if `listener`; `kept` connections
    /// in a call follow after the commit, as their calls end.
    Begin {
        version: u32,
        pid: u32,
        service: String,
        listener: bool,
        connections: usize,
        #[serde(default)]
        kept: usize,
    },
    /// Old → successor, with one descriptor per item.
    Connections { items: Vec<ConnState> },
    /// Old → successor: everything is sent.
    End { connections: usize },
    /// Old → successor: no handover now, and why.
    Refused { reason: String },
    /// Successor → old: everything received; nothing served yet.
    Ready,
    /// Old → successor: everything is yours.
    Committed,
    /// Old → successor, after `Committed` and the `Connections` of the calls that ended
    /// meanwhile: the drain is over; `connections` were sent since the commit.
    Drained { connections: usize },
}

impl Header {
    /// The number of descriptors that travel with this message.
    pub(crate) fn fds(&self) -> usize {
        match self {
            Header::Begin { listener, .. } => usize::from(*listener),
            Header::Connections { items } => items.len(),
            _ => 0,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Header::Hello { .. } => "hello",
            Header::Begin { .. } => "begin",
            Header::Connections { .. } => "connections",
            Header::End { .. } => "end",
            Header::Refused { .. } => "refused",
            Header::Ready => "ready",
            Header::Committed => "committed",
            Header::Drained { .. } => "drained",
        }
    }
}

pub(crate) fn unexpected(wanted: &str, got: &Header) -> Error {
    match got {
        Header::Refused { reason } => {
            Error::Protocol(format!("the other instance gave up the handover: {reason}"))
        }
        other => Error::Protocol(format!("expected a {wanted} message, got {}", other.name())),
    }
}

/// One message of the conversation.
pub(crate) struct Frame {
    pub(crate) header: Header,
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// The handover conversation over a Unix stream socket: each message is a 4-byte
/// big-endian header length, an 8-byte body length, the JSON header and the body, sent as
/// one [`FdTx`](crate::fdtx::FdTx) message with its descriptors. Descriptors arrive no
/// later than the first byte of their message, so they are queued in order and each
/// complete message takes as many as its header announces.
pub(crate) struct Channel {
    tx: AsyncFdTx,
    input: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    max_body: usize,
}

const PREFIX: usize = 12;

/// A [`Channel`] between runtimes.
pub(crate) struct SuspendedChannel {
    stream: UnixStream,
    input: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    max_body: usize,
}

impl Channel {
    pub(crate) fn new(stream: UnixStream) -> Result<Channel, Error> {
        Ok(Channel {
            tx: AsyncFdTx::new(stream)?,
            input: Vec::new(),
            fds: VecDeque::new(),
            max_body: MAX_BODY,
        })
    }

    pub(crate) async fn send(
        &self,
        header: &Header,
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), Error> {
        debug_assert_eq!(header.fds(), fds.len());
        let json = serde_json::to_vec(header).map_err(Error::Encode)?;
        let mut message = Vec::with_capacity(PREFIX + json.len() + body.len());
        message.extend_from_slice(&(json.len() as u32).to_be_bytes());
        message.extend_from_slice(&(body.len() as u64).to_be_bytes());
        message.extend_from_slice(&json);
        message.extend_from_slice(body);
        self.tx.put(&message, fds).await
    }

    pub(crate) async fn recv(&mut self) -> Result<Frame, Error> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(frame);
            }
            let (n, fds) = self.tx.get_into(&mut chunk, fdtx::MAX_FDS).await?;
            self.input.extend_from_slice(&chunk[..n]);
            self.fds.extend(fds);
        }
    }

    fn parse(&mut self) -> Result<Option<Frame>, Error> {
        parse_message(&mut self.input, &mut self.fds, self.max_body)
    }

    /// The channel out of the runtime it was registered with, with what it has received
    /// and not parsed yet; [`Channel::resume`] registers it with the current one.
    pub(crate) fn suspend(self) -> Result<SuspendedChannel, Error> {
        Ok(SuspendedChannel {
            stream: self.tx.into_std()?,
            input: self.input,
            fds: self.fds,
            max_body: self.max_body,
        })
    }

    /// A suspended channel, registered with the current runtime.
    pub(crate) fn resume(suspended: SuspendedChannel) -> Result<Channel, Error> {
        let SuspendedChannel { stream, input, fds, max_body } = suspended;
        Ok(Channel { tx: AsyncFdTx::new(stream)?, input, fds, max_body })
    }

    /// Bounds the body of the messages received from now on (the hello is small).
    pub(crate) fn set_max_body(&mut self, max: usize) {
        self.max_body = max;
    }

    /// Refuses anything the peer sends from now on (its sends fail), keeping what has
    /// arrived readable.
    pub(crate) fn shutdown_read(&self) {
        let _ = socket2::SockRef::from(self.tx.stream()).shutdown(std::net::Shutdown::Read);
    }
}

/// Checks that the peer runs as this user or as root, and returns its pid.
pub(crate) fn check_peer(stream: &impl AsFd) -> Result<u32, Error> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let creds = getsockopt(stream, PeerCredentials)
        .map_err(|e| Error::io("read the peer's credentials", e.into()))?;
    let me = nix::unistd::geteuid().as_raw();
    if creds.uid() != me && creds.uid() != 0 {
        return Err(Error::ForeignPeer { pid: creds.pid(), uid: creds.uid(), expected: me });
    }
    Ok(u32::try_from(creds.pid()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_body() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let detached = DetachedConnection {
            parts: ConnectionParts {
                stream,
                input: b"partial".to_vec(),
                output: b"unsent".to_vec(),
            },
            address: Address::new("::1", 4000),
            identity: Some("admin".to_owned()),
            phase: ConnectionPhase::Challenged { challenge: b"#CHALLENGE#salt".to_vec() },
        };
        let mut body = Vec::new();
        let state = ConnState::of(&detached, &mut body);
        let json = serde_json::to_string(&state).unwrap();
        let state: ConnState = serde_json::from_str(&json).unwrap();
        let fd = OwnedFd::from(detached.parts.stream.try_clone().unwrap());
        let mut rest = body.as_slice();
        let back = state.rebuild(fd, &mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(back.parts.input, b"partial");
        assert_eq!(back.parts.output, b"unsent");
        assert_eq!(back.address, detached.address);
        assert_eq!(back.identity, detached.identity);
        assert_eq!(back.phase, detached.phase);
    }
}
