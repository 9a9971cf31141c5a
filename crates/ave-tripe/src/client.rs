//! The connection to the admin socket: the dispatcher task, command replies and events.
//!
//! A [`Client`] is a handle on one connection. The connection itself is served by a task
//! spawned on the caller's runtime (the dispatcher), which keeps the protocol's rules
//! (spec/tripe-admin.md section 3.1): commands wait in a FIFO queue and are sent one at a
//! time, the next only once the server has answered the current one with `OK`, `FAIL` or
//! `BGDETACH`; background jobs are tracked by tag and their `BGINFO`/`BGOK`/`BGFAIL` lines
//! routed to them; broadcasts go to the event subscribers and service lines to the service
//! provider. When the connection drops, every command still queued, in flight or running
//! in the background fails with [`Error::ConnectionLost`].

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::UnixStream,
    sync::{Notify, broadcast, mpsc, oneshot},
};

use crate::{
    error::{Disconnect, Error, Failure},
    event::Event,
    format::{check_line, format_command},
    lines::LineReader,
    message::{ServerMessage, ServiceMessage},
    words::split_words,
};

/// The default bound on the length of a line from the server: 1 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 1 << 20;

/// The default number of events buffered for each subscriber.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// The default number of INFO lines buffered for each [`Reply`] that has not read them yet.
pub const DEFAULT_REPLY_CAPACITY: usize = 256;

/// Options for a connection; [`Client::connect`] uses the defaults.
#[derive(Clone)]
pub struct ClientBuilder {
    max_line_len: usize,
    event_capacity: usize,
    reply_capacity: usize,
    on_line: Option<LineHook>,
    code_handlers: HashMap<String, CodeHandler>,
}

/// A hook that sees every line from the server ([`ClientBuilder::on_line`]).
type LineHook = Arc<dyn Fn(&[u8]) + Send + Sync>;
/// A handler for a message code ([`ClientBuilder::on_code`]).
type CodeHandler = Arc<dyn Fn(&[String]) + Send + Sync>;

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("max_line_len", &self.max_line_len)
            .field("event_capacity", &self.event_capacity)
            .field("reply_capacity", &self.reply_capacity)
            .field("on_line", &self.on_line.is_some())
            .field("code_handlers", &self.code_handlers.keys())
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            max_line_len: DEFAULT_MAX_LINE_LEN,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            reply_capacity: DEFAULT_REPLY_CAPACITY,
            on_line: None,
            code_handlers: HashMap::new(),
        }
    }
}

impl ClientBuilder {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest line accepted from the server, in bytes (default
    /// [`DEFAULT_MAX_LINE_LEN`]). A longer line ends the connection with
    /// [`Disconnect::LineTooLong`] instead of growing a buffer without bound.
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max.max(1);
        self
    }

    /// How many events are buffered for each subscriber that has not read them yet
    /// (default [`DEFAULT_EVENT_CAPACITY`]). A subscriber that falls further behind gets
    /// [`Event::Missed`] in place of the events it lost; commands are never held up.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How many INFO lines are buffered for each [`Reply`] that has not read them yet
    /// (default [`DEFAULT_REPLY_CAPACITY`]).
    ///
    /// This is the backpressure that keeps memory flat however much a command prints: when
    /// a reply's buffer is full, the dispatcher stops reading the socket until the reply
    /// is read (or dropped), and the server then waits for the client. So read a reply's
    /// lines as they come (with [`Reply::next_info`]), or drop it; a reply left unread
    /// while its owner waits on another command of the same connection holds that command
    /// up once this many lines are queued.
    pub fn reply_capacity(mut self, capacity: usize) -> Self {
        self.reply_capacity = capacity.max(1);
        self
    }

    /// A hook that sees every line from the server, as bytes without the newline, before
    /// the client handles it: for logging, or for messages this library does not model.
    /// It runs on the dispatcher task: keep it quick.
    pub fn on_line(mut self, hook: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        self.on_line = Some(Arc::new(hook));
        self
    }

    /// A handler for lines whose code this library does not know (a newer server's
    /// messages): they are passed to it, split into words after the code, instead of
    /// being broadcast as [`Event::Unknown`]. Codes are matched without regard to case.
    /// Handlers for codes the library knows are never called. It runs on the dispatcher
    /// task: keep it quick.
    pub fn on_code(
        mut self,
        code: &str,
        handler: impl Fn(&[String]) + Send + Sync + 'static,
    ) -> Self {
        self.code_handlers.insert(code.to_ascii_uppercase(), Arc::new(handler));
        self
    }

