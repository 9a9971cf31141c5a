//! The dispatcher: the task that owns one connection's socket. It sends queued commands
//! one at a time, routes each line from the server to the command, background job, event
//! subscribers or service provider it belongs to, and fails everything still pending when
//! the connection ends.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::{Notify, broadcast, mpsc, oneshot},
};

use crate::{
    client::reply::{End, Progress, Request},
    error::Disconnect,
    event::Event,
    lines::LineReader,
    message::{ServerMessage, ServiceMessage},
};

/// A hook that sees every line from the server ([`ClientBuilder::on_line`]).
pub(crate) type LineHook = Arc<dyn Fn(&[u8]) + Send + Sync>;
/// A handler for a message code ([`ClientBuilder::on_code`]).
pub(crate) type CodeHandler = Arc<dyn Fn(&[String]) + Send + Sync>;

/// The task serving one connection.
pub(crate) struct Driver<R, W> {
    pub(crate) reader: LineReader<R>,
    pub(crate) writer: W,
    pub(crate) requests: mpsc::UnboundedReceiver<Request>,
    pub(crate) queue: VecDeque<Request>,
    pub(crate) foreground: Option<Request>,
    pub(crate) jobs: HashMap<String, Request>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) service: mpsc::UnboundedSender<ServiceMessage>,
    pub(crate) abandoned: Arc<Notify>,
    pub(crate) stop: oneshot::Receiver<String>,
    pub(crate) on_line: Option<LineHook>,
    pub(crate) code_handlers: HashMap<String, CodeHandler>,
}

impl<R, W> Driver<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub(crate) async fn run(mut self) {
        let Some(reason) = self.serve().await else {
            tracing::debug!("admin connection closed by the client");
            return;
        };
        tracing::debug!(%reason, "admin connection lost");
        let reason = Arc::new(reason);
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            self.queue.push_back(request);
        }
        let pending = self.foreground.take().into_iter().chain(self.queue.drain(..));
        for request in pending.chain(self.jobs.drain().map(|(_, r)| r)) {
            request.finish(End::Lost(reason.clone()));
        }
    }

    /// Serves the connection until it drops (the reason) or the client is done with it.
    async fn serve(&mut self) -> Option<Disconnect> {
        let mut accepting = true;
        let mut stoppable = true;
        loop {
            if self.foreground.is_none() {
                if let Some(request) = self.queue.pop_front() {
                    tracing::trace!(line = %request.line, "sending");
                    let mut bytes = Vec::with_capacity(request.line.len() + 1);
                    bytes.extend_from_slice(request.line.as_bytes());
                    bytes.push(b'\n');
                    let written = self.writer.write_all(&bytes).await;
                    self.foreground = Some(request);
                    if let Err(error) = written {
                        return Some(Disconnect::Io(error));
                    }
                }
            }
            // Once every handle is gone, only commands someone waits for keep the
            // connection: queued ones are still sent, and background jobs whose replies
            // were dropped are abandoned.
            let waited_for = self.jobs.values().any(|job| !job.is_abandoned());
            if !accepting && self.foreground.is_none() && !waited_for {
                return None;
            }
            tokio::select! {
                line = self.reader.next_line() => match line {
                    Ok(Some(line)) => self.handle(&line).await,
                    Ok(None) => return Some(Disconnect::Eof),
                    Err(reason) => return Some(reason),
                },
                request = self.requests.recv(), if accepting => match request {
                    Some(request) => self.queue.push_back(request),
                    None => accepting = false,
                },
                () = self.abandoned.notified() => {},
                reason = &mut self.stop, if stoppable => match reason {
                    Ok(reason) => return Some(Disconnect::Requested(reason)),
                    // Every handle is gone: the connection ends as above.
                    Err(_) => stoppable = false,
                },
            }
        }
    }

    async fn handle(&mut self, line: &[u8]) {
        if let Some(hook) = &self.on_line {
            hook(line);
        }
        let message = ServerMessage::parse(line);
        tracing::trace!(?message, "received");
        match message {
            ServerMessage::Ok => self.finish_foreground(End::Ok),
            ServerMessage::Fail(failure) => self.finish_foreground(End::Fail(failure)),
            ServerMessage::Info(words) => match &self.foreground {
                Some(request) => request.progress(Progress::Info(words)).await,
                None => tracing::warn!("INFO with no command in flight; ignored"),
            },
            ServerMessage::BgDetach(tag) => match self.foreground.take() {
                Some(request) => {
                    request.progress(Progress::Detached(tag.clone())).await;
                    if self.jobs.insert(tag.clone(), request).is_some() {
                        // A correct server fails the command with `tag-exists` instead; the
                        // older job's reply ends with `Error::Closed`.
                        tracing::warn!(%tag, "server reused a live job tag");
                    }
                }
                None => tracing::warn!(%tag, "BGDETACH with no command in flight; ignored"),
            },
            ServerMessage::BgInfo(tag, words) => match self.jobs.get(&tag) {
                Some(request) => request.progress(Progress::Info(words)).await,
                None => tracing::warn!(%tag, "BGINFO for an unknown job; ignored"),
            },
            ServerMessage::BgOk(tag) => match self.jobs.remove(&tag) {
                Some(request) => request.finish(End::Ok),
                None => tracing::warn!(%tag, "BGOK for an unknown job; ignored"),
            },
            ServerMessage::BgFail(tag, failure) => match self.jobs.remove(&tag) {
                Some(request) => request.finish(End::Fail(failure)),
                None => tracing::warn!(%tag, "BGFAIL for an unknown job; ignored"),
            },
            ServerMessage::Event(Event::Unknown { code, args })
                if self.code_handlers.contains_key(&code) =>
            {
                if let Some(handler) = self.code_handlers.get(&code) {
                    handler(&args);
                }
            }
            ServerMessage::Event(event) => {
                // No subscriber is not an error: nobody asked for broadcasts.
                let _ = self.events.send(event);
            }
            ServerMessage::Service(message) => {
                if self.service.send(message).is_err() {
                    tracing::warn!("service line with no service provider; ignored");
                }
            }
            ServerMessage::Malformed(text) => {
                tracing::warn!(line = %text, "malformed line ignored")
            }
        }
    }

    fn finish_foreground(&mut self, end: End) {
        let Some(request) = self.foreground.take() else {
            tracing::warn!("OK or FAIL with no command in flight; ignored");
            return;
        };
        if matches!(end, End::Ok) {
            if let Some(job) = request.cancels.as_ref().and_then(|tag| self.jobs.remove(tag)) {
                job.finish(End::Cancelled);
            }
        }
        request.finish(end);
    }
}
