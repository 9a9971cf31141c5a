//! Declaring a service: its RPC methods, their access rules, and its hooks.
//!
//! A [`Service`] is an explicit method table, built with [`Service::builder`]. Each
//! method has a name, its parameters ([`params`]), and an async handler that receives a
//! [`Context`] and its arguments as a tuple deserialized with serde; it returns a value
//! that serde can serialize, or an [`AveException`]. Only registered methods can be
//! called, so RPC names never collide with the framework's own operations.
//!
//! Every service also answers [`LIST_METHODS`] with its methods ([`MethodInfo`]), so a
//! client can discover them (`ave call ADDR --list`).

use std::{
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    marker::PhantomData,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use ave_exceptions::AveException;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::{
    control::{ConnShared, ConnectionId, ConnectionInfo, ControlHandle, Stopped},
    process::{ExitStatus, Pid},
};

/// What an RPC method returns: a value, or the exception its caller receives.
pub type RpcResult<T> = Result<T, AveException>;

/// The method every [`Service`] answers with the list of its other methods, a JSON array of
/// [`MethodInfo`] objects sorted by name; it takes no arguments and is open to every caller.
///
/// No Python method can have this name, so an original Python server answers a call of it
/// with `no such RPC: ave.list_methods`: a client that gets that answer knows the server
/// does not list its methods. A service that declares a method of this name keeps its own.
pub const LIST_METHODS: &str = "ave.list_methods";

/// One method of a service, as [`LIST_METHODS`] and [`Service::methods`] describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MethodInfo {
    /// The method's name.
    pub name: String,
    /// Its parameters by name, the required ones first; `None` for a method that takes
    /// its arguments as they come ([`ServiceBuilder::rpc_raw`]).
    pub params: Option<Vec<String>>,
    /// How many of `params` are required.
    pub required: usize,
    /// Whether only authenticated callers may call it ([`ServiceBuilder::auth`]).
    pub auth: bool,
    /// The accounts whose keys may call it ([`ServiceBuilder::preauth`]), if restricted.
    pub preauth: Option<Vec<String>>,
}

/// A boxed future, as handlers are stored.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The parameters of a method, by name: the required ones, then the optional ones.
///
/// Arguments are bound as Python binds them: positional arguments (`vargs`) fill the
/// parameters in order, keyword arguments (`kwargs`) by name; a missing required argument,
/// an unknown keyword or a duplicate is a `TypeError` with an empty trace, as the
/// original's binding errors are. A missing optional argument is `null`, so its type is
/// usually an `Option`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    names: Vec<String>,
    required: usize,
}

/// Required parameters, in order: `params(["message"])`; add optional ones with
/// [`Params::optional`].
pub fn params<I, S>(names: I) -> Params
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let names: Vec<String> = names.into_iter().map(Into::into).collect();
    Params { required: names.len(), names }
}

impl Params {
    /// No parameters.
    pub fn none() -> Params {
        Params::default()
    }

    /// Adds optional parameters after the others.
    #[must_use]
    pub fn optional<I, S>(mut self, names: I) -> Params
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// The parameter names, required first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many parameters are required.
    pub fn required(&self) -> usize {
        self.required
    }

