//! Passwd lookups, in process through `getpwnam_r`/`getpwuid_r`.
//!
//! The original ran every lookup in a helper process, because a winbindd/NSS bug could
//! close descriptors it did not own. The reentrant calls used here leave the caller's
//! descriptors alone; the end-to-end tests check it as the original's tests did.

use std::{io, path::PathBuf};

use nix::unistd::{Uid, User, geteuid};

use crate::Error;

/// What the configuration code needs to know about a user.
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) home: PathBuf,
}

/// Looks up a user by name.
pub(crate) fn by_name(name: &str) -> Result<Account, Error> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Account { name: u.name, uid: u.uid.as_raw(), home: u.dir }),
        Ok(None) => Err(Error::NoSuchUser { name: name.to_owned() }),
        Err(errno) => Err(Error::Lookup { name: name.to_owned(), source: io::Error::from(errno) }),
    }
}

/// The name of the effective user, or its number when the user database has no entry.
pub(crate) fn current_name() -> String {
    let uid = geteuid();
    match User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid_text(uid),
    }
}

fn uid_text(uid: Uid) -> String {
    uid.as_raw().to_string()
}

/// Whether the effective user is root.
pub(crate) fn is_root() -> bool {
    geteuid().is_root()
}