    /// Connects to the admin socket at `path`.
    ///
    /// The dispatcher task is spawned on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] when the socket cannot be reached.
    pub async fn connect(self, path: impl AsRef<Path>) -> Result<Client, Error> {
        let path = path.as_ref().to_path_buf();
        let stream = open(&path).await?;
        Ok(self.start(stream, Some(path)))
    }

    /// Runs the protocol over an already connected stream. (Such a client cannot
    /// [`reconnect`](Client::reconnect).)
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (the dispatcher task is spawned on it).
    pub fn from_stream<S>(self, stream: S) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.start(stream, None)
    }

    fn start<S>(self, stream: S, path: Option<PathBuf>) -> Client
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let connection = self.spawn(stream);
        Client {
            shared: Arc::new(Shared {
                connection: Mutex::new(connection),
                tags: AtomicU64::new(0),
                path,
                options: self,
            }),
        }
    }

    /// Spawns the dispatcher of one connection.
    fn spawn<S>(&self, stream: S) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = broadcast::channel(self.event_capacity);
        let (service_tx, service_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let abandoned = Arc::new(Notify::new());
        let driver = Driver {
            reader: LineReader::new(read, self.max_line_len),
            writer: write,
            requests: requests_rx,
            queue: VecDeque::new(),
            foreground: None,
            jobs: HashMap::new(),
            events: events_tx,
            service: service_tx,
            abandoned: abandoned.clone(),
            stop: stop_rx,
            on_line: self.on_line.clone(),
            code_handlers: self.code_handlers.clone(),
        };
        tokio::spawn(driver.run());
        Connection {
            requests: requests_tx,
            events: events_rx,
            service: Some(service_rx),
            abandoned,
            stop: Some(stop_tx),
        }
    }
}

async fn open(path: &Path) -> Result<UnixStream, Error> {
    UnixStream::connect(path)
        .await
        .map_err(|source| Error::Connect { path: path.to_path_buf(), source })
}

/// A connection to a TrIPE server's admin socket.
///
/// Cheap to clone; every clone uses the same connection. The connection closes once every
/// clone (and every [`Events`] subscription) is dropped and no command is left waiting
/// for an answer.
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), ave_tripe::Error> {
/// use ave_tripe::Client;
///
/// let client = Client::connect("/var/run/tripesock").await?;
/// for peer in client.list().await? {
///     println!("{peer}: {:?}", client.addr(&peer).await?);
/// }
/// // Any command, with its INFO lines as they arrive:
/// let mut reply = client.command(["STATS", "alice"])?;
/// while let Some(words) = reply.next_info().await? {
///     println!("{words:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The current connection; [`Client::reconnect`] replaces it.
    connection: Mutex<Connection>,
    tags: AtomicU64,
    /// The socket, for reconnecting.
    path: Option<PathBuf>,
    options: ClientBuilder,
}

/// The handles on one connection's dispatcher.
#[derive(Debug)]
struct Connection {
    requests: mpsc::UnboundedSender<Request>,
    /// Never read; new subscriptions are made from it.
    events: broadcast::Receiver<Event>,
    service: Option<mpsc::UnboundedReceiver<ServiceMessage>>,
    /// Woken when a reply is dropped before its end.
    abandoned: Arc<Notify>,
    /// Ends the connection ([`Client::disconnect`]).
    stop: Option<oneshot::Sender<String>>,
}

