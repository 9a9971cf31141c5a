//! # AVE: the common subsystems of a lab automation suite, in Rust
//!
//! AVE (Sony Mobile's *Automated Verification Environment*) is a lab system: brokers
//! allocate handsets and other equipment to test jobs over a JSON RPC protocol, restart
//! without dropping their clients, and run tools such as `adb` through pseudoterminals.
//! This crate is the facade over the Rust rebuild of its common package, wire-compatible
//! with the original Python peers in both directions, plus an administration client for
//! the TrIPE VPN server.
//!
//! It only re-exports; each module is one crate of the workspace, behind a Cargo feature of
//! the same name (all on by default):
//!
//! | module | crate | what it holds |
//! | --- | --- | --- |
//! | [`exceptions`] | `ave-exceptions` | the exception hierarchy and its wire form |
//! | [`profile`] | `ave-profile` | hashable resource profiles: `match`, `minimize` |
//! | [`config`] | `ave-config` | default config files, authkeys, `/etc/ave/user` |
//! | [`persona`] | `ave-persona` | dropping privileges to a user |
//! | [`cmd`] | `ave-cmd` | the pty command runner |
//! | [`network`] | `ave-network` | framing, the `Control` RPC server, `RemoteControl`, processes, fd transfer |
//! | [`tripe`] | `ave-tripe` | the TrIPE admin client and service provider |
//!
//! # Where to start
//!
//! The [`guide`] module holds the long-form documentation, every example in it compiled and
//! run as a test:
//!
//! | question | guide |
//! | --- | --- |
//! | How do I write a service? | [`guide::writing_a_service`] |
//! | How do I call one, from Rust or a shell? | [`guide::calling_services`] |
//! | How do I restart it without dropping its clients? | [`guide::live_restart`] |
//! | What does a server bound, and what happens at each bound? | [`guide::limits`] |
//! | How do I run `ave serve` under systemd (readiness, socket activation, logs, the package)? | [`guide::systemd`] |
//! | How do I run a service as a process, daemonize it, reap its children? | [`guide::processes`] |
//! | How do I run a command with a timeout? | [`guide::pty_runner`] |
//! | How do I set up config files and drop privileges? | [`guide::config_and_privileges`] |
//! | How do I drive a TrIPE server? | [`guide::tripe`] |
//! | What do exceptions look like on the wire? | [`guide::exceptions`] |
//! | How do resource profiles match? | [`guide::profiles`] |
//! | What exactly goes over the wire? | [`guide::rpc_protocol`] (the protocol reference) |
//! | What of the original is not here, or has another shape? | [`guide::compatibility`] |
//!
//! From a shell, `ave demo` shows the whole suite working on a temporary home, and
//! `ave --help` lists the commands: `ave run`, `ave serve`, `ave call`, `ave config`,
//! `ave tripe`.
//!
//! # First steps
//!
//! Depend on the facade (every module is on by default; `default-features = false` and a
//! list of features keep only what you use) and on tokio for the async parts:
//!
//! ```toml
//! [dependencies]
//! ave = { path = "../ave/crates/ave" }  # where this workspace is checked out
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! A complete program: a service of your own on a free loopback port, a client that calls
//! it, and a clean stop. `cargo run -p ave-network --example service` and
//! `--example process` (a process that synchronizes and is joined) go further.
//!
//! ```
//! use std::time::Duration;
//!
//! use ave::network::{
//!     client::RemoteControl,
//!     connection::Address,
//!     control::{Control, Params, Service, params},
//! };
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let service = Service::builder("greeter")
//!         .rpc("greet", params(["name"]), |_ctx, (name,): (String,)| async move {
//!             Ok(format!("hello, {name}"))
//!         })
//!         .rpc("stop", Params::none(), |ctx, ()| async move {
//!             ctx.control().stop(); // the reply is still delivered
//!             Ok(())
//!         })
//!         .auth() // only for callers with the key
//!         .build();
//!     let control = Control::builder(service).authkey(Some("s3cret")).build()?;
//!     let address = Address::new("127.0.0.1", control.port());
//!     let server = tokio::spawn(control.run());
//!
//!     let client = RemoteControl::new(address, Some("s3cret"))
//!         .with_timeout(Some(Duration::from_secs(10)));
//!     assert_eq!(client.call("greet", ("lab",)).await?, "hello, lab");
//!     client.call("stop", ()).await?;
//!     server.await??;
//!     Ok(())
//! }
//! ```
//!
//! # Compatibility
//!
//! The wire formats are the original's, byte for byte where it matters (framing, the
//! `#CHALLENGE#` handshake with HMAC-MD5, request and response shapes, exception `type`
//! names and fields, the fixed texts of validation errors, the fd-transfer message
//! convention), so unmodified Python 2 AVE clients and servers work with these crates in
//! both directions. What the original got wrong is fixed where no wire contract forbids it:
//! frames are bounded, digests compared in constant time, keys come from a cryptographic
//! generator, a timeout ends a command's whole session, a forked child never runs its
//! parent's code, and connections are served concurrently.
//!
//! # Example
//!
//! ```
//! use ave::exceptions::{AveException, Kind};
//!
//! // What a service raises is what its client gets back, every field intact.
//! let raised = AveException::offline("handset went away")
//!     .with_field("serial", serde_json::json!("CB5A1234"));
//! let received = AveException::from_wire(&raised.to_wire());
//! assert_eq!(received.kind(), Kind::Offline);
//! assert_eq!(received.field("serial"), raised.field("serial"));
//! ```
//!
//! The network layer keeps the original's module names (each module's page has an example):
//!
//! ```
//! use ave::network::{
//!     client::RemoteControl,
//!     connection::BlockingConnection,
//!     control::{Control, ControlBuilder, Service},
//!     fdtx::FdTx,
//!     handover::{self, HandoverSocket},
//!     process::{Daemon, Pipe, Process},
//! };
//!
//! let service: Service = Service::builder("paths").build();
//! let builder: ControlBuilder = Control::builder(service);
//! let control: Control = builder.build()?;
//! let _client = RemoteControl::new(("127.0.0.1", control.port()), None);
//! let (_ours, _theirs): (FdTx, FdTx) = FdTx::pair()?;
//! let _pipe: Pipe = Pipe::new()?;
//! let _socket = handover::socket_path("/home/ave".as_ref(), "ave-serve");
//! let _types = (std::any::type_name::<BlockingConnection>(), std::any::type_name::<Process>());
//! let _daemon = std::any::type_name::<Daemon>();
//! let _handover = std::any::type_name::<HandoverSocket>();
//! # Ok::<(), ave::network::Error>(())
//! ```

