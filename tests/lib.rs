//! Support code shared by the end-to-end tests and the fixture programs of the `tests`
//! package: locating the `ave` binary and the recorded vectors.

use std::path::PathBuf;

/// The workspace root (the parent of this package's folder).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The path of a vector file recorded from the original implementation.
pub fn vector_path(name: &str) -> PathBuf {
    workspace_root().join("tests/data/vectors").join(name)
}
