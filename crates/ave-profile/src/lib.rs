//! AVE resource profiles: JSON objects that describe equipment and requests for it,
//! usable as hash-map keys, with `match` and per-kind `minimize`.
//!
//! Most users reach this crate through the facade, as `ave::profile`.
//!
//! - [`Profile`]: the map, with Python's equality (`1 == 1.0 == true`) and a hash that agrees
//!   with it, serialized as a plain JSON object.
//! - [`ProfileKind`]: what a kind of equipment defines: its `type` name, the key that makes
//!   two profiles the same equipment ([`Identity`]), how it matches a request, and which
//!   keys [`minimize`](ProfileKind::minimize) keeps.
//! - [`Registry`]: kinds by `type` name. [`Registry::standard`] holds the original's
//!   subclasses (`handset`, `relay`, `board`, `workspace`, `testdrive`, `beryllium`,
//!   `wlan`, `powermeter`, `broker`); [`Registry::create`] is the original's `factory`.
//!
//! # Example
//!
//! ```
//! use ave_profile::{Profile, Registry};
//! use serde_json::json;
//!
//! let handset = Registry::standard().create(json!({
//!     "type": "handset", "serial": "CB5A1234", "sysfs_path": "/sys/1-1",
//!     "pretty": "Xperia", "power_state": "boot_completed", "product.model": "G8341",
//!     "workstation": "lab-7", "platform": "android", "usb.vid": "0fce", "imei": "35...",
//! }))?;
//!
//! // A client asks for any booted G8341.
//! let request = Profile::from_value(json!({"type": "handset", "product.model": "G8341"}))?;
//! assert!(handset.matches(&request));
//!
//! // The broker hands the session only what matters: mandatory keys plus the requested ones.
//! let minimal = handset.minimize(Some(&request))?;
//! assert!(minimal.contains_key("serial"));
//! assert!(!minimal.contains_key("imei"));
//!
//! // Profiles key hash maps; `identity` says which ones are the same handset.
//! let mut owners = std::collections::HashMap::new();
//! owners.insert(handset.clone(), "job-1");
//! assert_eq!(handset.identity(), minimal.identity());
//! # Ok::<(), ave_profile::Error>(())
//! ```

mod error;
mod kinds;
mod profile;
mod registry;
mod value;

pub use crate::{
    error::Error,
    kinds::{Beryllium, Board, Broker, Handset, Powermeter, Relay, TestDrive, Wlan, Workspace},
    profile::Profile,
    registry::{Identity, ProfileKind, Registry},
};
