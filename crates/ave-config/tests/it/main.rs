//! Integration tests of ave-config: real files in temporary homes, checked against the
//! recorded defaults of the original (`tests/data/vectors/config-defaults.json`).

mod defaults;
mod etc;
mod load;

use std::path::PathBuf;

pub(crate) use ave_test_support::TempDir;

/// The configuration folder of a temporary home.
pub(crate) fn config_dir(home: &TempDir) -> PathBuf {
    home.join(".ave/config")
}

/// An error and its sources, joined by ": ".
pub(crate) use ave_exceptions::error_chain as chain;

/// The name of the user running the tests.
pub(crate) fn current_user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name
}
