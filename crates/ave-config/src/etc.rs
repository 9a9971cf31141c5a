//! `/etc/ave/user`: the switchboard naming the user AVE services run as, and their home.

use std::{
    fs::{self, DirBuilder},
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::{
    Error,
    defaults::pretty,
    load::{Object, python2_type, read_object},
    users,
    write::{Outcome, Replace, sync_dir, write_new},
};

/// Where AVE services look for the user they run as.
pub const ETC_USER_PATH: &str = "/etc/ave/user";

/// The contents of `/etc/ave/user`.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcUser {
    /// The user name.
    pub name: String,
    /// The user's home directory; services find their configuration under it.
    pub home: PathBuf,
    /// The user's numeric id.
    pub uid: u32,
    /// Any other keys of the file, kept as they are.
    pub other: Object,
}

impl EtcUser {
    /// The JSON object the file holds.
    pub fn to_json(&self) -> Value {
        let mut object = self.other.clone();
        object.insert("name".to_owned(), json!(self.name));
        object.insert("home".to_owned(), json!(self.home.to_string_lossy()));
        object.insert("uid".to_owned(), json!(self.uid));
        Value::Object(object)
    }
}

/// What [`create_etc`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcCreated {
    /// The user the file names.
    pub user: EtcUser,
    /// `true` if the file was written, `false` if it already named that user and was left
    /// as it is.
    pub created: bool,
}

/// Writes `path` (normally [`ETC_USER_PATH`]) naming `user`, with the user's `home` and
/// `uid` from the user database.
///
/// An existing file that already names `user` is left as it is. Unlike the original, which
/// silently kept whatever user an existing file named, a file naming another user is an
/// error, and so is an existing file that does not load (except an empty one, which is
/// replaced): nothing is overwritten without being looked at. The file is written
/// atomically with mode `0644`.
///
/// # Errors
///
/// - [`Error::MustBeRoot`] (`must call as root`) for [`ETC_USER_PATH`] when not running as
///   root;
/// - [`Error::EtcConflict`] if the file names another user;
/// - [`Error::LoadEtc`] if the file exists but does not load;
/// - [`Error::NoSuchUser`] or [`Error::Lookup`] if the user cannot be found;
/// - [`Error::Create`] if the directory or the file cannot be written.
pub fn create_etc(path: &Path, user: &str) -> Result<EtcCreated, Error> {
    if path == Path::new(ETC_USER_PATH) && !users::is_root() {
        return Err(Error::MustBeRoot);
    }
    let replace = match existing(path, user)? {
        Existing::Same(found) => return Ok(EtcCreated { user: found, created: false }),
        Existing::Empty => Replace::Yes,
        Existing::None => Replace::Never,
    };
    let account = users::by_name(user)?;
    let etc =
        EtcUser { name: account.name, home: account.home, uid: account.uid, other: Object::new() };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| Error::Create { path: dir.to_owned(), source })?;
    }
    let text = pretty(&etc.to_json());
    match write_new(path, text.as_bytes(), 0o644, replace) {
        Ok(Outcome::Written) => {
            sync_dir(path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")));
            Ok(EtcCreated { user: etc, created: true })
        }
        // Someone else wrote it in the meantime: judge what they wrote.
        Ok(Outcome::Existed) => match existing(path, user)? {
            Existing::Same(found) => Ok(EtcCreated { user: found, created: false }),
            Existing::Empty | Existing::None => Err(Error::Create {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            }),
        },
        Err(source) => Err(Error::Create { path: path.to_owned(), source }),
    }
}

/// Loads [`ETC_USER_PATH`].
///
/// # Errors
///
/// See [`load_etc_at`].
pub fn load_etc() -> Result<EtcUser, Error> {
    load_etc_at(Path::new(ETC_USER_PATH))
}

