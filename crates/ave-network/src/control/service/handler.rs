//! How a method is called: the [`Context`] it receives, and the type-erased handlers that
//! bind and deserialize its arguments, run it, and serialize its result (a panic becomes
//! an exception reply).

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
};

use ave_exceptions::AveException;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::control::{
    ConnShared, ConnectionId, ControlHandle,
    service::params::{Params, RawArgs, type_error},
};

/// What an RPC method returns: a value, or the exception its caller receives.
pub type RpcResult<T> = Result<T, AveException>;

/// A boxed future, as handlers are stored.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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

/// A method whose arguments are bound to its parameters and deserialized as `A`.
pub(crate) struct Typed<F, A> {
    name: String,
    params: Params,
    f: F,
    _args: PhantomData<fn(A)>,
}

impl<F, A> Typed<F, A> {
    /// The handler of the method `name`, calling `f` with the arguments bound to `params`.
    pub(crate) fn new(name: &str, params: Params, f: F) -> Typed<F, A> {
        Typed { name: name.to_owned(), params, f, _args: PhantomData }
    }
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

/// A method that receives the arguments as they came.
pub(crate) struct Raw<F>(pub(crate) F);

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