    /// Binds call arguments to the parameters: one value per parameter, `null` for
    /// missing optional ones.
    ///
    /// # Errors
    ///
    /// A `TypeError` exception with Python's wording and an empty trace.
    pub fn bind(&self, method: &str, args: RawArgs) -> Result<Vec<Value>, AveException> {
        let total = self.names.len();
        if args.vargs.len() > total {
            let takes = if self.required == total {
                format!("{total}")
            } else {
                format!("from {} to {total}", self.required)
            };
            let plural = if total == 1 && self.required == total { "" } else { "s" };
            let given = args.vargs.len();
            let verb = if given == 1 { "was" } else { "were" };
            return Err(type_error(format!(
                "{method}() takes {takes} positional argument{plural} but {given} {verb} given"
            )));
        }
        let mut slots: Vec<Option<Value>> = vec![None; total];
        for (slot, value) in slots.iter_mut().zip(args.vargs) {
            *slot = Some(value);
        }
        for (key, value) in args.kwargs {
            let Some(index) = self.names.iter().position(|n| *n == key) else {
                return Err(type_error(format!(
                    "{method}() got an unexpected keyword argument '{key}'"
                )));
            };
            if slots[index].is_some() {
                return Err(type_error(format!(
                    "{method}() got multiple values for argument '{key}'"
                )));
            }
            slots[index] = Some(value);
        }
        let missing: Vec<&str> = self.names[..self.required]
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        if !missing.is_empty() {
            let quoted: Vec<String> = missing.iter().map(|n| format!("'{n}'")).collect();
            let list = match quoted.as_slice() {
                [one] => one.clone(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
                [] => String::new(),
            };
            let plural = if missing.len() == 1 { "" } else { "s" };
            return Err(type_error(format!(
                "{method}() missing {} required positional argument{plural}: {list}",
                missing.len()
            )));
        }
        Ok(slots.into_iter().map(|s| s.unwrap_or(Value::Null)).collect())
    }
}

/// A `TypeError` with an empty trace: how the original reports a call that does not fit
/// the method's signature.
pub fn type_error(message: impl Into<String>) -> AveException {
    AveException::custom("TypeError", message).with_trace(Vec::new())
}

/// The arguments of a call as they arrived: positional `vargs` and keyword `kwargs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawArgs {
    /// Positional arguments.
    pub vargs: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
}

/// What a method knows about its call: the connection it came in on, its identity, the
/// `resource` of the request, and the server itself.
#[derive(Clone)]
pub struct Context {
    pub(crate) control: ControlHandle,
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) resource: Value,
    pub(crate) one_way: bool,
    pub(crate) method: Arc<str>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("method", &self.method)
            .field("connection", &self.conn.id)
            .field("one_way", &self.one_way)
            .finish()
    }
}

impl Context {
    /// The server, to stop it, look at its connections, ...
    pub fn control(&self) -> &ControlHandle {
        &self.control
    }

    /// The connection the call came in on.
    pub fn connection(&self) -> ConnectionId {
        self.conn.id
    }

    /// The caller's identity: the key its connection authenticated with (or was given
    /// with `set_connection_authkey`), `None` if it did not authenticate. This is what the
    /// original's `whoami` returns.
    pub fn identity(&self) -> Option<String> {
        self.conn.identity()
    }

    /// The caller's address.
    pub fn address(&self) -> &crate::connection::Address {
        &self.conn.address
    }

    /// The request's `resource` (usually `null`; broker sessions dispatch on it).
    pub fn resource(&self) -> &Value {
        &self.resource
    }

    /// Whether the caller asked for no answer (`"async": true`).
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// The name of the method being called.
    pub fn method(&self) -> &str {
        &self.method
    }
}

/// An RPC handler with its argument binding, type-erased.
pub(crate) trait Handler: Send + Sync + 'static {
    fn call(&self, ctx: Context, args: RawArgs) -> BoxFuture<RpcResult<Value>>;

    /// The parameters the handler binds by name, if it does.
    fn params(&self) -> Option<&Params> {
        None
    }
}

struct Typed<F, A> {
    name: String,
    params: Params,
    f: F,
    _args: PhantomData<fn(A)>,
}

