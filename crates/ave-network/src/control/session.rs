//! The task that serves one connection of a `Control`: the handshake, then requests one
//! at a time, then the one teardown path every ending goes through.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, atomic::Ordering},
    task::Poll,
};

use ave_exceptions::AveException;
use serde_json::{Value, json};
use tokio::{sync::OwnedSemaphorePermit, time::Instant};

use crate::{
    Error,
    connection::Connection,
    control::dispatch::{self, Prepared, Request},
    control::limits::SMALL_REPLY,
    control::service::{CatchPanic, Context, RpcResult},
    control::{
        Command, ConnShared, ConnectionInfo, ConnectionPhase, ControlHandle, DetachedConnection,
        Shared, ShutdownSignal, shared::Detached,
    },
    wire::{frame, handshake},
};

/// Where a connection task starts.
pub(crate) enum Phase {
    /// A new connection: send the challenge.
    Greeting,
    /// The challenge is sent (or queued): wait for the answer.
    Challenged(Vec<u8>),
    /// Serve requests.
    Established,
}

/// How a connection task ended.
enum End {
    /// The peer went away or broke the protocol (after the handshake).
    Lost(Option<Error>),
    /// The handshake did not complete: timeout, end of stream, garbage.
    Refused,
    /// The server is shutting down.
    Shutdown,
    /// `remove_connection` asked for the connection.
    Detach,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    conn: Arc<ConnShared>,
    io: Connection,
    shutdown: tokio::sync::watch::Receiver<Option<ShutdownSignal>>,
    phase: Phase,
    exit_sent: bool,
    /// Whether the shutdown deadline cut the call in progress.
    cut: bool,
    /// This connection's share of [`Shared::buffered_output`].
    accounted: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn: Arc<ConnShared>,
        io: Connection,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Session {
        let shutdown = shared.shutdown.subscribe();
        Session {
            shared,
            conn,
            io,
            shutdown,
            phase: Phase::Greeting,
            exit_sent: false,
            cut: false,
            accounted: 0,
            _permit: permit,
        }
    }

    pub(crate) async fn run(mut self, phase: Phase) {
        self.phase = phase;
        let end = self.drive().await;
        self.finish(end).await;
    }

    fn handle(&self) -> ControlHandle {
        ControlHandle { shared: self.shared.clone() }
    }

    fn shutting_down(&self) -> bool {
        self.shutdown.borrow().is_some()
    }

    fn shutdown_signal(&self) -> Option<ShutdownSignal> {
        self.shutdown.borrow().clone()
    }

