//! `RemoteControl`: the client of a `Control`, async ([`RemoteControl`]) and blocking
//! ([`BlockingRemoteControl`]).
//!
//! Both connect lazily on the first call, retry refused connects when `optimist`, answer
//! the challenge with the authkey (a failed authentication is not an error: the
//! connection goes on without an identity, as the original's), send the `resource`
//! profile with every call, and rebuild remote exceptions as the original client does.
//!
//! Unlike the original, a call that times out or breaks in the middle drops its
//! connection, so a late reply can never be taken for the answer to the next call; the
//! next call connects again.
//!
//! # Example
//!
//! ```
//! use ave_network::{
//!     client::{BlockingRemoteControl, RemoteControl},
//!     control::{Control, Service, params},
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ave_network::Error> {
//! let service = Service::builder("echo")
//!     .rpc("upper", params(["message"]), |_ctx, (message,): (String,)| async move {
//!         Ok(message.to_uppercase())
//!     })
//!     .build();
//! let control = Control::builder(service).build()?;
//! let port = control.port();
//! let handle = control.handle();
//! let server = tokio::spawn(control.run());
//!
//! let client = RemoteControl::new(("127.0.0.1", port), None);
//! assert_eq!(client.call("upper", ("hello",)).await?, "HELLO");
//! // The blocking client does the same from a thread without a runtime.
//! let blocking = tokio::task::spawn_blocking(move || {
//!     BlockingRemoteControl::new(("127.0.0.1", port), None).call("upper", ("again",))
//! });
//! assert_eq!(blocking.await.expect("the client thread")?, "AGAIN");
//!
//! handle.stop();
//! server.await.expect("the server task")?;
//! # Ok(())
//! # }
//! ```

use std::{
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

use ave_exceptions::{AveException, NetworkError};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    Error,
    connection::{Address, BlockingConnection, Connection},
    wire::{frame::DEFAULT_MAX_FRAME, handshake, json},
};

/// The budget of a one-way call for connecting, the handshake and sending, whatever the
/// client's timeout: the original's fixed 1 second.
pub const ONE_WAY_BUDGET: Duration = Duration::from_secs(1);

/// One RPC: a method, its arguments, and whether an answer is wanted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    method: String,
    vargs: Vec<Value>,
    kwargs: Map<String, Value>,
    one_way: bool,
}

impl Call {
    /// A call of `method` with no arguments.
    pub fn new(method: impl Into<String>) -> Call {
        Call { method: method.into(), ..Call::default() }
    }

    /// Adds a positional argument.
    #[must_use]
    pub fn arg(mut self, value: impl Into<Value>) -> Call {
        self.vargs.push(value.into());
        self
    }

    /// Adds positional arguments.
    #[must_use]
    pub fn args(mut self, values: impl IntoIterator<Item = Value>) -> Call {
        self.vargs.extend(values);
        self
    }

    /// Adds a keyword argument.
    #[must_use]
    pub fn kwarg(mut self, name: impl Into<String>, value: impl Into<Value>) -> Call {
        self.kwargs.insert(name.into(), value.into());
        self
    }

