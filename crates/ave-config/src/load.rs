//! Loading configuration files: the generic `load`, and the typed files the suite reads
//! itself (`authkeys.json`, `broker.json`).

use std::{
    collections::BTreeMap,
    fmt, fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, users};

/// A configuration file's contents: a JSON object.
pub type Object = Map<String, Value>;

/// Where a home keeps its configuration files: `<home>/.ave/config`.
pub fn config_dir(home: &Path) -> PathBuf {
    home.join(".ave").join("config")
}

/// Loads a configuration file, which must hold a JSON object.
///
/// # Errors
///
/// The original's errors, with its texts:
/// - [`Error::Missing`] if the file does not exist, with the hint to run
///   `ave-config --bootstrap=<user>` (or `ave config bootstrap --user <user>`);
/// - [`Error::InvalidJson`] (`not valid JSON encoding`) if it is not JSON; an empty file
///   gives Python 2's `No JSON object could be decoded`;
/// - [`Error::NotAnObject`] (`contents is not a dictionary: <type 'list'>`);
/// - [`Error::Read`] if it exists but cannot be read.
pub fn load(path: &Path) -> Result<Object, Error> {
    read_object(path)?
        .ok_or_else(|| Error::Missing { path: path.to_owned(), user: users::current_name() })
}

/// Loads `<home>/.ave/config/authkeys.json`: account names and their keys.
///
/// A `null` value is kept as an account without a key (an open lab configures
/// `{"admin": null}` so that anyone may make admin calls); every other value must be a
/// string. Unlike the original, other "empty" values such as `0` or `false` are rejected
/// here rather than later by the server. A warning is logged when the file can be read
/// or written by anyone but its owner.
///
/// # Errors
///
/// Those of [`load`], and [`Error::InvalidValue`]
/// (`value of "admin" is not a string: <type 'int'>`) for a value that is neither a string
/// nor `null`.
pub fn load_authkeys(home: &Path) -> Result<Authkeys, Error> {
    let path = config_dir(home).join("authkeys.json");
    let object = load(&path)?;
    if let Ok(Some(mode)) = key_file_exposure(&path) {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:04o}"),
            "authkeys.json is readable by others; run chmod 600 on it"
        );
    }
    Authkeys::from_object(&path, object)
}

/// Loads `<home>/.ave/config/broker.json`: where the broker listens.
///
/// # Errors
///
/// Those of [`load`]; [`Error::MissingKey`] if `host` or `port` is missing;
/// [`Error::InvalidValue`] if `host` is not a string or `port` not a number from 1 to
/// 65535.
pub fn load_broker(home: &Path) -> Result<BrokerConfig, Error> {
    let path = config_dir(home).join("broker.json");
    let object = load(&path)?;
    BrokerConfig::from_object(&path, object)
}

/// The permission bits of a key file when anyone but its owner may read or write it, and
/// `None` when it is private (mode `0600` or stricter).
///
/// # Errors
///
/// [`Error::Read`] if the file's metadata cannot be read.
pub fn key_file_exposure(path: &Path) -> Result<Option<u32>, Error> {
    let meta =
        fs::metadata(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let mode = meta.permissions().mode() & 0o7777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// The keys of `authkeys.json`: account name to key, or to no key (`null`).
///
/// Every account of the file is kept, not only the `admin` and `share` accounts the
/// original creates. `Debug` hides the keys.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Authkeys {
    keys: BTreeMap<String, Option<String>>,
}

impl Authkeys {
    /// An empty set of keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of an account, if the account exists and has a key.
    pub fn get(&self, account: &str) -> Option<&str> {
        self.keys.get(account).and_then(|k| k.as_deref())
    }

    /// Whether the account exists (with a key or with `null`).
    pub fn contains(&self, account: &str) -> bool {
        self.keys.contains_key(account)
    }

    /// The key of the `admin` account, used for management calls.
    pub fn admin(&self) -> Option<&str> {
        self.get("admin")
    }

    /// The key of the `share` account, used by listers and reporters.
    pub fn share(&self) -> Option<&str> {
        self.get("share")
    }

    /// Adds or replaces an account. `None` makes an account without a key.
    pub fn insert(&mut self, account: impl Into<String>, key: Option<String>) {
        self.keys.insert(account.into(), key);
    }

    /// Every account with its key, sorted by account name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.keys.iter().map(|(a, k)| (a.as_str(), k.as_deref()))
    }

    /// The number of accounts.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the contents of an `authkeys.json` file already read with [`load`]; `path`
    /// is for the error messages. [`load_authkeys`] does both (and warns about the mode).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`] for a value that is neither a string nor `null`.
    pub fn from_object(path: &Path, object: Object) -> Result<Self, Error> {
        let mut keys = BTreeMap::new();
        for (account, value) in object {
            let key = match value {
                Value::String(s) => Some(s),
                Value::Null => None,
                other => {
                    return Err(Error::InvalidValue {
                        path: path.to_owned(),
                        key: account,
                        expected: "a string",
                        found: python2_type(&other).to_owned(),
                    });
                }
            };
            keys.insert(account, key);
        }
        Ok(Self { keys })
    }
}