    async fn drive(&mut self) -> End {
        if matches!(self.phase, Phase::Greeting) {
            let challenge = match handshake::new_challenge(self.shared.config.digest) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot make a challenge");
                    return End::Refused;
                }
            };
            if self.io.queue(&challenge).is_err() {
                return End::Refused;
            }
            self.phase = Phase::Challenged(challenge);
        }
        if let Phase::Challenged(challenge) = &self.phase {
            let challenge = challenge.clone();
            if let Err(end) = self.handshake(&challenge).await {
                return end;
            }
        }
        self.serve().await
    }

    /// Sends the challenge, checks the answer, sends the verdict.
    async fn handshake(&mut self, challenge: &[u8]) -> Result<(), End> {
        let limits = self.shared.config.limits;
        let deadline = Instant::now() + limits.handshake_timeout;
        // No valid answer is longer than a digest: a bigger frame closes the connection
        // before its payload is read, whatever the frame limit after the handshake.
        self.io.set_max_frame(limits.max_handshake_frame);
        let identity = loop {
            if self.shutting_down() {
                return Err(End::Shutdown);
            }
            if self.conn.detach_requested() {
                return Err(End::Detach);
            }
            if self.conn.is_evicted() {
                return Err(End::Refused);
            }
            match self.io.next_frame() {
                Ok(Some(answer)) => {
                    break self.shared.keys.verify(challenge, answer, self.shared.config.digest);
                }
                Ok(None) => {}
                Err(e) => {
                    self.invalid_rpc(&e).await;
                    return Err(End::Refused);
                }
            }
            tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return Err(End::Refused);
                    }
                }
                () = self.conn.wake.raised() => {}
                () = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(conn = %self.conn.id, "handshake timed out");
                    return Err(End::Refused);
                }
                r = flush_or_fill(&mut self.io) => {
                    if r.is_err() {
                        return Err(End::Refused);
                    }
                }
            }
        };
        self.io.set_max_frame(limits.max_frame);
        self.shared.note_activity();
        let authenticated = identity.is_some();
        self.conn.set_identity(identity);
        if self.io.queue_json(&json!({ "authenticated": authenticated })).is_err() {
            return Err(End::Refused);
        }
        self.conn.set_established();
        self.phase = Phase::Established;
        tracing::debug!(conn = %self.conn.id, authenticated, "connection established");
        self.run_hook(HookKind::New);
        Ok(())
    }

    /// Serves requests until the connection ends.
    async fn serve(&mut self) -> End {
        // The shutdown rings every connection's doorbell; a task that starts after that
        // sees the shutdown here.
        if self.shutting_down() {
            return End::Shutdown;
        }
        loop {
            if self.conn.wake.is_raised() {
                if self.shutting_down() {
                    return End::Shutdown;
                }
                if self.conn.detach_requested() {
                    return End::Detach;
                }
                if self.conn.is_evicted() {
                    return End::Lost(None);
                }
            }
            // The request borrows its method from the service.
            let shared = self.shared.clone();
            // A client that does not read its replies gets no more served until it does.
            let room = self.io.pending_output() < shared.config.limits.max_connection_output;
            let frame = if room { self.io.next_frame() } else { Ok(None) };
            let request = match frame {
                Ok(Some(frame)) => {
                    let identity = self.conn.identity_ref();
                    Some(dispatch::prepare(
                        frame,
                        &shared.service,
                        &shared.keys,
                        identity.as_deref(),
                        shared.config.limits.max_echo,
                    ))
                }
                Ok(None) => None,
                Err(e) => {
                    self.invalid_rpc(&e).await;
                    return End::Lost(Some(e));
                }
            };
            if let Some(request) = request {
                if let Err(end) = self.handle_request(request).await {
                    return end;
                }
                continue;
            }
            // Nothing buffered: write what is queued, or wait for more input, until the
            // doorbell rings.
            let (wake, io) = (&self.conn.wake, &mut self.io);
            let waited = std::future::poll_fn(|cx| {
                if wake.poll_raised(cx).is_ready() {
                    return Poll::Ready(Ok(()));
                }
                if io.has_pending_output() { io.poll_flush(cx) } else { io.poll_fill(cx) }
            })
            .await;
            self.account();
            if let Err(e) = waited {
                return End::Lost(Some(e));
            }
        }
    }

    /// Runs one validated request and queues its reply, if one is due.
    async fn handle_request(&mut self, request: Request<'_>) -> Result<(), End> {
        self.shared.note_activity();
        self.conn.touch(&self.shared);
        let one_way = request.one_way;
        let reply = match request.prepared {
            Prepared::Refuse(exception) => (!one_way).then_some(Reply::Exception(exception)),
            Prepared::Invoke { method, args, resource } => {
                let ctx = Context {
                    control: self.handle(),
                    conn: self.conn.clone(),
                    resource,
                    one_way,
                    method: method.name.clone(),
                };
                let call = CatchPanic(method.handler.call(ctx, args));
                match self.await_call(call).await {
                    CallEnd::Done(result) => self.answer(&method.name, one_way, result),
                    CallEnd::Cut => {
                        self.cut = true;
                        return Err(End::Shutdown);
                    }
                    CallEnd::ClientGone(e) => {
                        tracing::debug!(conn = %self.conn.id, method = %method.name, "the client left during the call; the call is cancelled");
                        return Err(End::Lost(e));
                    }
                }
            }
        };
        if let Some(reply) = reply {
            self.queue_bounded(&reply);
        }
        Ok(())
    }

    /// Queues a reply within the bounds: a reply larger than a frame, or one that would
    /// take the server's buffered output beyond its budget, is replaced by an exception
    /// that says so.
    fn queue_bounded(&mut self, reply: &Reply) {
        let limits = self.shared.config.limits;
        let before = self.io.pending_output();
        let queued = match reply {
            Reply::Result(value) => self.io.queue_reply("result", value),
            Reply::Exception(value) => self.io.queue_reply("exception", value),
        };
        let refusal = match queued {
            Err(e) => Some(format!("INTERNAL ERROR: cannot encode the reply: {e}")),
            Ok(()) => {
                let size = self.io.pending_output() - before - frame::HEADER_LEN;
                let total = self.shared.buffered_output.load(Ordering::Relaxed);
                if size > limits.max_frame {
                    Some(format!(
                        "the reply of {size} bytes is above the frame limit of {}",
                        limits.max_frame
                    ))
                } else if size > SMALL_REPLY && total.saturating_add(size) > limits.max_total_output
                {
                    tracing::warn!(conn = %self.conn.id, size, total, "output budget spent; a reply is refused");
                    Some(format!(
                        "the server holds {total} bytes of replies that clients have not read; \
                         the reply of {size} bytes is refused"
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(text) = refusal {
            self.io.truncate_output(before);
            let e = AveException::custom("Exception", text);
            let _ = self.io.queue_reply("exception", &e.to_wire());
        }
        self.account();
    }

    /// Brings this connection's share of the server's buffered output up to date.
    fn account(&mut self) {
        let now = self.io.pending_output();
        if now > self.accounted {
            self.shared.buffered_output.fetch_add(now - self.accounted, Ordering::Relaxed);
        } else {
            self.shared.buffered_output.fetch_sub(self.accounted - now, Ordering::Relaxed);
        }
        self.accounted = now;
    }

    /// Runs a method to completion; if the server starts shutting down meanwhile, gives
    /// it until the shutdown deadline. Meanwhile watches the connection: a client that
    /// goes away (end of stream or an error) cancels its call. Requests it sends meanwhile
    /// are received, up to [`WATCH_INPUT`] bytes, and served after the call.
    async fn await_call<F>(&mut self, mut call: CatchPanic<F>) -> CallEnd
    where
        F: std::future::Future<Output = RpcResult<Value>> + Unpin,
    {
        // A method that answers at once is not "in a call" for a handover.
        if let Poll::Ready(result) = futures_poll_once(&mut call).await {
            return CallEnd::Done(result);
        }
        let Session { io, shutdown, conn, .. } = self;
        conn.begin_call();
        let _busy = EndCall(conn);
        let mut deadline: Option<Instant> = None;
        let mut watching = true;
        loop {
            tokio::select! {
                biased;
                result = &mut call => return CallEnd::Done(result),
                signal = shutdown.wait_for(Option::is_some), if deadline.is_none() => {
                    let at = match signal {
                        Ok(signal) => signal.as_ref().map_or_else(Instant::now, |s| s.deadline),
                        Err(_) => Instant::now(),
                    };
                    deadline = Some(at);
                }
                () = sleep_until(deadline), if deadline.is_some() => return CallEnd::Cut,
                gone = watch_for_departure(io), if watching => match gone {
                    Some(e) => return CallEnd::ClientGone(e),
                    None => watching = false,
                },
            }
        }
    }

    /// The reply to a method's result, if one is due.
    fn answer(&mut self, method: &str, one_way: bool, result: RpcResult<Value>) -> Option<Reply> {
        match result {
            Ok(value) => (!one_way).then_some(Reply::Result(value)),
            // Only the service's own Exit stops the server: one rebuilt from a client's data
            // is answered like any other exception.
            Err(e) if e.stops_service() => {
                // Answered even for one-way calls, as the original; then the server stops.
                self.exit_sent = true;
                self.shared.send(Command::Exit(e.clone()));
                Some(Reply::Exception(e.to_wire()))
            }
            Err(mut e) => {
                if one_way {
                    tracing::debug!(method, error = %e, "one-way call failed; no reply is sent");
                    return None;
                }
                e.ensure_trace(method);
                Some(Reply::Exception(e.to_wire()))
            }
        }
    }

    /// Answers a framing error with the original's "invalid RPC" exception (no trace), as
    /// far as the peer reads it within a short time.
    async fn invalid_rpc(&mut self, e: &Error) {
        let (type_name, text) = match e {
            Error::FrameTooLarge { len, .. } if *len >= 1 << 31 => {
                ("OverflowError", "signed integer is greater than maximum".to_owned())
            }
            Error::FrameTooLarge { .. } => ("OverflowError", e.to_string()),
            other => ("Exception", other.to_string()),
        };
        let message = format!("got invalid RPC from client, {text}. disconnect");
        tracing::debug!(conn = %self.conn.id, %message, "closing");
        let details = AveException::custom(type_name, message);
        if self.io.queue_json(&json!({ "exception": details.to_wire() })).is_ok() {
            let deadline = Instant::now() + self.shared.config.linger;
            let _ = tokio::time::timeout_at(deadline, self.io.flush()).await;
            self.io.shutdown_write().await;
            let _ = tokio::time::timeout_at(deadline, drain_until_eof(&mut self.io)).await;
        }
    }

    /// The one teardown path.
    async fn finish(mut self, end: End) {
        // Whatever is still queued goes with the connection (closed or detached).
        self.shared.buffered_output.fetch_sub(self.accounted, Ordering::Relaxed);
        self.accounted = 0;
        if let End::Detach = end {
            self.detach();
            return;
        }
        if let Some(request) = self.conn.take_detach_request() {
            let _ = request.reply.send(Err(Error::NoSuchConnection { id: self.conn.id.get() }));
        }
        match &end {
            End::Lost(Some(e)) => {
                tracing::debug!(conn = %self.conn.id, error = %ave_exceptions::error_chain(e), "connection lost");
            }
            End::Shutdown => self.close_for_shutdown().await,
            End::Lost(None) | End::Refused | End::Detach => {}
        }
        if self.conn.is_established() {
            self.run_hook(HookKind::Lost);
        }
        self.shared.forget(self.conn.id);
    }

    /// Delivers what is due before a shutdown closes the connection: the reply in
    /// progress and the exit message, then half-closes and waits (until the deadline) for
    /// the peer to close, so that the close does not turn into a reset that could destroy
    /// the last message.
    async fn close_for_shutdown(&mut self) {
        let Some(signal) = self.shutdown_signal() else { return };
        let mut wrote = self.exit_sent || self.io.has_pending_output();
        let due = !self.exit_sent && (self.cut || !signal.cut_only);
        if let Some(details) = signal.details.as_ref().filter(|_| due) {
            if self.io.queue_json(&json!({ "exception": details.to_wire() })).is_ok() {
                wrote = true;
            }
        }
        if !wrote {
            self.io.drain_available();
            return;
        }
        let deadline = signal.close_by;
        if tokio::time::timeout_at(deadline, self.io.flush()).await.is_err() {
            return;
        }
        self.io.shutdown_write().await;
        let _ = tokio::time::timeout_at(deadline, drain_until_eof(&mut self.io)).await;
    }

    fn detach(self) {
        let Session { shared, conn, io, phase, .. } = self;
        shared.forget(conn.id);
        let Some(request) = conn.take_detach_request() else { return };
        let phase = match phase {
            Phase::Greeting | Phase::Established => ConnectionPhase::Established,
            Phase::Challenged(challenge) => ConnectionPhase::Challenged { challenge },
        };
        let result = io.into_parts().map(|parts| DetachedConnection {
            parts,
            address: conn.address.clone(),
            identity: conn.identity(),
            phase,
        });
        let _ = request.reply.send(result.map(Detached::Done));
    }

    fn run_hook(&self, kind: HookKind) {
        let hooks = self.shared.service.hooks();
        let hook = match kind {
            HookKind::New => &hooks.new_connection,
            HookKind::Lost => &hooks.lost_connection,
        };
        if let Some(hook) = hook {
            let info: ConnectionInfo = self.conn.info();
            let handle = self.handle();
            if std::panic::catch_unwind(AssertUnwindSafe(|| hook(&handle, &info))).is_err() {
                tracing::error!(conn = %self.conn.id, "a connection hook panicked");
            }
        }
    }
}

/// How much a client may send while its call runs before the server stops reading (and
/// so stops noticing that the client left) until the call ends.
const WATCH_INPUT: usize = 64 * 1024;

/// Polls a future once.
async fn futures_poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx))).await
}