impl Client {
    /// Connects to the admin socket at `path` with the default options.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] when the socket cannot be reached.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client, Error> {
        ClientBuilder::new().connect(path).await
    }

    /// Options for a new connection.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Queues a command made of `words`; each word is quoted as needed.
    ///
    /// The returned [`Reply`] yields the command's INFO lines and ends with OK or the
    /// server's failure. The command is sent when every command queued before it has been
    /// answered (or detached into the background).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyCommand`], [`Error::Unsendable`] or [`Error::CommandTooLong`] for a
    /// command that cannot be sent; [`Error::Closed`] when the connection is gone.
    pub fn command<I, S>(&self, words: I) -> Result<Reply, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let words: Vec<String> = words.into_iter().map(|w| w.as_ref().to_owned()).collect();
        let line = format_command(&words)?;
        self.submit(line, &words, None)
    }

    /// Queues a command as a background job: `-background TAG` goes right after the
    /// keyword, with a fresh tag from [`Client::next_tag`].
    ///
    /// The server may still fail the command at once (a bad argument, say); otherwise it
    /// detaches it and the job's output arrives later, while other commands proceed. The
    /// [`Reply`] sees both cases the same way. Only ADD, PING, EPING and SVCSUBMIT take
    /// `-background`.
    ///
    /// # Errors
    ///
    /// As [`Client::command`].
    pub fn command_background<I, S>(&self, words: I) -> Result<Reply, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut words: Vec<String> = words.into_iter().map(|w| w.as_ref().to_owned()).collect();
        if words.is_empty() {
            return Err(Error::EmptyCommand);
        }
        let tag = self.next_tag();
        words.splice(1..1, ["-background".to_owned(), tag.clone()]);
        let line = format_command(&words)?;
        self.submit(line, &words, Some(tag))
    }

    /// Queues a command line that is already quoted, sent as it is.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyCommand`] for a blank line, [`Error::Unsendable`] for one holding a
    /// newline or NUL, [`Error::CommandTooLong`], or [`Error::Closed`].
    pub fn command_line(&self, line: &str) -> Result<Reply, Error> {
        check_line(line)?;
        let words = split_words(line);
        self.submit(line.to_owned(), &words, None)
    }

    /// A fresh job tag, `J00000`, `J00001`, ... (unique on this connection).
    pub fn next_tag(&self) -> String {
        format!("J{:05}", self.shared.tags.fetch_add(1, Ordering::Relaxed))
    }

    /// Subscribes to the broadcasts (`WARN`, `NOTE`, `TRACE`, unknown codes) that arrive
    /// from now on. Which ones the server sends is chosen with [`Client::watch`].
    ///
    /// The subscription keeps the connection open until it is dropped, and ends with the
    /// connection (after a [`Client::reconnect`], subscribe again).
    pub fn events(&self) -> Events {
        let rx = lock(&self.shared.connection).events.resubscribe();
        Events { rx, _client: self.clone() }
    }

    /// Takes the stream of service lines (`SVCJOB`, `SVCCANCEL`, `SVCCLAIM`) sent to this
    /// connection; `None` if it was taken before. [`ServiceProvider`](crate::ServiceProvider)
    /// takes it; lines arriving before it is taken are kept for it. Each connection has
    /// its own (after a [`Client::reconnect`], a new provider takes the new one).
    pub fn take_service_messages(&self) -> Option<ServiceMessages> {
        lock(&self.shared.connection).service.take().map(|rx| ServiceMessages { rx })
    }

    /// Whether the connection is gone (nothing more can be sent until a
    /// [`Client::reconnect`]).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.connection).requests.is_closed()
    }

    /// Closes the connection now, as tripe.py's `disconnect(reason)`: every command still
    /// queued, in flight or running in the background fails with
    /// [`Error::ConnectionLost`], whose source is [`Disconnect::Requested`] with `reason`.
    /// The client can [`reconnect`](Client::reconnect) afterwards. Does nothing if the
    /// connection is already gone.
    pub fn disconnect(&self, reason: impl Into<String>) {
        if let Some(stop) = lock(&self.shared.connection).stop.take() {
            let _ = stop.send(reason.into());
        }
    }

    /// Connects again to the same socket, on this client and every clone of it: after the
    /// server restarted, say. A connection still open is closed first (its pending
    /// commands fail as for [`Client::disconnect`], with the reason `reconnecting`).
    /// Event subscriptions and service providers belong to the old connection: make new
    /// ones (and claim the services again).
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] when the socket cannot be reached (the client stays
    /// disconnected and can try again), [`Error::NoSocketPath`] for a client made
    /// [`from_stream`](ClientBuilder::from_stream).
    pub async fn reconnect(&self) -> Result<(), Error> {
        let path = self.shared.path.as_ref().ok_or(Error::NoSocketPath)?;
        self.disconnect("reconnecting");
        let stream = open(path).await?;
        let connection = self.shared.options.spawn(stream);
        *lock(&self.shared.connection) = connection;
        Ok(())
    }

    fn submit(&self, line: String, words: &[String], tag: Option<String>) -> Result<Reply, Error> {
        let keyword = words.first().map(|w| w.to_ascii_uppercase()).unwrap_or_default();
        let cancels = (keyword == "BGCANCEL" && words.len() == 2).then(|| words[1].clone());
        let connection = lock(&self.shared.connection);
        let (request, mut reply) = Request::new(
            line,
            cancels,
            keyword,
            self.shared.options.reply_capacity,
            connection.requests.downgrade(),
            connection.abandoned.clone(),
        );
        reply.tag = tag;
        connection.requests.send(request).map_err(|_| Error::Closed)?;
        Ok(reply)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The answer to one command: its INFO lines as they arrive, then OK or a failure.
///
/// For a background job the `BGINFO`/`BGOK`/`BGFAIL` lines arrive here the same way, after
/// the server detaches it.
///
/// This is the streaming form: [`Reply::next_info`] hands over each line as the server
/// sends it, and at most [`ClientBuilder::reply_capacity`] lines wait for it, however long
/// the command runs ([`Reply::collect`] is the convenience that keeps them all).
#[derive(Debug)]
pub struct Reply {
    keyword: String,
    lines: mpsc::Receiver<Progress>,
    end: oneshot::Receiver<End>,
    tag: Option<String>,
    detached: bool,
    done: bool,
    requests: mpsc::WeakUnboundedSender<Request>,
    abandoned: Arc<Notify>,
    capacity: usize,
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.done {
            // The dispatcher may be waiting only for this job before it closes.
            self.abandoned.notify_one();
        }
    }
}

impl Reply {
    /// The command keyword, upper case.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The background tag: the one this client chose, or the one in `BGDETACH`.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// Whether the server has detached the command into the background (as far as this
    /// reply has read).
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// The next INFO line's words; `None` once the server said OK.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when the server said FAIL, [`Error::ConnectionLost`] or
    /// [`Error::Closed`] when the connection went away first, [`Error::Cancelled`] when the
    /// background job was cancelled. After the end, it keeps returning `Ok(None)`.
    pub async fn next_info(&mut self) -> Result<Option<Vec<String>>, Error> {
        while !self.done {
            match self.lines.recv().await {
                Some(Progress::Info(words)) => return Ok(Some(words)),
                Some(Progress::Detached(tag)) => {
                    self.detached = true;
                    self.tag = Some(tag);
                    continue;
                }
                // Every line is read: the end follows (the dispatcher drops the line sender
                // before it sends the end).
                None => {}
            }
            self.done = true;
            return match (&mut self.end).await {
                Ok(End::Ok) => Ok(None),
                Ok(End::Fail(failure)) => Err(Error::Failed(failure)),
                Ok(End::Lost(reason)) => Err(Error::ConnectionLost(reason)),
                Ok(End::Cancelled) => {
                    Err(Error::Cancelled { tag: self.tag.clone().unwrap_or_default() })
                }
                Err(_) => Err(Error::Closed),
            };
        }
        Ok(None)
    }

    /// Every INFO line, once the command succeeded.
    ///
    /// # Errors
    ///
    /// As [`Reply::next_info`].
    pub async fn collect(mut self) -> Result<Vec<Vec<String>>, Error> {
        let mut lines = Vec::new();
        while let Some(words) = self.next_info().await? {
            lines.push(words);
        }
        Ok(lines)
    }

    /// Waits for OK from a command that answers with no INFO lines.
    ///
    /// # Errors
    ///
    /// As [`Reply::next_info`], and [`Error::Unexpected`] if INFO lines came.
    pub async fn ok(self) -> Result<(), Error> {
        let keyword = self.keyword.clone();
        let lines = self.collect().await?;
        if lines.is_empty() {
            Ok(())
        } else {
            Err(Error::unexpected(&keyword, format!("{} INFO lines, expected none", lines.len())))
        }
    }

    /// The one INFO line of a command that answers with exactly one.
    ///
    /// # Errors
    ///
    /// As [`Reply::next_info`], and [`Error::Unexpected`] for any other number of lines.
    pub async fn single(self) -> Result<Vec<String>, Error> {
        let keyword = self.keyword.clone();
        let mut lines = self.collect().await?;
        if lines.len() == 1 {
            Ok(lines.remove(0))
        } else {
            Err(Error::unexpected(&keyword, format!("{} INFO lines, expected one", lines.len())))
        }
    }

    /// Cancels this background job with `BGCANCEL` and waits for the server to confirm.
    /// This reply then ends with [`Error::Cancelled`].
    ///
    /// # Errors
    ///
    /// [`Error::Unexpected`] when the command is not a background job, the server's
    /// failure (`unknown-tag` when the job has already finished), or a connection error.
    pub async fn cancel(&self) -> Result<(), Error> {
        let Some(tag) = self.tag.clone() else {
            return Err(Error::unexpected(&self.keyword, "not a background job"));
        };
        let requests = self.requests.upgrade().ok_or(Error::Closed)?;
        let line = format_command(["BGCANCEL", &tag])?;
        let (request, reply) = Request::new(
            line,
            Some(tag),
            "BGCANCEL".to_owned(),
            self.capacity,
            self.requests.clone(),
            self.abandoned.clone(),
        );
        requests.send(request).map_err(|_| Error::Closed)?;
        reply.ok().await
    }
}

/// A subscription to the server's broadcasts; see [`Client::events`].
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Event>,
    _client: Client,
}