    /// Asks for no answer (the original's `__async__=True`): the call returns once it is
    /// sent, and failures on the server side are not reported.
    #[must_use]
    pub fn one_way(mut self, on: bool) -> Call {
        self.one_way = on;
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether the call is one-way.
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// The request object, as the original client sends it.
    pub fn request(&self, resource: &Value) -> Value {
        json!({
            "params": { "vargs": self.vargs, "kwargs": self.kwargs },
            "resource": resource,
            "method": self.method,
            "async": self.one_way,
        })
    }

    fn from_serialize(method: &str, args: impl Serialize) -> Result<Call, Error> {
        let vargs = match serde_json::to_value(args).map_err(Error::Encode)? {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            single => vec![single],
        };
        Ok(Call { method: method.to_owned(), vargs, ..Call::default() })
    }
}

/// What both clients are configured with.
#[derive(Debug, Clone)]
struct Settings {
    address: Address,
    authkey: Option<String>,
    timeout: Option<Duration>,
    optimist: bool,
    resource: Value,
    max_frame: usize,
}

impl Settings {
    fn new(address: Address, authkey: Option<&str>) -> Settings {
        Settings {
            address,
            authkey: authkey.map(str::to_owned),
            timeout: None,
            optimist: true,
            resource: Value::Null,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    fn budget(&self, call: &Call) -> Option<Duration> {
        if call.one_way { Some(ONE_WAY_BUDGET) } else { self.timeout }
    }
}

fn timed_out(message: &str) -> Error {
    Error::Network(NetworkError::Timeout(message.to_owned()))
}

/// At most this many bytes of a reply that breaks the protocol go into an error message:
/// enough to see what it is, never a whole frame of up to the frame cap.
const EXCERPT: usize = 200;

/// The start of a reply for an error message, with its full length when it was cut.
fn excerpt(bytes: &[u8]) -> String {
    if bytes.len() <= EXCERPT {
        return json::lossy(bytes).into_owned();
    }
    // Cut before a UTF-8 continuation byte, not inside a character.
    let mut end = EXCERPT;
    while end > 0 && bytes[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", json::lossy(&bytes[..end]), bytes.len())
}

/// Reads the verdict frame: whether the connection is authenticated.
fn parse_verdict(frame: &[u8]) -> Result<bool, Error> {
    let value = json::parse(frame).map_err(|_| {
        Error::Protocol(format!("not an authentication result: {}", excerpt(frame)))
    })?;
    if let Some(exception) = value.get("exception") {
        // A server that shuts down answers with its exit message instead.
        return Err(Error::Remote(AveException::from_wire(exception)));
    }
    if value.get("authenticated").is_none() {
        let text = excerpt(value.to_string().as_bytes());
        return Err(Error::Protocol(format!("not an authentication result: {text}")));
    }
    let ok = value == json!({ "authenticated": true });
    if !ok {
        tracing::debug!("authentication failed; the connection goes on without an identity");
    }
    Ok(ok)
}

/// Reads a response frame: the result, or the remote exception.
fn parse_response(frame: &[u8]) -> Result<Value, Error> {
    let value = json::parse(frame)
        .map_err(|e| Error::Protocol(format!("malformed response ({e}): {}", excerpt(frame))))?;
    match value {
        Value::Object(mut map) => {
            if let Some(exception) = map.get("exception") {
                return Err(Error::Remote(AveException::from_wire(exception)));
            }
            match map.remove("result") {
                Some(result) => Ok(result),
                None => Err(Error::Protocol(format!(
                    "not a response: {}",
                    excerpt(Value::Object(map).to_string().as_bytes())
                ))),
            }
        }
        other => Err(Error::Protocol(format!(
            "not a response: {}",
            excerpt(other.to_string().as_bytes())
        ))),
    }
}

/// Whether a connection may be used again after a call ended with this result.
fn still_in_step<T>(result: &Result<T, Error>) -> bool {
    matches!(result, Ok(_) | Err(Error::Remote(_)))
}

/// The async client of a `Control`.
///
/// Calls through one `RemoteControl` are made one at a time over one connection (each
/// waits for the previous one); use several clients for concurrent calls. Dropping a
/// call's future in the middle drops the connection, never leaving it out of step.
///
/// ```no_run
/// use ave_network::RemoteControl;
///
/// # async fn example() -> Result<(), ave_network::Error> {
/// let remote = RemoteControl::new("127.0.0.1:4000".parse::<ave_network::Address>()?, Some("secret"))
///     .with_timeout(Some(std::time::Duration::from_secs(5)));
/// let pong = remote.call("sync_ping", ()).await?;
/// assert_eq!(pong, "pong");
/// let upper = remote.call("upper", ("abc",)).await?;
/// assert_eq!(upper, "ABC");
/// # Ok(())
/// # }
/// ```
pub struct RemoteControl {
    settings: Settings,
    conn: tokio::sync::Mutex<Option<Connection>>,
    authenticated: Mutex<Option<bool>>,
}

impl fmt::Debug for RemoteControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteControl")
            .field("address", &self.settings.address)
            .field("timeout", &self.settings.timeout)
            .field("optimist", &self.settings.optimist)
            .finish_non_exhaustive()
    }
}

impl RemoteControl {
    /// A client of the service at `address`, authenticating with `authkey` (`None`: the
    /// empty key). No timeout, optimistic connects, no resource, until configured.
    pub fn new(address: impl Into<Address>, authkey: Option<&str>) -> RemoteControl {
        RemoteControl {
            settings: Settings::new(address.into(), authkey),
            conn: tokio::sync::Mutex::new(None),
            authenticated: Mutex::new(None),
        }
    }

    /// A client over a connection that is already connected and authenticated (the
    /// original's `sock` argument).
    pub fn from_connection(conn: Connection, address: impl Into<Address>) -> RemoteControl {
        RemoteControl {
            settings: Settings::new(address.into(), None),
            conn: tokio::sync::Mutex::new(Some(conn)),
            authenticated: Mutex::new(None),
        }
    }

