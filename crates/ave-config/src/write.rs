//! Atomic file creation: a temporary file in the same directory, then a link or rename
//! that never replaces a file that appeared in the meantime.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// What [`write_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The file was written.
    Written,
    /// A file (or a symbolic link, even a dangling one) of that name existed; nothing
    /// changed.
    Existed,
}

/// Whether [`write_new`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Never: an existing name is left alone.
    Never,
    /// Yes: the caller has decided the existing file may go.
    Yes,
}

/// Writes `contents` to `path` with permission bits `mode` (reduced by the umask), so that
/// readers see either no file or the whole file.
///
/// With [`Replace::Never`], an existing `path` is never touched, even one that appears
/// while this function runs. The file's contents reach the disk before its name appears;
/// the name itself is made durable by [`sync_dir`].
pub(crate) fn write_new(
    path: &Path,
    contents: &[u8],
    mode: u32,
    replace: Replace,
) -> io::Result<Outcome> {
    if replace == Replace::Never && fs::symlink_metadata(path).is_ok() {
        return Ok(Outcome::Existed);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (temp, mut file) = create_temp(dir, path, mode)?;
    let result = (|| {
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        match replace {
            Replace::Yes => fs::rename(&temp, path).map(|()| Outcome::Written),
            Replace::Never => publish_no_replace(&temp, path),
        }
    })();
    // After a link (or on failure) the temporary name is still there; after a rename it is
    // gone and this fails harmlessly.
    let _ = fs::remove_file(&temp);
    result
}

/// Makes the directory entries written into `dir` durable: call it once after a series
/// of [`write_new`]. Failure loses nothing that is not lost anyway, so it is ignored.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Gives the finished temporary file its final name unless that name exists.
fn publish_no_replace(temp: &Path, path: &Path) -> io::Result<Outcome> {
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(Outcome::Written),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Outcome::Existed),
        Err(link_error) => rename_no_replace(temp, path).map_err(|_| link_error),
    }
}

/// For file systems without hard links: `renameat2(RENAME_NOREPLACE)` where it exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_no_replace(temp: &Path, path: &Path) -> io::Result<Outcome> {
    use nix::{
        errno::Errno,
        fcntl::{AT_FDCWD, RenameFlags, renameat2},
    };
    match renameat2(AT_FDCWD, temp, AT_FDCWD, path, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(Outcome::Written),
        Err(Errno::EEXIST) => Ok(Outcome::Existed),
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_no_replace(_temp: &Path, _path: &Path) -> io::Result<Outcome> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Creates a new, uniquely named hidden file next to `path`.
fn create_temp(dir: &Path, path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut attempt = 0u32;
    loop {
        let mut salt = [0u8; 6];
        // A clash only costs another attempt, so a failing generator is not fatal here.
        let _ = getrandom::fill(&mut salt);
        let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
        let temp = dir.join(format!(".{base}.{}.{salt}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use ave_test_support::TempDir;

    use super::*;

    fn scratch(name: &str) -> TempDir {
        TempDir::new(&format!("config-write-{name}"))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_a_new_file_with_its_mode_and_no_leftovers() {
        let dir = scratch("new");
        let path = dir.join("a.json");
        assert_eq!(write_new(&path, b"{}\n", 0o600, Replace::Never).unwrap(), Outcome::Written);
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    #[test]
    fn never_touches_an_existing_file_or_dangling_link() {
        let dir = scratch("existing");
        let path = dir.join("a.json");
        fs::write(&path, "mine").unwrap();
        assert_eq!(write_new(&path, b"{}", 0o644, Replace::Never).unwrap(), Outcome::Existed);
        assert_eq!(fs::read_to_string(&path).unwrap(), "mine");

        let link = dir.join("b.json");
        std::os::unix::fs::symlink(dir.join("nowhere"), &link).unwrap();
        assert_eq!(write_new(&link, b"{}", 0o644, Replace::Never).unwrap(), Outcome::Existed);
        assert!(!dir.join("nowhere").exists());
        assert_eq!(names(dir.path()), ["a.json", "b.json"]);
    }

    #[test]
    fn a_file_appearing_meanwhile_is_not_clobbered() {
        // The race window is between the existence check and the link; exercise the
        // link step directly with a name that exists by then.
        let dir = scratch("race");
        let path = dir.join("a.json");
        let (temp, mut file) = create_temp(dir.path(), &path, 0o644).unwrap();
        file.write_all(b"ours").unwrap();
        drop(file);
        fs::write(&path, "theirs").unwrap();
        assert_eq!(publish_no_replace(&temp, &path).unwrap(), Outcome::Existed);
        assert_eq!(fs::read_to_string(&path).unwrap(), "theirs");
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_eq!(rename_no_replace(&temp, &path).unwrap(), Outcome::Existed);
        assert_eq!(fs::read_to_string(&path).unwrap(), "theirs");
        fs::remove_file(&temp).unwrap();
    }

    #[test]
    fn replace_overwrites_atomically() {
        let dir = scratch("replace");
        let path = dir.join("a.json");
        fs::write(&path, "").unwrap();
        assert_eq!(write_new(&path, b"{}\n", 0o644, Replace::Yes).unwrap(), Outcome::Written);
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = scratch("nodir");
        let err = write_new(&dir.join("no/a.json"), b"{}", 0o644, Replace::Never).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