impl<F, A, R, Fut> Handler for Typed<F, A>
where
    F: Fn(Context, A) -> Fut + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    Fut: Future<Output = RpcResult<R>> + Send + 'static,
    R: Serialize + 'static,
{
    fn call(&self, ctx: Context, args: RawArgs) -> BoxFuture<RpcResult<Value>> {
        let bound = match self.params.bind(&self.name, args) {
            Ok(bound) => bound,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let value = if bound.is_empty() { Value::Null } else { Value::Array(bound) };
        let args: A = match serde_json::from_value(value) {
            Ok(args) => args,
            Err(e) => {
                let e = type_error(format!("{}() got invalid arguments: {e}", self.name));
                return Box::pin(std::future::ready(Err(e)));
            }
        };
        let fut = (self.f)(ctx, args);
        Box::pin(async move {
            let result = fut.await?;
            to_result_value(&result)
        })
    }

    fn params(&self) -> Option<&Params> {
        Some(&self.params)
    }
}

struct Raw<F>(F);

impl<F, R, Fut> Handler for Raw<F>
where
    F: Fn(Context, RawArgs) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RpcResult<R>> + Send + 'static,
    R: Serialize + 'static,
{
    fn call(&self, ctx: Context, args: RawArgs) -> BoxFuture<RpcResult<Value>> {
        let fut = (self.0)(ctx, args);
        Box::pin(async move {
            let result = fut.await?;
            to_result_value(&result)
        })
    }
}

/// Serializes a method's result; a result JSON cannot hold becomes an exception reply
/// (the original dropped the client instead).
fn to_result_value<R: Serialize + ?Sized>(result: &R) -> RpcResult<Value> {
    serde_json::to_value(result).map_err(|e| {
        AveException::custom(
            "Exception",
            format!("INTERNAL ERROR: OBJECT IS NOT JSON COMPATIBLE: {e}"),
        )
    })
}

/// One method of a service and who may call it.
pub(crate) struct Method {
    pub(crate) name: Arc<str>,
    pub(crate) auth: bool,
    pub(crate) preauth: Option<Vec<String>>,
    pub(crate) handler: Box<dyn Handler>,
    /// The listing that [`ServiceBuilder::build`] adds ([`LIST_METHODS`]).
    listing: bool,
}

impl Method {
    fn info(&self) -> MethodInfo {
        let params = self.handler.params();
        MethodInfo {
            name: self.name.to_string(),
            params: params.map(|p| p.names().to_vec()),
            required: params.map_or(0, Params::required),
            auth: self.auth,
            preauth: self.preauth.clone(),
        }
    }

    /// Whether this is the listing [`ServiceBuilder::build`] adds.
    fn is_listing(&self) -> bool {
        self.listing
    }
}

pub(crate) type ConnectionHook = Arc<dyn Fn(&ControlHandle, &ConnectionInfo) + Send + Sync>;
pub(crate) type IdleHook = Arc<dyn Fn(&ControlHandle) + Send + Sync>;
pub(crate) type ShutdownHook = Arc<dyn Fn(&ControlHandle, &Stopped) + Send + Sync>;
pub(crate) type JoinedHook = Arc<dyn Fn(&ControlHandle, Pid, ExitStatus) + Send + Sync>;
pub(crate) type HickupHook = Arc<dyn Fn(&ControlHandle) -> String + Send + Sync>;

#[derive(Default, Clone)]
pub(crate) struct Hooks {
    pub(crate) new_connection: Option<ConnectionHook>,
    pub(crate) lost_connection: Option<ConnectionHook>,
    pub(crate) idle: Option<IdleHook>,
    pub(crate) shutdown: Option<ShutdownHook>,
    pub(crate) joined_process: Option<JoinedHook>,
    pub(crate) hickup: Option<HickupHook>,
}

/// The names the original's `Control` has as attributes of its own. Calling one that the
/// service does not expose answers `not an RPC: ...`, as the original does, rather than
/// `no such RPC: ...`.
const FRAMEWORK_NAMES: &[&str] = &[
    "add_connection",
    "add_keepwatching",
    "disable_death_signalling",
    "get_authkeys",
    "get_children",
    "get_connection_authkey",
    "idle",
    "initialize",
    "join",
    "join_deferred",
    "join_later",
    "joined_process",
    "keys",
    "kill",
    "log",
    "lost_connection",
    "main_loop",
    "new_connection",
    "perform_rpc",
    "remove_connection",
    "run",
    "set_connection_authkey",
    "shutdown",
    "start",
    "step_main",
    "stop",
    "stop_listening",
    "terminate",
    "validate_rpc",
    "write_exit_message",
];

struct Inner {
    name: String,
    methods: HashMap<Arc<str>, Method>,
    hidden: HashSet<String>,
    hooks: Hooks,
}

/// A service: a name, a table of RPC methods with their access rules, and hooks.
///
/// Cheap to clone; give it to a `Control` to serve it.
///
/// ```
/// use ave_network::control::{Params, Service, params};
///
/// let service = Service::builder("greeter")
///     .rpc("upper", params(["message"]), |_ctx, (message,): (String,)| async move {
///         Ok(message.to_uppercase())
///     })
///     .rpc("whoami", Params::none(), |ctx, ()| async move { Ok(ctx.identity()) })
///     .auth()
///     .build();
/// assert!(service.has_method("upper"));
/// assert_eq!(service.name(), "greeter");
/// ```
#[derive(Clone)]
pub struct Service(Arc<Inner>);

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.0.methods.keys().map(|k| &**k).collect();
        names.sort_unstable();
        f.debug_struct("Service").field("name", &self.0.name).field("methods", &names).finish()
    }
}