impl Events {
    /// The next broadcast; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(count)) => Some(Event::Missed { count }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The service lines sent to a connection; see [`Client::take_service_messages`].
#[derive(Debug)]
pub struct ServiceMessages {
    rx: mpsc::UnboundedReceiver<ServiceMessage>,
}

impl ServiceMessages {
    /// The next service line; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<ServiceMessage> {
        self.rx.recv().await
    }
}

/// A command waiting to be sent or answered.
#[derive(Debug)]
struct Request {
    line: String,
    /// The reply's lines, bounded: a full buffer holds up the dispatcher (backpressure).
    lines: mpsc::Sender<Progress>,
    /// The reply's end, sent once the line sender is gone.
    end: oneshot::Sender<End>,
    /// For `BGCANCEL TAG`: the job that ends when the server says OK.
    cancels: Option<String>,
}

impl Request {
    /// A request and the reply that reads its answer.
    fn new(
        line: String,
        cancels: Option<String>,
        keyword: String,
        capacity: usize,
        requests: mpsc::WeakUnboundedSender<Request>,
        abandoned: Arc<Notify>,
    ) -> (Request, Reply) {
        let (lines_tx, lines) = mpsc::channel(capacity);
        let (end_tx, end) = oneshot::channel();
        let request = Request { line, lines: lines_tx, end: end_tx, cancels };
        let reply = Reply {
            keyword,
            lines,
            end,
            tag: None,
            detached: false,
            done: false,
            requests,
            abandoned,
            capacity,
        };
        (request, reply)
    }