#[cfg(feature = "cmd")]
#[doc(inline)]
pub use ave_cmd as cmd;
#[cfg(feature = "config")]
#[doc(inline)]
pub use ave_config as config;
#[cfg(feature = "exceptions")]
#[doc(inline)]
pub use ave_exceptions as exceptions;
#[cfg(feature = "network")]
#[doc(inline)]
pub use ave_network as network;
#[cfg(feature = "persona")]
#[doc(inline)]
pub use ave_persona as persona;
#[cfg(feature = "profile")]
#[doc(inline)]
pub use ave_profile as profile;
#[cfg(feature = "tripe")]
#[doc(inline)]
pub use ave_tripe as tripe;

pub mod guide {
    //! Long-form documentation: the Markdown files of the workspace's `docs/` folder,
    //! published here so that their examples are compiled and run as doctests.

    #[cfg(feature = "network")]
    pub mod calling_services {
        #![doc = include_str!("../../../docs/calling-services.md")]
    }

    #[cfg(all(feature = "cmd", feature = "config", feature = "exceptions", feature = "network"))]
    pub mod compatibility {
        #![doc = include_str!("../../../docs/compatibility.md")]
    }

    #[cfg(all(feature = "config", feature = "persona"))]
    pub mod config_and_privileges {
        #![doc = include_str!("../../../docs/config-and-privileges.md")]
    }

    #[cfg(feature = "exceptions")]
    pub mod exceptions {
        #![doc = include_str!("../../../docs/exceptions.md")]
    }

    #[cfg(feature = "network")]
    pub mod limits {
        #![doc = include_str!("../../../docs/limits.md")]
    }

    #[cfg(feature = "network")]
    pub mod live_restart {
        #![doc = include_str!("../../../docs/live-restart.md")]
    }

    #[cfg(feature = "network")]
    pub mod systemd {
        #![doc = include_str!("../../../docs/systemd.md")]
    }

    #[cfg(feature = "network")]
    pub mod processes {
        #![doc = include_str!("../../../docs/processes.md")]
    }

    #[cfg(feature = "profile")]
    pub mod profiles {
        #![doc = include_str!("../../../docs/profiles.md")]
    }

    #[cfg(all(feature = "cmd", feature = "exceptions"))]
    pub mod pty_runner {
        #![doc = include_str!("../../../docs/pty-runner.md")]
    }

    #[cfg(feature = "network")]
    pub mod rpc_protocol {
        #![doc = include_str!("../../../docs/rpc-protocol.md")]
    }

    #[cfg(feature = "tripe")]
    pub mod tripe {
        #![doc = include_str!("../../../docs/tripe.md")]
    }

    #[cfg(all(feature = "network", feature = "exceptions"))]
    pub mod writing_a_service {
        #![doc = include_str!("../../../docs/writing-a-service.md")]
    }
}