impl Service {
    /// Starts declaring a service. The name is used in logs and the default process name
    /// (`ave-<name>`).
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            name: name.into(),
            methods: HashMap::new(),
            last: None,
            hidden: HashSet::new(),
            hooks: Hooks::default(),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether a method of that name can be called.
    pub fn has_method(&self, name: &str) -> bool {
        self.0.methods.contains_key(name)
    }

    /// The names of the callable methods, sorted (without [`LIST_METHODS`] unless the
    /// service declared it).
    pub fn method_names(&self) -> Vec<&str> {
        self.methods_listed().map(|m| &*m.name).collect()
    }

    /// The callable methods with their parameters and access rules, sorted by name: what
    /// [`LIST_METHODS`] answers.
    pub fn methods(&self) -> Vec<MethodInfo> {
        self.methods_listed().map(Method::info).collect()
    }

    /// The methods in name order, the built-in listing left out.
    fn methods_listed(&self) -> impl Iterator<Item = &Method> {
        let mut methods: Vec<&Method> =
            self.0.methods.values().filter(|m| !m.is_listing()).collect();
        methods.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        methods.into_iter()
    }

    pub(crate) fn method(&self, name: &str) -> Option<&Method> {
        self.0.methods.get(name)
    }

    /// Whether the name exists without being callable (`not an RPC`).
    pub(crate) fn is_hidden(&self, name: &str) -> bool {
        self.0.hidden.contains(name) || FRAMEWORK_NAMES.contains(&name)
    }

    pub(crate) fn hooks(&self) -> &Hooks {
        &self.0.hooks
    }
}