    /// Bounds every call (connecting, the handshake, sending and the answer) by `timeout`;
    /// `None` or zero: no bound. One-way calls use [`ONE_WAY_BUDGET`] instead.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> RemoteControl {
        self.settings.timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Whether refused connects are retried every 100 ms until the timeout (default on).
    #[must_use]
    pub fn with_optimist(mut self, optimist: bool) -> RemoteControl {
        self.settings.optimist = optimist;
        self
    }

    /// The resource profile sent with every call (default `null`).
    #[must_use]
    pub fn with_resource(mut self, resource: Value) -> RemoteControl {
        self.settings.resource = resource;
        self
    }

    /// The largest response accepted (default 64 MiB).
    #[must_use]
    pub fn with_max_frame(mut self, max: usize) -> RemoteControl {
        self.settings.max_frame = max;
        self
    }

    /// The service's address.
    pub fn address(&self) -> &Address {
        &self.settings.address
    }

    /// Whether the last handshake authenticated (`None` before the first one).
    pub fn authenticated(&self) -> Option<bool> {
        *crate::sync::lock(&self.authenticated)
    }

    /// Connects now (replacing any connection), within `timeout`.
    ///
    /// # Errors
    ///
    /// `ConnectionTimeout`, `ConnectionRefused`, `ConnectionClosed`, a protocol error, or
    /// the server's exit message if it is shutting down.
    pub async fn connect(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let mut guard = self.conn.lock().await;
        *guard = None;
        let deadline = timeout.filter(|t| !t.is_zero()).map(|t| tokio::time::Instant::now() + t);
        *guard = Some(self.open(deadline).await?);
        Ok(())
    }

    /// Closes the connection; the next call connects again.
    pub async fn disconnect(&self) {
        *self.conn.lock().await = None;
    }

    /// The connection, made if needed, taken out of the client: give it to
    /// [`ControlHandle::add_connection`](crate::control::ControlHandle::add_connection).
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::connect`].
    pub async fn into_connection(self) -> Result<Connection, Error> {
        if let Some(conn) = self.conn.lock().await.take() {
            return Ok(conn);
        }
        let deadline = self.settings.timeout.map(|t| tokio::time::Instant::now() + t);
        self.open(deadline).await
    }

    /// Calls `method` with positional arguments (a tuple, an array, `()` for none, or a
    /// single value) and returns its result.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with the exception the service raised, a network error
    /// (`ConnectionTimeout`, `ConnectionClosed`, ...), or [`Error::Encode`].
    pub async fn call(&self, method: &str, args: impl Serialize) -> Result<Value, Error> {
        let call = Call::from_serialize(method, args)?;
        Ok(self.invoke(&call).await?.unwrap_or(Value::Null))
    }

    /// Sends a one-way call of `method`: returns once it is sent.
    ///
    /// # Errors
    ///
    /// A network error if it cannot be sent within [`ONE_WAY_BUDGET`].
    pub async fn call_one_way(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        let call = Call::from_serialize(method, args)?.one_way(true);
        self.invoke(&call).await.map(|_| ())
    }

    /// Makes a call: `Some(result)`, or `None` for a one-way call.
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::call`].
    pub async fn invoke(&self, call: &Call) -> Result<Option<Value>, Error> {
        let mut guard = self.conn.lock().await;
        let deadline = self.settings.budget(call).map(|b| tokio::time::Instant::now() + b);
        let mut conn = match guard.take() {
            Some(conn) => conn,
            None => self.open(deadline).await?,
        };
        let result =
            exchange(&mut conn, &call.request(&self.settings.resource), call.one_way, deadline)
                .await;
        if still_in_step(&result) {
            *guard = Some(conn);
        }
        result
    }

    async fn open(&self, deadline: Option<tokio::time::Instant>) -> Result<Connection, Error> {
        let s = &self.settings;
        let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        let mut conn = Connection::connect(&s.address, left, s.optimist).await?;
        conn.set_max_frame(s.max_frame);
        let authenticated = within(deadline, "timed out", async {
            let challenge = conn.read_frame().await?;
            let answer = handshake::respond(&challenge, s.authkey.as_deref())?;
            conn.write_frame(&answer).await?;
            parse_verdict(&conn.read_frame().await?)
        })
        .await?;
        *crate::sync::lock(&self.authenticated) = Some(authenticated);
        Ok(conn)
    }
}

async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    message: &str,
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match deadline {
        Some(d) => {
            tokio::time::timeout_at(d, work).await.unwrap_or_else(|_| Err(timed_out(message)))
        }
        None => work.await,
    }
}