impl fmt::Debug for Authkeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (account, key) in &self.keys {
            map.entry(account, &if key.is_some() { "<key>" } else { "None" });
        }
        map.finish()
    }
}

impl<'a> FromIterator<(&'a str, Option<&'a str>)> for Authkeys {
    fn from_iter<I: IntoIterator<Item = (&'a str, Option<&'a str>)>>(iter: I) -> Self {
        let keys = iter.into_iter().map(|(a, k)| (a.to_owned(), k.map(str::to_owned))).collect();
        Self { keys }
    }
}

/// The broker's address from `broker.json`; every other key of the file is kept in
/// `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerConfig {
    /// The host name clients use to reach the broker.
    pub host: String,
    /// The broker's TCP port (4000 by default).
    pub port: u16,
    /// The other keys (`stacks`, `remote`, and anything a newer version wrote).
    #[serde(flatten)]
    pub other: Object,
}

impl BrokerConfig {
    /// Checks the contents of a `broker.json` file already read with [`load`]; `path` is
    /// for the error messages.
    ///
    /// # Errors
    ///
    /// As [`load_broker`], for the contents.
    pub fn from_object(path: &Path, mut object: Object) -> Result<Self, Error> {
        let missing = |key: &str| Error::MissingKey { path: path.to_owned(), key: key.to_owned() };
        let host = match object.remove("host").ok_or_else(|| missing("host"))? {
            Value::String(s) => s,
            other => return Err(invalid(path, "host", "a string", python2_type(&other))),
        };
        let port = match object.remove("port").ok_or_else(|| missing("port"))? {
            Value::Number(n) => match n.as_u64().and_then(|p| u16::try_from(p).ok()) {
                Some(p) if p != 0 => p,
                _ => return Err(invalid(path, "port", "a port number (1-65535)", &n.to_string())),
            },
            other => {
                return Err(invalid(path, "port", "a port number (1-65535)", python2_type(&other)));
            }
        };
        Ok(Self { host, port, other: object })
    }
}

fn invalid(path: &Path, key: &str, expected: &'static str, found: &str) -> Error {
    Error::InvalidValue {
        path: path.to_owned(),
        key: key.to_owned(),
        expected,
        found: found.to_owned(),
    }
}

/// Reads and parses a file that must hold a JSON object; `None` if it does not exist.
pub(crate) fn read_object(path: &Path) -> Result<Option<Object>, Error> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(Error::InvalidJson {
                path: path.to_owned(),
                detail: "the file is not UTF-8 text".to_owned(),
            });
        }
        Err(source) => return Err(Error::Read { path: path.to_owned(), source }),
    };
    parse_object(path, &text).map(Some)
}

/// Parses the text of a configuration file.
pub(crate) fn parse_object(path: &Path, text: &str) -> Result<Object, Error> {
    if text.trim().is_empty() {
        // Python 2's words, which the original's tests and users' scripts look for.
        return Err(Error::InvalidJson {
            path: path.to_owned(),
            detail: "No JSON object could be decoded (the file is empty)".to_owned(),
        });
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(Error::NotAnObject {
            path: path.to_owned(),
            found: python2_type(&other).to_owned(),
        }),
        Err(e) => Err(Error::InvalidJson { path: path.to_owned(), detail: e.to_string() }),
    }
}

