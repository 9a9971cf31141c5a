//! The diagnostic service: the RPCs of the original's test server (`MockControl`), for
//! `ave serve`, demos, interoperability checks and load tests.
//!
//! | RPC | what it does |
//! | --- | --- |
//! | `sync_ping(alt=None)` | returns `alt` if given, otherwise `"pong"` |
//! | `async_ping()` | reports [`Event::Pong`] and returns `null` |
//! | `upper(message)` | returns the message in upper case |
//! | `sleep(seconds)` | waits that long (without blocking other connections) |
//! | `get_pid()` | the server's process id |
//! | `whoami()` | the caller's identity: the key it authenticated with, or `null` |
//! | `whoami_preauth()` | the same, restricted to the accounts `admin` and `root` (`preauth`) |
//! | `auth_only()` | `"secret"`, for authenticated callers only (`auth`) |
//! | `raise_plain_exception(message)` | raises a plain `Exception` |
//! | `raise_ave_exception(details, depth=0)` | raises an `AveException` from `details`, with `depth + 1` trace frames; through a proxee, forwards the call and prefixes the message with `proxied: ` |
//! | `raise_exit(msg="passed to client")` | raises `Exit`: answered, then the server shuts down |
//! | `raise_timeout()` | runs `sleep 10` with a 1 s timeout: a `Timeout` with `cmd` and `out` |
//! | `raise_run_error()` | runs `no_such_exe`: a `RunError` |
//! | `run_external(cmd)` | runs a command on a pty: `[status, output, ""]` |
//! | `stop()` | stops the server (the reply is still delivered) |
//! | `stop_listening()` | closes the listener; existing connections are served on |
//!
//! What a client sizes is bounded by the server's [`Limits`](crate::control::Limits): `depth` by
//! `max_depth`, `seconds` by `max_sleep`, texts by `max_text` (a `ValueError` beyond).
//! These are the original's rules for tests: `ave serve` adds its own policy (which
//! methods need a key) on top.

use std::{fmt, sync::Arc, time::Duration};

use ave_exceptions::{AveException, TraceFrame};
use serde_json::Value;

use crate::{
    Error,
    client::RemoteControl,
    control::service::{Context, Params, RpcResult, Service, ServiceBuilder, params},
    control::{ConnectionInfo, Stopped},
};

/// What the diagnostic service reports, as the original's test server wrote to its pipe.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `async_ping` was called.
    Pong,
    /// The idle hook ran.
    Idle,
    /// A connection finished its handshake.
    NewConnection(ConnectionInfo),
    /// A connection ended.
    LostConnection(ConnectionInfo),
    /// The server stopped.
    Shutdown(Stopped),
}

/// Receives the service's [`Event`]s.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// Options of the diagnostic service.
#[derive(Clone, Default)]
pub struct Options {
    events: Option<EventSink>,
    proxee: Option<Arc<RemoteControl>>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("events", &self.events.is_some())
            .field("proxee", &self.proxee.as_ref().map(|p| p.address().clone()))
            .finish()
    }
}

impl Options {
    /// No event sink, no proxee.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sends every [`Event`] to `sink`.
    #[must_use]
    pub fn events(mut self, sink: impl Fn(Event) + Send + Sync + 'static) -> Options {
        self.events = Some(Arc::new(sink));
        self
    }

    /// Forwards `raise_ave_exception` to another service, as the original's proxy test
    /// server does.
    #[must_use]
    pub fn proxee(mut self, remote: RemoteControl) -> Options {
        self.proxee = Some(Arc::new(remote));
        self
    }
}

/// The diagnostic service.
pub fn service(options: Options) -> Service {
    builder(options).build()
}