async fn exchange(
    conn: &mut Connection,
    request: &Value,
    one_way: bool,
    deadline: Option<tokio::time::Instant>,
) -> Result<Option<Value>, Error> {
    conn.queue_json(request)?;
    within(deadline, "write attempt timed out", conn.flush()).await?;
    if one_way {
        return Ok(None);
    }
    let frame = within(deadline, "timed out", conn.read_frame()).await?;
    parse_response(&frame).map(Some)
}

/// The blocking client of a `Control`, for code without an async runtime (the `ave call`
/// command uses it). The same behaviour as [`RemoteControl`].
///
/// ```no_run
/// use ave_network::{Address, BlockingRemoteControl};
///
/// let remote = BlockingRemoteControl::new(Address::new("", 4000), None);
/// let pid = remote.call("get_pid", ())?;
/// # let _ = pid;
/// # Ok::<(), ave_network::Error>(())
/// ```
pub struct BlockingRemoteControl {
    settings: Settings,
    conn: Mutex<Option<BlockingConnection>>,
    authenticated: Mutex<Option<bool>>,
}

impl fmt::Debug for BlockingRemoteControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingRemoteControl")
            .field("address", &self.settings.address)
            .field("timeout", &self.settings.timeout)
            .field("optimist", &self.settings.optimist)
            .finish_non_exhaustive()
    }
}

impl BlockingRemoteControl {
    /// A client of the service at `address`; see [`RemoteControl::new`].
    pub fn new(address: impl Into<Address>, authkey: Option<&str>) -> BlockingRemoteControl {
        BlockingRemoteControl {
            settings: Settings::new(address.into(), authkey),
            conn: Mutex::new(None),
            authenticated: Mutex::new(None),
        }
    }

    /// A client over a connection that is already connected and authenticated.
    pub fn from_connection(
        conn: BlockingConnection,
        address: impl Into<Address>,
    ) -> BlockingRemoteControl {
        BlockingRemoteControl {
            settings: Settings::new(address.into(), None),
            conn: Mutex::new(Some(conn)),
            authenticated: Mutex::new(None),
        }
    }

    /// See [`RemoteControl::with_timeout`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> BlockingRemoteControl {
        self.settings.timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// See [`RemoteControl::with_optimist`].
    #[must_use]
    pub fn with_optimist(mut self, optimist: bool) -> BlockingRemoteControl {
        self.settings.optimist = optimist;
        self
    }

    /// See [`RemoteControl::with_resource`].
    #[must_use]
    pub fn with_resource(mut self, resource: Value) -> BlockingRemoteControl {
        self.settings.resource = resource;
        self
    }

    /// See [`RemoteControl::with_max_frame`].
    #[must_use]
    pub fn with_max_frame(mut self, max: usize) -> BlockingRemoteControl {
        self.settings.max_frame = max;
        self
    }

    /// The service's address.
    pub fn address(&self) -> &Address {
        &self.settings.address
    }

    /// Whether the last handshake authenticated (`None` before the first one).
    pub fn authenticated(&self) -> Option<bool> {
        *crate::sync::lock(&self.authenticated)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Option<BlockingConnection>> {
        crate::sync::lock(&self.conn)
    }

    /// Connects now (replacing any connection), within `timeout`.
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::connect`].
    pub fn connect(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let mut guard = self.conn();
        *guard = None;
        let deadline = timeout.filter(|t| !t.is_zero()).map(|t| Instant::now() + t);
        *guard = Some(self.open(deadline)?);
        Ok(())
    }

    /// Closes the connection; the next call connects again.
    pub fn disconnect(&self) {
        *self.conn() = None;
    }

    /// The connection, made if needed, taken out of the client.
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::connect`].
    pub fn into_connection(self) -> Result<BlockingConnection, Error> {
        if let Some(conn) = self.conn().take() {
            return Ok(conn);
        }
        self.open(self.settings.timeout.map(|t| Instant::now() + t))
    }

