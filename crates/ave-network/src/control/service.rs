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
//!
//! The binding of arguments to parameters is in `service/params.rs`, the [`Context`] and
//! the handlers that call a method in `service/handler.rs`; both are re-exported here.

mod handler;
mod params;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub(crate) use crate::control::service::handler::CatchPanic;
pub use crate::control::service::{
    handler::{Context, RpcResult},
    params::{Params, RawArgs, params, type_error},
};
use crate::{
    control::{
        ConnectionInfo, ControlHandle, Stopped,
        service::handler::{Handler, Raw, Typed},
    },
    process::{ExitStatus, Pid},
};

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
        let handler = Typed::new(name, params, f);
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

#[cfg(test)]
mod tests {
    use super::*;

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