/// Declares a [`Service`]; see [`Service::builder`].
///
/// `auth` and `preauth` apply to the method declared just before them.
pub struct ServiceBuilder {
    name: String,
    methods: HashMap<Arc<str>, Method>,
    last: Option<Arc<str>>,
    hidden: HashSet<String>,
    hooks: Hooks,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    /// Adds a method whose arguments are bound to `params` and deserialized as `A`, a
    /// tuple with one element per parameter (`()` for none). A method of the same name is
    /// replaced.
    ///
    /// The handler's future must be `Send`; it runs on the connection's task, so a slow
    /// method delays only later calls on the same connection.
    #[must_use]
    pub fn rpc<A, R, F, Fut>(mut self, name: &str, params: Params, f: F) -> ServiceBuilder
    where
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        A: DeserializeOwned + 'static,
        Fut: Future<Output = RpcResult<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        let handler = Typed { name: name.to_owned(), params, f, _args: PhantomData };
        self.insert(name, Box::new(handler));
        self
    }

    /// Adds a method that receives the arguments as they came ([`RawArgs`]), for
    /// variadic methods and proxies.
    #[must_use]
    pub fn rpc_raw<R, F, Fut>(mut self, name: &str, f: F) -> ServiceBuilder
    where
        F: Fn(Context, RawArgs) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RpcResult<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        self.insert(name, Box::new(Raw(f)));
        self
    }

    fn insert(&mut self, name: &str, handler: Box<dyn Handler>) {
        let name: Arc<str> = Arc::from(name);
        self.hidden.remove(&*name);
        self.methods.insert(
            name.clone(),
            Method { name: name.clone(), auth: false, preauth: None, handler, listing: false },
        );
        self.last = Some(name);
    }

    fn last_method(&mut self, what: &str) -> &mut Method {
        let name = self
            .last
            .clone()
            .unwrap_or_else(|| panic!("{what}() needs a method declared before it"));
        self.methods.get_mut(&name).expect("the last method is registered")
    }

    /// Requires an authenticated caller for the method declared last (the original's
    /// `@auth`): a connection whose identity is a non-empty key, primary or account.
    ///
    /// # Panics
    ///
    /// If no method was declared before.
    #[must_use]
    pub fn auth(mut self) -> ServiceBuilder {
        self.last_method("auth").auth = true;
        self
    }

    /// Requires an authenticated caller (as [`ServiceBuilder::auth`]) for methods already
    /// declared, by name; names not declared are ignored. For a policy on top of a
    /// service built elsewhere, such as `ave serve`'s on the diagnostic service.
    #[must_use]
    pub fn require_auth<I, S>(mut self, names: I) -> ServiceBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for name in names {
            if let Some(method) = self.methods.get_mut(name.as_ref()) {
                method.auth = true;
            }
        }
        self
    }

    /// Restricts the method declared last to the keys of the named accounts (the
    /// original's `@preauth`), with its anonymous rule: see
    /// [`Keys::preauth_allows`](crate::wire::handshake::Keys::preauth_allows).
    ///
    /// # Panics
    ///
    /// If no method was declared before.
    #[must_use]
    pub fn preauth<I, S>(mut self, accounts: I) -> ServiceBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let accounts = accounts.into_iter().map(Into::into).collect();
        self.last_method("preauth").preauth = Some(accounts);
        self
    }

    /// Declares a name that exists on the service but is not callable: calls get
    /// `not an RPC: ...` instead of `no such RPC: ...`, as for a Python method without
    /// `@rpc`.
    #[must_use]
    pub fn hidden(mut self, name: &str) -> ServiceBuilder {
        if !self.methods.contains_key(name) {
            self.hidden.insert(name.to_owned());
        }
        self
    }

    /// Called once a connection's handshake is over (its verdict sent), with its identity.
    #[must_use]
    pub fn on_new_connection(
        mut self,
        f: impl Fn(&ControlHandle, &ConnectionInfo) + Send + Sync + 'static,
    ) -> ServiceBuilder {
        self.hooks.new_connection = Some(Arc::new(f));
        self
    }

    /// Called once for every connection that had `new_connection` (or was added with
    /// `add_connection`), however it ends: end of stream, reset, framing error, a failed
    /// write, or the server's shutdown. Not called for connections taken out with
    /// `remove_connection`.
    #[must_use]
    pub fn on_lost_connection(
        mut self,
        f: impl Fn(&ControlHandle, &ConnectionInfo) + Send + Sync + 'static,
    ) -> ServiceBuilder {
        self.hooks.lost_connection = Some(Arc::new(f));
        self
    }

    /// Called when the server has been quiet (no connection accepted, no frame received)
    /// for the `Control`'s interval.
    #[must_use]
    pub fn on_idle(mut self, f: impl Fn(&ControlHandle) + Send + Sync + 'static) -> ServiceBuilder {
        self.hooks.idle = Some(Arc::new(f));
        self
    }

    /// Called once when the server has stopped, with the reason, after every connection
    /// is closed.
    #[must_use]
    pub fn on_shutdown(
        mut self,
        f: impl Fn(&ControlHandle, &Stopped) + Send + Sync + 'static,
    ) -> ServiceBuilder {
        self.hooks.shutdown = Some(Arc::new(f));
        self
    }

    /// Called from the event loop when a process deferred with
    /// [`ControlHandle::join_later`] has ended and been reaped, with its pid and status
    /// (the original's `joined_process(pid, status)`; [`ExitStatus::raw`] gives the raw
    /// wait status).
    #[must_use]
    pub fn on_joined_process(
        mut self,
        f: impl Fn(&ControlHandle, Pid, ExitStatus) + Send + Sync + 'static,
    ) -> ServiceBuilder {
        self.hooks.joined_process = Some(Arc::new(f));
        self
    }

    /// Adds the service's own state to hickup dumps (SIGUSR1): the text returned goes
    /// under `service state:`. Leave secrets out.
    #[must_use]
    pub fn on_hickup(
        mut self,
        f: impl Fn(&ControlHandle) -> String + Send + Sync + 'static,
    ) -> ServiceBuilder {
        self.hooks.hickup = Some(Arc::new(f));
        self
    }

    /// The service.
    pub fn build(mut self) -> Service {
        if !self.methods.contains_key(LIST_METHODS) {
            let mut list: Vec<MethodInfo> = self.methods.values().map(Method::info).collect();
            list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            let list = Arc::new(list);
            let handler = Raw(move |_: Context, _: RawArgs| {
                let list = Vec::clone(&list);
                async move { Ok(list) }
            });
            let name: Arc<str> = Arc::from(LIST_METHODS);
            self.methods.insert(
                name.clone(),
                Method {
                    name,
                    auth: false,
                    preauth: None,
                    handler: Box::new(handler),
                    listing: true,
                },
            );
        }
        Service(Arc::new(Inner {
            name: self.name,
            methods: self.methods,
            hidden: self.hidden,
            hooks: self.hooks,
        }))
    }
}

