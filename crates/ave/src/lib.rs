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
//! The [`guide`] module holds the long-form documentation: how the pieces fit together and
//! the wire protocols, with compiled examples.
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

    pub mod config_and_privileges {
        #![doc = include_str!("../../../docs/config-and-privileges.md")]
    }

    pub mod exceptions {
        #![doc = include_str!("../../../docs/exceptions.md")]
    }

    #[cfg(feature = "network")]
    pub mod live_restart {
        #![doc = include_str!("../../../docs/live-restart.md")]
    }

    #[cfg(feature = "network")]
    pub mod processes {
        #![doc = include_str!("../../../docs/processes.md")]
    }

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
