//! The default configuration files and `create_default`.

use std::{
    fs::DirBuilder,
    io,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    Error,
    load::config_dir,
    write::{Outcome, Replace, sync_dir, write_new},
};

/// The files [`create_default`] writes, in the order it writes them (the original's).
pub const DEFAULT_FILES: [&str; 8] = [
    "broker.json",
    "usbrel64.json",
    "authkeys.json",
    "jenkins.json",
    "workspace.json",
    "gerrit.json",
    "panotti.json",
    "handset.json",
];

/// Writes the default configuration files of `home` that do not exist yet, in
/// `<home>/.ave/config`, and returns the paths it created and the paths it skipped
/// because they existed, each in [`DEFAULT_FILES`] order.
///
/// Better than the original:
/// - an existing file is never touched, not even one that appears while this runs, and
///   each file appears whole or not at all (written to a temporary file, then linked);
/// - `authkeys.json` gets keys from the system's cryptographic generator and mode `0600`;
///   the other files get mode `0644` (both reduced by the umask);
/// - the broker's host name is this host's name as the kernel reports it (`localhost` if
///   it has none) instead of a reverse DNS lookup, which made the original fail halfway
///   on machines without DNS;
/// - every file ends with a newline.
///
/// # Errors
///
/// [`Error::Create`] if the directory or a file cannot be created (the files before it
/// stay), and [`Error::Random`] if the random generator fails.
pub fn create_default(home: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Error> {
    let dir = config_dir(home);
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|source| Error::Create { path: dir.clone(), source })?;
    let host = host_name();
    let mut created = Vec::new();
    let mut skipped = Vec::new();
    for name in DEFAULT_FILES {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            skipped.push(path);
            continue;
        }
        let (text, mode) = contents(name, &host)?;
        match write_new(&path, text.as_bytes(), mode, Replace::Never) {
            Ok(Outcome::Written) => {
                tracing::info!(path = %path.display(), "created");
                created.push(path);
            }
            Ok(Outcome::Existed) => skipped.push(path),
            Err(source) => {
                sync_dir(&dir);
                return Err(Error::Create { path, source });
            }
        }
    }
    if !created.is_empty() {
        sync_dir(&dir);
    }
    Ok((created, skipped))
}

/// A new key: 10 decimal digits, uniformly chosen with the system's cryptographic
/// generator (the original used a non-cryptographic one).
///
/// # Errors
///
/// [`Error::Random`] if the generator fails.
pub fn rand_authkey() -> Result<String, Error> {
    const SPACE: u64 = 10_000_000_000;
    // The largest multiple of SPACE that fits; values above it would bias the digits.
    const LIMIT: u64 = u64::MAX - u64::MAX % SPACE;
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random {
            source: e
                .raw_os_error()
                .map(io::Error::from_raw_os_error)
                .unwrap_or_else(|| io::Error::other(e.to_string())),
        })?;
        let n = u64::from_le_bytes(bytes);
        if n < LIMIT {
            return Ok(format!("{:010}", n % SPACE));
        }
    }
}

/// The text and mode of one default file.
fn contents(name: &str, host: &str) -> Result<(String, u32), Error> {
    let value = match name {
        "broker.json" => json!({"host": host, "port": 4000, "stacks": [], "remote": {}}),
        "usbrel64.json" => return Ok(("{}\n".to_owned(), 0o644)),
        "authkeys.json" => {
            let keys = json!({"admin": rand_authkey()?, "share": rand_authkey()?});
            return Ok((pretty(&keys), 0o600));
        }
        "jenkins.json" => json!({"auth": {"<jenkins host>": {"method": null}}}),
        "workspace.json" => json!({
            "pretty": host,
            "root": "~/.ave",
            "jenkins": "",
            "tools": {},
            "flocker": {
                "enable": false,
                "host": "",
                "ftp": {"port": null, "user": "", "password": "", "timeout": 30, "store": ""},
                "http": {"port": null, "doc-root": ""},
            },
            "proxy": "",
            "wlan": {"ssid": "", "auth": ""},
            "wifi-capable": false,
        }),
        "gerrit.json" => json!({
            "host": "",
            "port": 29418,
            "user": "REPLACE THIS WITH THE NAME PART OF YOUR EMAIL ADDRESS",
        }),
        "panotti.json" => {
            json!({"enabled": false, "host": "<UPDATE>", "port": 5984, "db": "panotti"})
        }
        "handset.json" => json!({"handsets": [{
            "model": null,
            "pretty": null,
            "variant": null,
            "shutdown": 0,
            "boot_to_service": null,
            "magic": [],
        }]}),
        other => unreachable!("{other} is not a default file"),
    };
    Ok((pretty(&value), 0o644))
}

/// JSON with the original's 4-space indent and a final newline.
pub(crate) fn pretty(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).expect("a JSON value serializes");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

/// This host's name, or `localhost` when it has none.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|n| n.into_string().ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ten_digits_and_differ() {
        let keys: Vec<String> = (0..200).map(|_| rand_authkey().unwrap()).collect();
        for k in &keys {
            assert_eq!(k.len(), 10, "{k}");
            assert!(k.bytes().all(|b| b.is_ascii_digit()), "{k}");
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        // Leading zeros are kept: every first digit shows up over enough keys.
        let mut first = [false; 10];
        for _ in 0..2000 {
            first[(rand_authkey().unwrap().as_bytes()[0] - b'0') as usize] = true;
        }
        assert!(first.iter().all(|&seen| seen), "{first:?}");
    }

    #[test]
    fn every_default_file_has_contents() {
        for name in DEFAULT_FILES {
            let (text, mode) = contents(name, "labhost").unwrap();
            assert!(text.ends_with('\n'), "{name}");
            let value: Value = serde_json::from_str(&text).unwrap();
            assert!(value.is_object(), "{name}");
            assert_eq!(mode, if name == "authkeys.json" { 0o600 } else { 0o644 }, "{name}");
        }
        let (broker, _) = contents("broker.json", "labhost").unwrap();
        assert!(broker.starts_with("{\n    \""), "{broker}");
    }
}