/// Runs a future and turns a panic inside it into an exception reply, so a method that
/// panics cannot take its connection down.
pub(crate) struct CatchPanic<F>(pub(crate) F);

impl<F: Future<Output = RpcResult<Value>> + Unpin> Future for CatchPanic<F> {
    type Output = RpcResult<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Poll::Ready(Err(AveException::custom(
                    "Exception",
                    format!("INTERNAL ERROR: the method panicked: {text}"),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(vargs: Value, kwargs: Value) -> RawArgs {
        RawArgs {
            vargs: vargs.as_array().unwrap().clone(),
            kwargs: kwargs.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn binding_like_python() {
        let p = params(["details"]).optional(["depth"]);
        assert_eq!(p.bind("f", args(json!([1]), json!({}))).unwrap(), vec![json!(1), Value::Null]);
        assert_eq!(
            p.bind("f", args(json!([]), json!({"depth": 3, "details": 1}))).unwrap(),
            vec![json!(1), json!(3)]
        );
        let message = |r: Result<Vec<Value>, AveException>| {
            let e = r.unwrap_err();
            assert_eq!(e.type_name(), "TypeError");
            assert_eq!(e.trace(), Some(vec![]));
            e.message().into_owned()
        };
        assert_eq!(
            message(p.bind("f", args(json!([1, 2, 3]), json!({})))),
            "f() takes from 1 to 2 positional arguments but 3 were given"
        );
        assert_eq!(
            message(params(["m"]).bind("upper", args(json!([]), json!({})))),
            "upper() missing 1 required positional argument: 'm'"
        );
        assert_eq!(
            message(params(["a", "b", "c"]).bind("g", args(json!([]), json!({})))),
            "g() missing 3 required positional arguments: 'a', 'b' and 'c'"
        );
        assert_eq!(
            message(params(["m"]).bind("h", args(json!(["x", "y"]), json!({})))),
            "h() takes 1 positional argument but 2 were given"
        );
        assert_eq!(
            message(params(["m"]).bind("h", args(json!([]), json!({"n": 1})))),
            "h() got an unexpected keyword argument 'n'"
        );
        assert_eq!(
            message(params(["m"]).bind("h", args(json!([1]), json!({"m": 1})))),
            "h() got multiple values for argument 'm'"
        );
        assert!(Params::none().bind("z", RawArgs::default()).unwrap().is_empty());
    }

    #[test]
    fn builder_records_access_rules() {
        let service = Service::builder("s")
            .rpc("a", Params::none(), |_, ()| async { Ok(1) })
            .auth()
            .rpc("b", Params::none(), |_, ()| async { Ok(2) })
            .preauth(["admin", "root"])
            .hidden("c")
            .build();
        assert!(service.method("a").unwrap().auth);
        assert_eq!(
            service.method("b").unwrap().preauth.as_deref(),
            Some(&["admin".to_owned(), "root".to_owned()][..])
        );
        assert!(service.is_hidden("c"));
        let guarded = Service::builder("s")
            .rpc("a", Params::none(), |_, ()| async { Ok(1) })
            .rpc("b", Params::none(), |_, ()| async { Ok(2) })
            .require_auth(["b", "missing"])
            .build();
        assert!(!guarded.method("a").unwrap().auth);
        assert!(guarded.method("b").unwrap().auth);
        assert!(!guarded.has_method("missing"));
        assert!(service.is_hidden("stop"));
        assert!(!service.is_hidden("a"));
        assert_eq!(service.method_names(), ["a", "b"]);
        let listed = service.methods();
        assert_eq!(listed.len(), 2);
        assert_eq!((listed[0].name.as_str(), listed[0].auth), ("a", true));
        assert_eq!(
            listed[1].preauth.as_deref(),
            Some(&["admin".to_owned(), "root".to_owned()][..])
        );
        assert_eq!(listed[1].params.as_deref(), Some(&[][..]));
        // The listing is callable, and not listed.
        assert!(service.has_method(LIST_METHODS));
        assert!(service.method(LIST_METHODS).unwrap().is_listing());
    }
}