/// The diagnostic service's declaration, to extend with more methods.
pub fn builder(options: Options) -> ServiceBuilder {
    let emit = {
        let sink = options.events.clone();
        move |event: Event| {
            if let Some(sink) = &sink {
                sink(event);
            }
        }
    };
    let none = Params::none;
    let pong = emit.clone();
    let on_idle = emit.clone();
    let on_new = emit.clone();
    let on_lost = emit.clone();
    let on_stop = emit;
    let proxee = options.proxee;
    Service::builder("diagnostic")
        .rpc(
            "sync_ping",
            Params::none().optional(["alt"]),
            |_, (alt,): (Option<Value>,)| async move {
                Ok(match alt {
                    None | Some(Value::Null) => Value::from("pong"),
                    Some(alt) => alt,
                })
            },
        )
        .rpc("async_ping", none(), move |_, ()| {
            pong(Event::Pong);
            async { Ok(()) }
        })
        .rpc("upper", params(["message"]), |ctx, (message,): (String,)| async move {
            check_text(&ctx, "message", message.len())?;
            Ok(message.to_uppercase())
        })
        .rpc("sleep", params(["seconds"]), |ctx, (seconds,): (f64,)| async move {
            let pause = Duration::try_from_secs_f64(seconds).map_err(|e| {
                AveException::custom("ValueError", format!("cannot sleep {seconds} seconds: {e}"))
            })?;
            let max = ctx.control().limits().max_sleep;
            if pause > max {
                return Err(AveException::custom(
                    "ValueError",
                    format!("cannot sleep {seconds} seconds: the limit is {} s", max.as_secs_f64()),
                ));
            }
            tokio::time::sleep(pause).await;
            Ok(())
        })
        .rpc("get_pid", none(), |_, ()| async { Ok(std::process::id()) })
        .rpc("whoami", none(), |ctx, ()| async move { Ok(ctx.identity()) })
        .rpc("whoami_preauth", none(), |ctx, ()| async move { Ok(ctx.identity()) })
        .preauth(["admin", "root"])
        .rpc("auth_only", none(), |_, ()| async { Ok("secret") })
        .auth()
        .rpc("raise_plain_exception", params(["message"]), |ctx, (message,): (Value,)| async move {
            let message = text_of(&message);
            check_text(&ctx, "message", message.len())?;
            Err::<(), _>(AveException::custom("Exception", message))
        })
        .rpc(
            "raise_ave_exception",
            params(["details"]).optional(["depth"]),
            move |ctx, (details, depth): (Value, Option<u64>)| {
                let proxee = proxee.clone();
                async move {
                    let depth = depth.unwrap_or(0);
                    let max = ctx.control().limits().max_depth;
                    let depth =
                        u32::try_from(depth).ok().filter(|d| *d <= max).ok_or_else(|| {
                            AveException::custom(
                                "ValueError",
                                format!("depth {depth} is above the limit of {max}"),
                            )
                        })?;
                    raise_ave_exception(proxee.as_deref(), details, depth).await
                }
            },
        )
        .rpc(
            "raise_exit",
            Params::none().optional(["msg"]),
            |ctx, (msg,): (Option<Value>,)| async move {
                let msg = msg.map_or_else(|| "passed to client".to_owned(), |m| text_of(&m));
                check_text(&ctx, "msg", msg.len())?;
                Err::<(), _>(AveException::exit(msg))
            },
        )
        .rpc("raise_timeout", none(), |_, ()| async {
            let options = ave_cmd::Options::new().timeout(Duration::from_secs(1));
            ave_cmd::run_async("sleep 10", &options).await?;
            Ok(())
        })
        .rpc("raise_run_error", none(), |_, ()| async {
            ave_cmd::run_async("no_such_exe", &ave_cmd::Options::new()).await?;
            Ok(())
        })
        .rpc("run_external", params(["cmd"]), |_, (cmd,): (Value,)| async move {
            let argv: ave_cmd::Argv = match cmd {
                Value::String(s) => s.as_str().into(),
                Value::Array(items) => items.iter().map(text_of).collect::<Vec<String>>().into(),
                other => {
                    return Err(AveException::custom(
                        "Exception",
                        format!("cmd must be a string or a list of strings, not {other}"),
                    ));
                }
            };
            let out = ave_cmd::run_async(argv, &ave_cmd::Options::new()).await?;
            Ok((out.legacy_code(), out.text().into_owned(), ""))
        })
        .rpc("stop", none(), |ctx, ()| async move {
            ctx.control().stop();
            Ok(())
        })
        .rpc("stop_listening", none(), |ctx, ()| async move {
            ctx.control().stop_listening().await;
            Ok(())
        })
        .on_idle(move |_| on_idle(Event::Idle))
        .on_new_connection(move |_, info| on_new(Event::NewConnection(info.clone())))
        .on_lost_connection(move |_, info| on_lost(Event::LostConnection(info.clone())))
        .on_shutdown(move |_, stopped| on_stop(Event::Shutdown(stopped.clone())))
}

/// Refuses a text longer than the server's [`max_text`](crate::control::Limits::max_text).
fn check_text(ctx: &Context, what: &str, len: usize) -> RpcResult<()> {
    let max = ctx.control().limits().max_text;
    if len > max {
        return Err(AveException::custom(
            "ValueError",
            format!("{what} of {len} bytes is above the limit of {max}"),
        ));
    }
    Ok(())
}

/// A JSON value as the text Python's `unicode()` would give for it.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => ave_exceptions::python_repr(other),
    }
}

async fn raise_ave_exception(
    proxee: Option<&RemoteControl>,
    details: Value,
    depth: u32,
) -> RpcResult<()> {
    if let Some(proxee) = proxee {
        return match proxee.call("raise_ave_exception", (details, depth)).await {
            Err(Error::Remote(mut e)) => {
                let message = format!("proxied: {}", e.message());
                e.set_field("message", Value::String(message));
                Err(e)
            }
            Err(other) => Err(other.into()),
            Ok(_) => Err(AveException::custom("Exception", "the proxee did not raise")),
        };
    }
    let mut e = AveException::from_details_value(details)
        .map_err(|e| AveException::custom("Exception", e.to_string()))?;
    if !e.has_trace() {
        // One frame per level of the original's recursion, innermost last.
        let (file, line) = e.location().map_or(("diagnostic.rs", 0), |l| (l.file(), l.line()));
        let frames = (0..=depth)
            .map(|_| TraceFrame::new(file, i64::from(line), "raise_ave_exception", None))
            .collect();
        e.set_trace(frames);
    }
    Err(e)
}
