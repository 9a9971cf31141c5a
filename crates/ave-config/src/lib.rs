//! AVE's configuration switchboard: the default files under `<home>/.ave/config`,
//! `authkeys.json`, and `/etc/ave/user`.
//!
//! Most users reach this crate through the facade, as `ave::config`.
//!
//! - [`create_default`] writes the eight default files of a home that do not exist yet,
//!   in the original's order and with its contents, atomically, never touching an existing
//!   file; `authkeys.json` gets keys from a cryptographic generator and mode `0600`.
//! - [`load`] reads any configuration file (a JSON object), with the original's error
//!   texts; [`load_authkeys`] and [`load_broker`] read the two files the suite uses itself
//!   into typed values ([`Authkeys`], [`BrokerConfig`]) that keep every key.
//! - [`create_etc`] and [`load_etc`] write and read `/etc/ave/user`, which names the user
//!   AVE services run as ([`EtcUser`]); [`load_etc_at`] reads another path.
//!
//! Differences from the original are listed on each function; all come from section 13 of
//! the specification (world-readable keys, weak random numbers, reverse DNS, non-atomic
//! writes, a silently ignored user argument).
//!
//! # Example
//!
//! ```
//! use ave_config::{DEFAULT_FILES, create_default, load_authkeys};
//!
//! let home = std::env::temp_dir().join(format!("ave-config-doc-{}", std::process::id()));
//! let (created, skipped) = create_default(&home)?;
//! assert_eq!(created.len(), DEFAULT_FILES.len());
//! assert!(skipped.is_empty());
//!
//! let keys = load_authkeys(&home)?;
//! assert_eq!(keys.admin().map(str::len), Some(10));
//!
//! // A second run leaves every file alone.
//! let (created, skipped) = create_default(&home)?;
//! assert!(created.is_empty());
//! assert_eq!(skipped.len(), 8);
//! # std::fs::remove_dir_all(&home)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod defaults;
mod error;
mod etc;
mod load;
mod users;
mod write;

pub use crate::{
    defaults::{DEFAULT_FILES, create_default, rand_authkey},
    error::Error,
    etc::{ETC_USER_PATH, EtcCreated, EtcUser, create_etc, load_etc, load_etc_at},
    load::{
        Authkeys, BrokerConfig, Object, config_dir, key_file_exposure, load, load_authkeys,
        load_broker,
    },
};
