//! [`TempDir`]: a fresh, empty directory for one test, removed when it is dropped.
//!
//! Every test crate of the workspace used to carry its own copy; this is the one copy. The
//! name is unique without any shared state between processes: it holds a caller's tag, the
//! process id, a per-process counter and the clock's nanoseconds, and the directory is made
//! with a single `mkdir` that fails if the name exists (then the next name is tried), so
//! two tests never share a directory even when nextest runs each in its own process.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// A fresh, empty directory under the system's temporary directory (`$TMPDIR` or `/tmp`),
/// removed with everything in it when dropped.
///
/// Its path is canonical (no symbolic link in it), so it can be compared with paths that
/// programs report (a child's working directory, `/proc/PID/cwd`). Names stay short
/// (`ave-TAG-PID-N-NANOS`) so that Unix sockets fit inside.
///
/// # Panics
///
/// The constructors panic when the directory cannot be made: a test cannot run without it.
///
/// # Example
///
/// ```
/// use ave_test_support::TempDir;
///
/// let dir = TempDir::new("doc");
/// std::fs::write(dir.join("file"), "text").unwrap();
/// assert_eq!(std::fs::read_to_string(dir.path().join("file")).unwrap(), "text");
/// let path = dir.path().to_owned();
/// drop(dir);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Makes a new directory whose name starts with `ave-{tag}-`; its mode is the default
    /// for new directories (0o777 less the umask).
    ///
    /// # Panics
    ///
    /// If the directory cannot be made.
    #[track_caller]
    pub fn new(tag: &str) -> TempDir {
        TempDir::create_in(&std::env::temp_dir(), tag).expect("make a temporary directory")
    }

    /// Like [`TempDir::new`], then sets the directory's permission bits to `mode`: for
    /// example `0o755` when a program running as another user (after a privilege drop)
    /// must enter it, whatever the umask.
    ///
    /// # Panics
    ///
    /// If the directory cannot be made or its mode cannot be set.
    #[track_caller]
    pub fn with_mode(tag: &str, mode: u32) -> TempDir {
        let dir = TempDir::new(tag);
        dir.set_mode(mode);
        dir
    }

    /// Makes the directory inside `parent`.
    ///
    /// # Errors
    ///
    /// The error of `mkdir` (other than "exists", which moves on to the next name) or of
    /// resolving the new directory's canonical path.
    pub fn create_in(parent: &Path, tag: &str) -> io::Result<TempDir> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let names = std::iter::repeat_with(|| {
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let nanos =
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            parent.join(format!("ave-{tag}-{}-{n}-{nanos:x}", std::process::id()))
        });
        let path = make_first_free(names)?;
        // Owned from here on: a failure below still removes the directory.
        let mut dir = TempDir { path, keep: false };
        dir.path = dir.path.canonicalize()?;
        Ok(dir)
    }

    /// The directory's (canonical) path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path` inside the directory (nothing is created).
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        self.path.join(path)
    }

    /// The path as UTF-8, for command-line arguments.
    ///
    /// # Panics
    ///
    /// If the system's temporary directory is not valid UTF-8.
    #[track_caller]
    pub fn to_str(&self) -> &str {
        self.path.to_str().expect("the temporary directory's path is UTF-8")
    }

    /// Sets the directory's permission bits to `mode`.
    ///
    /// # Panics
    ///
    /// If `chmod` fails.
    #[track_caller]
    pub fn set_mode(&self, mode: u32) {
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode))
            .expect("set the temporary directory's mode");
    }

    /// Keeps the directory (it is not removed on drop) and returns its path: for looking
    /// at what a failing test left behind.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

/// Makes the first of `names` that does not exist yet; its path.
fn make_first_free(names: impl IntoIterator<Item = PathBuf>) -> io::Result<PathBuf> {
    for path in names {
        match fs::DirBuilder::new().mode(0o777).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "every candidate name exists"))
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            // Nothing useful to do on failure: a test's leftovers must not fail it.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::tempdir::{TempDir, make_first_free};

    #[test]
    fn directories_are_fresh_distinct_and_removed() {
        let a = TempDir::new("unit");
        let b = TempDir::new("unit");
        assert_ne!(a.path(), b.path());
        for dir in [&a, &b] {
            assert!(dir.path().is_dir());
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            assert_eq!(dir.path(), dir.path().canonicalize().unwrap());
            let name = dir.path().file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with(&format!("ave-unit-{}-", std::process::id())), "{name}");
        }
        std::fs::create_dir_all(a.join("x/y")).unwrap();
        std::fs::write(a.join("x/y/z"), "z").unwrap();
        let (pa, pb) = (a.path().to_owned(), b.path().to_owned());
        drop(a);
        drop(b);
        assert!(!pa.exists(), "a directory with contents is removed");
        assert!(!pb.exists());
    }

    #[test]
    fn an_existing_name_is_skipped_not_reused() {
        let parent = TempDir::new("parent");
        std::fs::create_dir(parent.join("taken")).unwrap();
        std::fs::write(parent.join("taken/mine"), "").unwrap();
        let names = ["taken", "free", "later"].map(|n| parent.join(n));
        assert_eq!(make_first_free(names).unwrap(), parent.join("free"));
        assert!(parent.join("taken/mine").exists(), "the existing directory is left alone");
        assert!(!parent.join("later").exists());
        let err = make_first_free([parent.join("taken")]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        // Many in one parent: none collides with another.
        let many: Vec<TempDir> =
            (0..50).map(|_| TempDir::create_in(parent.path(), "t").unwrap()).collect();
        let mut paths: Vec<_> = many.iter().map(|d| d.path().to_owned()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 50);
    }

    #[test]
    fn create_in_a_missing_parent_is_an_error() {
        let parent = TempDir::new("gone");
        let missing = parent.join("missing");
        let err = TempDir::create_in(&missing, "t").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn mode_and_keep() {
        let dir = TempDir::with_mode("mode", 0o751);
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o751);
        assert_eq!(dir.to_str(), dir.path().to_str().unwrap());
        let kept = dir.keep();
        assert!(kept.is_dir(), "a kept directory outlives its TempDir");
        std::fs::remove_dir(&kept).unwrap();
    }
}