/// The Python 2 type of the value `json.loads` makes of a JSON value, as `type()` prints
/// it; the original's error texts embed it.
pub(crate) fn python2_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<type 'NoneType'>",
        Value::Bool(_) => "<type 'bool'>",
        Value::Number(n) if n.is_i64() => "<type 'int'>",
        Value::Number(n) if n.is_u64() => "<type 'long'>",
        Value::Number(_) => "<type 'float'>",
        Value::String(_) => "<type 'unicode'>",
        Value::Array(_) => "<type 'list'>",
        Value::Object(_) => "<type 'dict'>",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> Result<Object, Error> {
        parse_object(Path::new("/h/.ave/config/x.json"), text)
    }

    #[test]
    fn python2_type_names() {
        let cases = [
            (json!(null), "<type 'NoneType'>"),
            (json!(true), "<type 'bool'>"),
            (json!(3), "<type 'int'>"),
            (json!(-3), "<type 'int'>"),
            (json!(u64::MAX), "<type 'long'>"),
            (json!(1.5), "<type 'float'>"),
            (json!("s"), "<type 'unicode'>"),
            (json!([]), "<type 'list'>"),
            (json!({}), "<type 'dict'>"),
        ];
        for (value, name) in cases {
            assert_eq!(python2_type(&value), name, "{value}");
        }
    }

    #[test]
    fn parse_errors_have_the_original_texts() {
        let empty = parse("").unwrap_err().to_string();
        assert!(
            empty.starts_with(
                "invalid config file /h/.ave/config/x.json: not valid JSON encoding: "
            ),
            "{empty}"
        );
        assert!(empty.contains("No JSON object could be decoded"), "{empty}");

        let bad = parse("{\"a\": }").unwrap_err().to_string();
        assert!(bad.contains("not valid JSON encoding: expected value at line 1"), "{bad}");

        let list = parse(r#"["admin", "share"]"#).unwrap_err().to_string();
        assert_eq!(
            list,
            "invalid config file /h/.ave/config/x.json: contents is not a dictionary: <type 'list'>"
        );
        assert_eq!(parse(" {\"a\": 1}\n").unwrap()["a"], json!(1));
    }

    #[test]
    fn authkeys_values_must_be_strings_or_null() {
        let path = Path::new("/h/authkeys.json");
        let err = Authkeys::from_object(path, parse(r#"{"admin":3}"#).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config file /h/authkeys.json: value of \"admin\" is not a string: <type 'int'>"
        );
        // The original let these "falsy" values through for the server to reject later.
        for bad in ["0", "false", "[]", "{}"] {
            let text = format!(r#"{{"admin": {bad}}}"#);
            let err = Authkeys::from_object(path, parse(&text).unwrap()).unwrap_err();
            assert!(err.to_string().contains("value of \"admin\" is not a string"), "{bad}");
        }
        let keys = Authkeys::from_object(
            path,
            parse(r#"{"admin": null, "share": "", "lab": "0123456789"}"#).unwrap(),
        )
        .unwrap();
        assert!(keys.contains("admin") && keys.admin().is_none());
        assert_eq!(keys.share(), Some(""));
        assert_eq!(keys.get("lab"), Some("0123456789"));
        assert_eq!(keys.len(), 3);
        assert_eq!(
            serde_json::to_value(&keys).unwrap(),
            json!({"admin": null, "share": "", "lab": "0123456789"})
        );
    }

    #[test]
    fn authkeys_debug_hides_the_keys() {
        let keys: Authkeys = [("admin", Some("1234567890")), ("open", None)].into_iter().collect();
        let shown = format!("{keys:?}");
        assert!(!shown.contains("1234567890"), "{shown}");
        assert!(shown.contains("admin") && shown.contains("<key>"), "{shown}");
    }

    #[test]
    fn broker_keeps_unknown_keys_and_checks_host_and_port() {
        let path = Path::new("/h/broker.json");
        let text = r#"{"host": "lab1", "port": 4000, "stacks": [], "remote": {}, "new": 1}"#;
        let broker = BrokerConfig::from_object(path, parse(text).unwrap()).unwrap();
        assert_eq!((broker.host.as_str(), broker.port), ("lab1", 4000));
        assert_eq!(
            serde_json::to_value(&broker).unwrap(),
            json!({"host": "lab1", "port": 4000, "stacks": [], "remote": {}, "new": 1})
        );

        let check = |text: &str, expected: &str| {
            let err = BrokerConfig::from_object(path, parse(text).unwrap()).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid config file /h/broker.json: {expected}"));
        };
        check(r#"{"port": 1}"#, "\"host\" is missing");
        check(r#"{"host": "h"}"#, "\"port\" is missing");
        check(r#"{"host": 1, "port": 1}"#, "value of \"host\" is not a string: <type 'int'>");
        check(
            r#"{"host": "h", "port": "4000"}"#,
            "value of \"port\" is not a port number (1-65535): <type 'unicode'>",
        );
        check(
            r#"{"host": "h", "port": 70000}"#,
            "value of \"port\" is not a port number (1-65535): 70000",
        );
        check(r#"{"host": "h", "port": 0}"#, "value of \"port\" is not a port number (1-65535): 0");
    }
}
