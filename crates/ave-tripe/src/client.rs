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
//!
//! This file holds the handles ([`ClientBuilder`], [`Client`], [`Events`]); the dispatcher
//! task is in `driver.rs`, and each command's answer ([`Reply`] and the dispatcher's side
//! of it) in `reply.rs`.

mod driver;
mod reply;

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
    io::{AsyncRead, AsyncWrite},
    net::UnixStream,
    sync::{Notify, broadcast, mpsc, oneshot},
};

pub use crate::client::reply::Reply;
use crate::{
    client::{
        driver::{CodeHandler, Driver, LineHook},
        reply::Request,
    },
    error::Error,
    event::Event,
    format::{check_line, format_command},
    lines::LineReader,
    message::ServiceMessage,
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
    /// [`Disconnect::LineTooLong`](crate::Disconnect::LineTooLong) instead of growing a buffer without bound.
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
    /// [`Error::ConnectionLost`], whose source is [`Disconnect::Requested`](crate::Disconnect::Requested) with `reason`.
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