    /// Hands a line to the reply, waiting while its buffer is full.
    async fn progress(&self, progress: Progress) {
        // The caller may have dropped its reply; the command still runs.
        let _ = self.lines.send(progress).await;
    }

    /// Ends the reply.
    fn finish(self, end: End) {
        let Request { lines, end: end_tx, .. } = self;
        drop(lines);
        let _ = end_tx.send(end);
    }

    /// Whether nobody reads the reply any more.
    fn is_abandoned(&self) -> bool {
        self.lines.is_closed()
    }
}

/// A line for a reply.
#[derive(Debug)]
enum Progress {
    Info(Vec<String>),
    Detached(String),
}

/// How a reply ends.
#[derive(Debug)]
enum End {
    Ok,
    Fail(Failure),
    Lost(Arc<Disconnect>),
    Cancelled,
}

/// The task serving one connection.
struct Driver<R, W> {
    reader: LineReader<R>,
    writer: W,
    requests: mpsc::UnboundedReceiver<Request>,
    queue: VecDeque<Request>,
    foreground: Option<Request>,
    jobs: HashMap<String, Request>,
    events: broadcast::Sender<Event>,
    service: mpsc::UnboundedSender<ServiceMessage>,
    abandoned: Arc<Notify>,
    stop: oneshot::Receiver<String>,
    on_line: Option<LineHook>,
    code_handlers: HashMap<String, CodeHandler>,
}

impl<R, W> Driver<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async fn run(mut self) {
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
