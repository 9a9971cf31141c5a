//! Keys for `ave serve` and `ave call`, from a file, the environment or a home's
//! `authkeys.json`, so that they need not appear on the command line (where `ps` shows
//! them to every user of the host).
//!
//! A key file holds the key on its first line (a trailing newline is dropped). Like ssh
//! with a private key, a key file that its group or other users may read is refused.
//! No message of this module contains a key.

use std::{
    fmt,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

/// The environment variable that holds the primary key when no key flag is given.
pub(crate) const ENV_AUTHKEY: &str = "AVE_AUTHKEY";

/// Why a key could not be read; the message names the file, never the key.
#[derive(Debug)]
pub(crate) enum KeyError {
    /// The file cannot be read.
    Read { path: PathBuf, source: std::io::Error },
    /// Group or others may read or write the file.
    Exposed { path: PathBuf, mode: u32 },
    /// The file holds no key.
    Empty { path: PathBuf },
    /// The key is not valid UTF-8 text.
    NotText { path: PathBuf },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Read { path, source } => {
                write!(f, "cannot read the key file {}: {source}", path.display())
            }
            KeyError::Exposed { path, mode } => write!(
                f,
                "the key file {0} is accessible by others (mode {mode:04o}); \
                 run \"chmod 600 {0}\"",
                path.display()
            ),
            KeyError::Empty { path } => write!(f, "the key file {} is empty", path.display()),
            KeyError::NotText { path } => {
                write!(f, "the key file {} does not hold UTF-8 text", path.display())
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Reads the key in `path`: its first line, without the line end.
///
/// # Errors
///
/// [`KeyError`] if the file cannot be read, is readable or writable by its group or
/// others, is empty or is not text.
pub(crate) fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let read = |source| KeyError::Read { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed { path: path.to_owned(), mode });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    let text = String::from_utf8(bytes).map_err(|_| KeyError::NotText { path: path.to_owned() })?;
    let key = text.lines().next().unwrap_or_default();
    if key.is_empty() {
        return Err(KeyError::Empty { path: path.to_owned() });
    }
    Ok(key.to_owned())
}

/// The key taken out of the environment by [`take_env_authkey`].
static ENV_KEY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Takes [`ENV_AUTHKEY`] out of the environment, so that no command `ave serve` runs
/// (`run_external`) and no other child inherits the key; [`env_authkey`] returns it.
/// Called first thing in `main`, while the process has one thread.
pub(crate) fn take_env_authkey() {
    let key = crate::sys::take_env(ENV_AUTHKEY).and_then(|k| k.into_string().ok());
    let _ = ENV_KEY.set(key.filter(|k| !k.is_empty()));
}

/// The primary key from the environment ([`ENV_AUTHKEY`]), if it was set and not empty.
pub(crate) fn env_authkey() -> Option<String> {
    ENV_KEY.get().cloned().flatten()
}

/// Splits `NAME=VALUE` of `--alt-key`, `--alt-key-file` and `--kw`.
///
/// # Errors
///
/// A message naming `flag` and `what` (such as `NAME=KEY`), without the value: it may be
/// a key.
pub(crate) fn split_named<'a>(
    flag: &str,
    what: &str,
    spec: &'a str,
) -> Result<(&'a str, &'a str), String> {
    match spec.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name, value)),
        _ => Err(format!("{flag} expects {what} (a name, then '=')")),
    }
}

#[cfg(test)]
mod tests;
