//! AVE networking: framed connections, the challenge handshake, the [`Control`] RPC
//! server and the [`RemoteControl`] client, wire-compatible with the original Python AVE
//! peers in both directions.
//!
//! Most users reach this crate through the facade, as `ave::network`.
//!
//! One module per subsystem of the original (`ave.network.*`), listed from the bottom up;
//! a module only uses the modules above it (`cargo xtask tidy` checks it):
//!
//! - [`wire`]: the byte formats both sides share. [`wire::frame`]: the 4-byte big-endian
//!   length framing, with a size limit enforced before anything is allocated;
//!   [`wire::json`]: the JSON dialect of Python 2 peers (`NaN`, lone surrogates, ASCII
//!   output); [`wire::handshake`]: `#CHALLENGE#` + salt, HMAC-MD5 (and opt-in
//!   HMAC-SHA256), the key table and the `preauth` rule.
//! - [`connection`]: [`connection::Connection`] (tokio) and
//!   [`connection::BlockingConnection`] (std), framed connections whose partial input and
//!   output survive timeouts; [`Address`], [`connection::find_free_port`],
//!   [`connection::bind`], keepalive.
//! - [`client`]: [`RemoteControl`] and [`BlockingRemoteControl`], the clients, with lazy
//!   connects, optimistic retries, one-way calls and the original's exception rebuilding.
//! - [`process`]: [`Process`], a function run in a forked child, optionally daemonized and
//!   synchronized, with typed joins ([`process::ExitStatus`]), a parent-death signal and
//!   kernel names; [`process::Daemon`] adds a pid file; [`process::Pipe`] carries framed
//!   JSON between processes. See `ave::guide::processes`.
//! - [`fdtx`]: open descriptors passed over Unix sockets, the original's `FdTx`.
//! - [`control`]: [`Control`], the server, and [`Service`], a table of RPC methods
//!   declared with a typed builder, their access rules (`auth`, `preauth`) and hooks. Every
//!   connection has its own task, so a slow call delays only its own connection; requests
//!   are validated in the original's order with its texts; `Exit` is answered and shuts
//!   the server down cleanly. A [`Control`] runs in a child with
//!   [`Control::into_process`], reaps children from its event loop
//!   ([`control::ControlHandle::join_later`]) and writes hickup dumps on SIGUSR1
//!   ([`control::ControlHandle::hickup`]).
//! - [`handover`]: a new process takes over a running `Control`'s listener and live
//!   connections, and no client notices (`ave serve --replace`,
//!   `ave::guide::live_restart`).
//! - [`diagnostic`]: the original test server's RPCs, served by `ave serve`.
//!
//! The crate root re-exports the everyday types: [`Address`], [`Control`], [`Service`],
//! [`RemoteControl`], [`BlockingRemoteControl`], [`Process`] and [`Error`].
//!
//! The wire protocol is described in the guide (`ave::guide::rpc_protocol`).
//!
//! # Example
//!
//! ```
//! use ave_network::{
//!     Error, RemoteControl,
//!     control::{Control, Params, Service, params},
//! };
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
mod sync;
mod sys;
pub mod systemd;
pub mod wire;

pub use crate::{
    client::{BlockingRemoteControl, RemoteControl},
    connection::Address,
    control::{Control, Service},
    error::Error,
    process::Process,
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