/// Loads a file written like `/etc/ave/user`. A missing `home` or `uid` is filled in from
/// the user database, as the original did for files of older versions.
///
/// # Errors
///
/// [`Error::LoadEtc`] (`could not load <path>`), whose source says why: the file does not
/// exist ([`Error::EtcMissing`]), is not a JSON object, has no `name`, has a value of the
/// wrong type, or names a user the database does not know.
pub fn load_etc_at(path: &Path) -> Result<EtcUser, Error> {
    load_inner(path).map_err(|e| Error::LoadEtc { path: path.to_owned(), source: Box::new(e) })
}

fn load_inner(path: &Path) -> Result<EtcUser, Error> {
    let mut object =
        read_object(path)?.ok_or_else(|| Error::EtcMissing { path: path.to_owned() })?;
    let name = match object.remove("name") {
        Some(Value::String(name)) => name,
        Some(other) => return Err(invalid(path, "name", "a string", python2_type(&other))),
        None => return Err(Error::MissingKey { path: path.to_owned(), key: "name".to_owned() }),
    };
    let home = match object.remove("home") {
        Some(Value::String(home)) => Some(PathBuf::from(home)),
        Some(other) => return Err(invalid(path, "home", "a string", python2_type(&other))),
        None => None,
    };
    let uid = match object.remove("uid") {
        None => None,
        Some(value) => Some(parse_uid(path, &value)?),
    };
    let (home, uid) = match (home, uid) {
        (Some(home), Some(uid)) => (home, uid),
        (home, uid) => {
            let account = users::by_name(&name)?;
            (home.unwrap_or(account.home), uid.unwrap_or(account.uid))
        }
    };
    Ok(EtcUser { name, home, uid, other: object })
}

/// A uid is a number; a string of digits is accepted too.
fn parse_uid(path: &Path, value: &Value) -> Result<u32, Error> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<u32>().ok(),
        _ => return Err(invalid(path, "uid", "a user id", python2_type(value))),
    };
    parsed.ok_or_else(|| invalid(path, "uid", "a user id", &value.to_string()))
}

fn invalid(path: &Path, key: &str, expected: &'static str, found: &str) -> Error {
    Error::InvalidValue {
        path: path.to_owned(),
        key: key.to_owned(),
        expected,
        found: found.to_owned(),
    }
}

enum Existing {
    /// The file names the requested user.
    Same(EtcUser),
    /// The file exists and is empty.
    Empty,
    /// There is no file.
    None,
}

fn existing(path: &Path, user: &str) -> Result<Existing, Error> {
    match load_etc_at(path) {
        Ok(found) if found.name == user => Ok(Existing::Same(found)),
        Ok(found) => Err(Error::EtcConflict {
            path: path.to_owned(),
            existing: found.name,
            requested: user.to_owned(),
        }),
        Err(Error::LoadEtc { source, .. }) if matches!(*source, Error::EtcMissing { .. }) => {
            Ok(Existing::None)
        }
        Err(e) => match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() && meta.len() == 0 => Ok(Existing::Empty),
            _ => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_forms() {
        let p = Path::new("/x");
        assert_eq!(parse_uid(p, &json!(1000)).unwrap(), 1000);
        assert_eq!(parse_uid(p, &json!("1000")).unwrap(), 1000);
        assert_eq!(
            parse_uid(p, &json!(-1)).unwrap_err().to_string(),
            "invalid config file /x: value of \"uid\" is not a user id: -1"
        );
        assert_eq!(
            parse_uid(p, &json!([])).unwrap_err().to_string(),
            "invalid config file /x: value of \"uid\" is not a user id: <type 'list'>"
        );
    }

    #[test]
    fn to_json_keeps_other_keys() {
        let mut other = Object::new();
        other.insert("extra".to_owned(), json!(1));
        let user = EtcUser { name: "ave".to_owned(), home: "/home/ave".into(), uid: 7, other };
        assert_eq!(
            user.to_json(),
            json!({"name": "ave", "home": "/home/ave", "uid": 7, "extra": 1})
        );
    }
}