    /// See [`RemoteControl::call`].
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::call`].
    pub fn call(&self, method: &str, args: impl Serialize) -> Result<Value, Error> {
        let call = Call::from_serialize(method, args)?;
        Ok(self.invoke(&call)?.unwrap_or(Value::Null))
    }

    /// See [`RemoteControl::call_one_way`].
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::call_one_way`].
    pub fn call_one_way(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        let call = Call::from_serialize(method, args)?.one_way(true);
        self.invoke(&call).map(|_| ())
    }

    /// See [`RemoteControl::invoke`].
    ///
    /// # Errors
    ///
    /// As [`RemoteControl::call`].
    pub fn invoke(&self, call: &Call) -> Result<Option<Value>, Error> {
        let mut guard = self.conn();
        let deadline = self.settings.budget(call).map(|b| Instant::now() + b);
        let mut conn = match guard.take() {
            Some(conn) => conn,
            None => self.open(deadline)?,
        };
        let result = (|| {
            let request = call.request(&self.settings.resource);
            let bytes = json::to_vec(&request).map_err(Error::Encode)?;
            conn.put(&bytes, left(deadline, "write attempt timed out")?)?;
            if call.one_way {
                return Ok(None);
            }
            let frame = conn.get(left(deadline, "timed out")?)?;
            parse_response(&frame).map(Some)
        })();
        if still_in_step(&result) {
            *guard = Some(conn);
        }
        result
    }

    fn open(&self, deadline: Option<Instant>) -> Result<BlockingConnection, Error> {
        let s = &self.settings;
        let left_connect = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut conn = BlockingConnection::connect(&s.address, left_connect, s.optimist)?;
        conn.set_max_frame(s.max_frame);
        let challenge = conn.get(left(deadline, "timed out")?)?;
        let answer = handshake::respond(&challenge, s.authkey.as_deref())?;
        conn.put(&answer, left(deadline, "write attempt timed out")?)?;
        let authenticated = parse_verdict(&conn.get(left(deadline, "timed out")?)?)?;
        *crate::sync::lock(&self.authenticated) = Some(authenticated);
        Ok(conn)
    }
}

/// The time left before `deadline`, or the timeout error once it has passed.
fn left(deadline: Option<Instant>, message: &str) -> Result<Option<Duration>, Error> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let rest = d.saturating_duration_since(Instant::now());
            if rest.is_zero() { Err(timed_out(message)) } else { Ok(Some(rest)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use ave_exceptions::Kind;

    use super::*;

    #[test]
    fn requests_have_the_original_shape() {
        let call = Call::new("sync_ping").kwarg("alt", "hello");
        let text = json::to_string(&call.request(&Value::Null)).unwrap();
        assert_eq!(
            json::parse(text.as_bytes()).unwrap(),
            json!({"params": {"vargs": [], "kwargs": {"alt": "hello"}}, "resource": null,
                   "method": "sync_ping", "async": false})
        );
        let call = Call::from_serialize("upper", ("abc",)).unwrap();
        assert_eq!(call.vargs, vec![json!("abc")]);
        assert!(Call::from_serialize("x", ()).unwrap().vargs.is_empty());
        assert_eq!(Call::from_serialize("x", 5).unwrap().vargs, vec![json!(5)]);
        assert!(Call::new("a").one_way(true).request(&json!({"k": 1}))["async"].as_bool().unwrap());
    }

    #[test]
    fn protocol_errors_show_an_excerpt() {
        assert_eq!(excerpt(b"short"), "short");
        let long = "é".repeat(150);
        let shown = excerpt(long.as_bytes());
        assert!(shown.ends_with("... (300 bytes in all)"), "{shown}");
        assert!(shown.starts_with(&"é".repeat(100)), "{shown}");
        let err = parse_response(&vec![b'x'; 1 << 20]).unwrap_err().to_string();
        assert!(err.len() < 400, "{}", err.len());
    }

    #[test]
    fn verdicts_and_responses() {
        assert!(parse_verdict(br#"{"authenticated": true}"#).unwrap());
        assert!(!parse_verdict(br#"{"authenticated": false}"#).unwrap());
        assert!(!parse_verdict(br#"{"authenticated": true, "x": 1}"#).unwrap());
        let exit =
            parse_verdict(br#"{"exception": {"type": "Exit", "message": "bye"}}"#).unwrap_err();
        assert_eq!(exit.remote().unwrap().kind(), Kind::Exit);
        assert!(
            matches!(parse_verdict(b"{}"), Err(Error::Protocol(m)) if m.starts_with("not an authentication result"))
        );
        assert_eq!(parse_response(br#"{"result": NaN}"#).unwrap(), Value::Null);
        let e = parse_response(br#"{"exception": "no such RPC: x"}"#).unwrap_err();
        assert_eq!(e.remote().unwrap().message(), "no such RPC: x");
        assert!(matches!(parse_response(b"[]"), Err(Error::Protocol(_))));
        assert!(still_in_step::<()>(&Err(e)));
        assert!(!still_in_step::<()>(&Err(timed_out("t"))));
    }
}
