//! AVE networking: framed connections, the challenge handshake, the [`Control`] RPC
//! server and the [`RemoteControl`] client, wire-compatible with the original Python AVE
//! peers in both directions.
//!
//! Most users reach this crate through the facade, as `ave::network`.
//!
//! - [`frame`]: the 4-byte big-endian length framing, with a size limit enforced before
//!   anything is allocated.
//! - [`json`]: the JSON dialect of Python 2 peers (`NaN`, lone surrogates, ASCII output).
//! - [`handshake`]: `#CHALLENGE#` + salt, HMAC-MD5 (and opt-in HMAC-SHA256), the key
//!   table and the `preauth` rule.
//! - [`Connection`] (tokio) and [`BlockingConnection`] (std): framed connections whose
//!   partial input and output survive timeouts; [`find_free_port`], [`bind`].
//! - [`Service`]: a table of RPC methods declared with a typed builder, their access rules
//!   (`auth`, `preauth`) and hooks.
//! - [`Control`]: the server. Every connection has its own task, so a slow call delays
//!   only its own connection; requests are validated in the original's order with its
//!   texts; `Exit` is answered and shuts the server down cleanly.
//! - [`RemoteControl`] and [`BlockingRemoteControl`]: the clients, with lazy connects,
//!   optimistic retries, one-way calls and the original's exception rebuilding.
//! - [`diagnostic`]: the original test server's RPCs, served by `ave serve`.
//! - [`fdtx`]: open descriptors passed over Unix sockets, the original's `FdTx`.
//! - [`handover`]: a new process takes over a running `Control`'s listener and live
//!   connections, and no client notices (`ave serve --replace`,
//!   `ave::guide::live_restart`).
//! - [`Process`]: a function run in a forked child, optionally daemonized and
//!   synchronized, with typed joins ([`ExitStatus`]), a parent-death signal and kernel
//!   names; [`Daemon`] adds a pid file; [`Pipe`] carries framed JSON between processes.
//!   A [`Control`] runs in a child with [`Control::into_process`], reaps children from its
//!   event loop ([`ControlHandle::join_later`]) and writes hickup dumps on SIGUSR1
//!   ([`ControlHandle::hickup`]). See `ave::guide::processes`.
//!
//! The wire protocol is described in the guide (`ave::guide::rpc_protocol`).
//!
//! # Example
//!
//! ```
//! use ave_network::{Control, Error, Params, RemoteControl, Service, params};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let service = Service::builder("greeter")
//!     .rpc("upper", params(["message"]), |_ctx, (message,): (String,)| async move {
//!         Ok(message.to_uppercase())
//!     })
//!     .rpc("whoami", Params::none(), |ctx, ()| async move { Ok(ctx.identity()) })
//!     .auth()
//!     .build();
//! let control = Control::builder(service).authkey(Some("secret")).build()?;
//! let port = control.port();
//! let handle = control.handle();
//! let server = tokio::spawn(control.run());
//!
//! let client = RemoteControl::new(("127.0.0.1", port), Some("secret"));
//! assert_eq!(client.call("upper", ("hello",)).await?, "HELLO");
//! assert_eq!(client.call("whoami", ()).await?, "secret");
//!
//! // A client with the wrong key is still served, without an identity.
//! let stranger = RemoteControl::new(("127.0.0.1", port), Some("guess"));
//! let refused = stranger.call("whoami", ()).await.unwrap_err();
//! assert_eq!(refused.remote().unwrap().message(), "not authenticated to make this call");
//!
//! handle.stop();
//! server.await.expect("the server task")?;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod connection;
pub mod control;
pub mod diagnostic;
mod error;
pub mod fdtx;
pub mod handover;
pub mod process;
mod sys;
pub mod systemd;
pub mod wire;

pub use crate::wire::{frame, handshake, json};
pub use crate::{
    client::{BlockingRemoteControl, Call, ONE_WAY_BUDGET, RemoteControl},
    connection::{
        Address, BlockingConnection, Connection, ConnectionParts, FreePort, KEEPALIVE_COUNT,
        KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, LOCALHOST, OPTIMIST_RETRY, bind, configure_socket,
        find_free_port, find_free_port_in, set_buffer_sizes,
    },
    control::{
        ConnectionId, ConnectionInfo, ConnectionPhase, Context, Control, ControlBuilder,
        ControlHandle, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LINGER, DEFAULT_MAX_CONNECTION_OUTPUT,
        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ECHO, DEFAULT_MAX_HANDSHAKE_FRAME,
        DEFAULT_MAX_SLEEP, DEFAULT_MAX_TEXT, DEFAULT_MAX_TOTAL_OUTPUT, DetachedConnection, Limits,
        MIN_INTERVAL, Params, RawArgs, RpcResult, Service, ServiceBuilder, Stopped, params,
        type_error,
    },
    error::Error,
    process::{
        ChildContext, DEFAULT_STOP_TIMEOUT, DEFAULT_SYNC_TIMEOUT, Daemon, ExitStatus, FdSet,
        MAX_KERNEL_NAME, Pid, Pipe, Process, Signal, Target, TargetError, Termination,
    },
};

/// Raises this process's soft limit on open descriptors to its hard limit, so a server can
/// hold many connections, and returns the new limit.
///
/// # Errors
///
/// [`Error::Io`] if the limit cannot be read or changed.
pub fn raise_fd_limit() -> Result<u64, Error> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| Error::io("read the descriptor limit", e.into()))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| Error::io("raise the descriptor limit", e.into()))?;
    }
    Ok(hard)
}
