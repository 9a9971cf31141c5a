//! Integration tests of ave-config: real files in temporary homes, checked against the
//! recorded defaults of the original (`tests/data/vectors/config-defaults.json`).

mod defaults;
mod etc;
mod load;

use std::path::{Path, PathBuf};

/// A temporary directory, removed when dropped.
pub(crate) struct TempHome(PathBuf);

impl TempHome {
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ave-config-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.0.join(".ave/config")
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An error and its sources, joined by ": ".
pub(crate) use ave_exceptions::error_chain as chain;

/// The name of the user running the tests.
pub(crate) fn current_user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid()).unwrap().unwrap().name
}