/// Ends the call of [`ConnShared::begin_call`] when dropped.
struct EndCall<'a>(&'a ConnShared);

impl Drop for EndCall<'_> {
    fn drop(&mut self) {
        self.0.end_call();
    }
}

/// How a call ended.
enum CallEnd {
    /// It returned.
    Done(RpcResult<Value>),
    /// The shutdown deadline came first.
    Cut,
    /// The client went away first (end of stream, or the error).
    ClientGone(Option<Error>),
}

/// Receives what the client sends during a call, until it goes away (`Some`) or has sent
/// [`WATCH_INPUT`] bytes (`None`: stop watching).
async fn watch_for_departure(io: &mut Connection) -> Option<Option<Error>> {
    loop {
        if io.buffered_input() >= WATCH_INPUT {
            return None;
        }
        match io.fill().await {
            Ok(()) => {}
            Err(e) if e.is_closed() => return Some(None),
            Err(e) => return Some(Some(e)),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A reply: `{"result": ...}` or `{"exception": ...}`.
enum Reply {
    Result(Value),
    Exception(Value),
}

#[derive(Clone, Copy)]
enum HookKind {
    New,
    Lost,
}

/// Writes queued output if there is any, otherwise waits for input.
async fn flush_or_fill(io: &mut Connection) -> Result<(), Error> {
    if io.has_pending_output() { io.flush().await } else { io.fill().await }
}

/// Reads and discards until the peer closes.
async fn drain_until_eof(io: &mut Connection) {
    loop {
        if io.stream().readable().await.is_err() || io.drain_available() {
            return;
        }
    }
}
