//! Dropping privileges to an AVE user.
//!
//! Most users reach this crate through the facade, as `ave::persona`.
//!
//! [`become_user`] turns a process running as root into a process of another user, for
//! good: supplementary groups (`initgroups`), then the real, effective and saved group
//! ids, then the real, effective and saved user ids, each step checked by reading the ids
//! back; then it sets `HOME`, `USER` and `LOGNAME` and returns the user's home directory.
//! It fixes the original's `ave.persona.become_user`, which kept root's supplementary
//! groups, ignored errors other than `EPERM`, left the environment alone and returned
//! `None` when no switch was needed.
//!
//! [`lookup_user`] and [`current_user`] read the user database in process with the
//! reentrant `getpwnam_r`/`getpwuid_r`, leaving the caller's descriptors alone (the
//! original ran a helper process per lookup because of an NSS bug that closed them).
//!
//! # Example
//!
//! A service started as root drops to its user first thing in `main`, before it starts
//! any thread (`no_run`: it needs root and cannot be undone):
//!
//! ```no_run
//! let home = ave_persona::become_user("ave")?;
//! assert_eq!(std::env::var_os("HOME"), Some(home.clone().into_os_string()));
//! // From here on the process runs as "ave", with ave's groups only.
//! # Ok::<(), ave_persona::Error>(())
//! ```
//!
//! Looking a user up is harmless anywhere:
//!
//! ```
//! let root = ave_persona::lookup_user("root")?;
//! assert_eq!(root.uid, 0);
//! # Ok::<(), ave_persona::Error>(())
//! ```

mod sys;

use std::{
    collections::BTreeSet,
    ffi::{CString, OsStr},
    fs, io,
    path::PathBuf,
};

use nix::unistd::{
    Gid, Uid, User, getgrouplist, getgroups, getresgid, getresuid, initgroups, setresgid, setresuid,
};

/// A user of the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The login name.
    pub name: String,
    /// The numeric user id.
    pub uid: u32,
    /// The numeric id of the user's primary group.
    pub gid: u32,
    /// The home directory.
    pub home: PathBuf,
    /// The login shell.
    pub shell: PathBuf,
}

/// Why a lookup or a privilege change failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No user of that name exists.
    #[error("no such user: {name}")]
    NoSuchUser {
        /// The name looked up.
        name: String,
    },

    /// No user has that id.
    #[error("no such user id: {uid}")]
    NoSuchUid {
        /// The id looked up.
        uid: u32,
    },

    /// The user database could not be searched.
    #[error("could not look up user {name}")]
    Lookup {
        /// The name (or id) looked up.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// Only root can become another user.
    #[error(
        "only root can execute with modified privileges: running as uid {uid}, cannot become \
         \"{name}\" (uid {target})"
    )]
    NotRoot {
        /// The user asked for.
        name: String,
        /// Its uid.
        target: u32,
        /// The effective uid of this process.
        uid: u32,
    },

    /// The process has more than one thread, so its identity and environment cannot be
    /// changed safely.
    #[error(
        "refusing to change identity while {threads} threads run; call become_user before \
         starting any thread"
    )]
    Threaded {
        /// How many threads the process has.
        threads: usize,
    },

    /// The threads of the process could not be counted (`/proc` is missing).
    #[error("could not count the threads of this process in /proc/self/task")]
    ThreadCount,

    /// A system call of the switch failed. The process may be half switched and should
    /// exit.
    #[error("could not execute with modified privileges: {step} failed")]
    Switch {
        /// The call, with its arguments.
        step: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// A call succeeded but reading back the ids showed something else. The process may
    /// be half switched and should exit.
    #[error("privileges not changed as expected: {what}")]
    Verify {
        /// What differs.
        what: String,
    },
}

/// Looks up a user by name.
///
/// # Errors
///
/// [`Error::NoSuchUser`], or [`Error::Lookup`] if the user database cannot be read.
pub fn lookup_user(name: &str) -> Result<UserInfo, Error> {
    match User::from_name(name) {
        Ok(Some(user)) => Ok(info(user)),
        Ok(None) => Err(Error::NoSuchUser { name: name.to_owned() }),
        Err(errno) => Err(Error::Lookup { name: name.to_owned(), source: io::Error::from(errno) }),
    }
}

/// Looks up the user this process runs as (its effective uid).
///
/// # Errors
///
/// [`Error::NoSuchUid`] if the user database has no entry for the uid, or
/// [`Error::Lookup`].
pub fn current_user() -> Result<UserInfo, Error> {
    let uid = nix::unistd::geteuid();
    match User::from_uid(uid) {
        Ok(Some(user)) => Ok(info(user)),
        Ok(None) => Err(Error::NoSuchUid { uid: uid.as_raw() }),
        Err(errno) => {
            Err(Error::Lookup { name: format!("uid {uid}"), source: io::Error::from(errno) })
        }
    }
}

/// Makes this process run as the user `name`, for good, and returns the user's home
/// directory.
///
/// If the process already runs as that user (real, effective and saved uids), nothing is
/// switched. Otherwise it must run as root, or at least hold root as its real or saved uid
/// (root that only changed its effective uid is made to drop root for good); a non-root
/// process whose effective uid is the user's only aligns its real and saved uids. The
/// switch sets the supplementary groups from the group database (`initgroups`), then the
/// real, effective and saved gids, then the real, effective and saved uids, and reads each
/// back; for a non-root user it also checks that no capability is left. In every
/// successful case `HOME`, `USER` and `LOGNAME` are set to the user's.
///
/// Call it early in `main`, **before starting any thread**: the environment can only be
/// changed safely by a process with a single thread, so this function counts the threads
/// first and refuses, changing nothing, if there is more than one.
///
/// # Errors
///
/// - [`Error::NoSuchUser`] or [`Error::Lookup`] if the user cannot be found;
/// - [`Error::Threaded`] or [`Error::ThreadCount`] if the process has (or may have) more
///   than one thread;
/// - [`Error::NotRoot`] if the process is neither root (real, effective or saved uid) nor
///   that user;
/// - [`Error::Switch`] or [`Error::Verify`] if a step fails or does not take effect. The
///   process may then be half switched and should exit.
///
/// Nothing has changed when any of the first three is returned.
pub fn become_user(name: &str) -> Result<PathBuf, Error> {
    let user = lookup_user(name)?;
    match sys::thread_count() {
        Ok(1) => {}
        Ok(threads) => return Err(Error::Threaded { threads }),
        Err(_) => return Err(Error::ThreadCount),
    }
    let target = Uid::from_raw(user.uid);
    let group = Gid::from_raw(user.gid);
    let ids = getresuid().map_err(|e| switch_error("getresuid()", e))?;
    let root = Uid::from_raw(0);
    if (ids.real, ids.effective, ids.saved) == (target, target, target) {
        // Already that user, for good.
    } else if [ids.real, ids.effective, ids.saved].contains(&root) {
        if !ids.effective.is_root() {
            // Root dropped only its effective uid (seteuid) and could take it back at any
            // time; take it back now, so that the switch below drops root for good,
            // supplementary groups included. Allowed because 0 is one of the current ids.
            setresuid(root, root, root).map_err(|e| switch_error("setresuid(0, 0, 0)", e))?;
        }
        switch(&user, target, group)?;
    } else if ids.effective == target {
        // Allowed without privileges: every new id is the current effective one.
        setresuid(target, target, target)
            .map_err(|e| switch_error(&format!("setresuid({target}, {target}, {target})"), e))?;
        verify_uids(target)?;
    } else {
        return Err(Error::NotRoot {
            name: user.name,
            target: user.uid,
            uid: ids.effective.as_raw(),
        });
    }
    set_environment(&user)?;
    Ok(user.home)
}

/// The switch proper, as root.
fn switch(user: &UserInfo, uid: Uid, gid: Gid) -> Result<(), Error> {
    let cname = CString::new(user.name.as_str())
        .map_err(|_| Error::NoSuchUser { name: user.name.clone() })?;
    let expected: BTreeSet<u32> = getgrouplist(&cname, gid)
        .map_err(|e| switch_error(&format!("getgrouplist({}, {gid})", user.name), e))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();

    initgroups(&cname, gid)
        .map_err(|e| switch_error(&format!("initgroups({}, {gid})", user.name), e))?;
    let groups: BTreeSet<u32> = getgroups()
        .map_err(|e| switch_error("getgroups()", e))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    if groups != expected {
        return Err(Error::Verify {
            what: format!("supplementary groups are {groups:?}, expected {expected:?}"),
        });
    }

    setresgid(gid, gid, gid)
        .map_err(|e| switch_error(&format!("setresgid({gid}, {gid}, {gid})"), e))?;
    let gids = getresgid().map_err(|e| switch_error("getresgid()", e))?;
    if (gids.real, gids.effective, gids.saved) != (gid, gid, gid) {
        return Err(Error::Verify {
            what: format!(
                "gids are {}/{}/{} (real/effective/saved), expected {gid}",
                gids.real, gids.effective, gids.saved
            ),
        });
    }

    setresuid(uid, uid, uid)
        .map_err(|e| switch_error(&format!("setresuid({uid}, {uid}, {uid})"), e))?;
    verify_uids(uid)?;
    if !uid.is_root() {
        verify_no_capabilities()?;
    }
    tracing::info!(user = %user.name, uid = %uid, gid = %gid, "changed identity");
    Ok(())
}

fn verify_uids(uid: Uid) -> Result<(), Error> {
    let ids = getresuid().map_err(|e| switch_error("getresuid()", e))?;
    if (ids.real, ids.effective, ids.saved) != (uid, uid, uid) {
        return Err(Error::Verify {
            what: format!(
                "uids are {}/{}/{} (real/effective/saved), expected {uid}",
                ids.real, ids.effective, ids.saved
            ),
        });
    }
    Ok(())
}

/// The kernel clears the capabilities of a process whose uids all leave 0, unless it was
/// told to keep them; check that nothing kept them.
fn verify_no_capabilities() -> Result<(), Error> {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        // Without /proc there is nothing to read; the uid checks above still hold.
        return Ok(());
    };
    for line in status.lines() {
        for field in ["CapPrm:", "CapEff:", "CapAmb:"] {
            if let Some(value) = line.strip_prefix(field) {
                let value = value.trim();
                if value.bytes().any(|b| b != b'0') {
                    return Err(Error::Verify {
                        what: format!("capabilities kept: {field} {value}"),
                    });
                }
            }
        }
    }
    Ok(())
}

fn set_environment(user: &UserInfo) -> Result<(), Error> {
    let name = OsStr::new(user.name.as_str());
    let vars = [("HOME", user.home.as_os_str()), ("USER", name), ("LOGNAME", name)];
    sys::set_env_single_threaded(&vars).map_err(|threads| match threads {
        Some(threads) => Error::Threaded { threads },
        None => Error::ThreadCount,
    })
}

fn switch_error(step: &str, errno: nix::errno::Errno) -> Error {
    Error::Switch { step: step.to_owned(), source: io::Error::from(errno) }
}

fn info(user: User) -> UserInfo {
    UserInfo {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
        shell: user.shell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_reported_by_name() {
        let err = lookup_user("no-such-user-ave-persona").unwrap_err();
        assert_eq!(err.to_string(), "no such user: no-such-user-ave-persona");
        // A NUL cannot be in a user name; it is simply not found.
        assert!(matches!(lookup_user("ro\0ot"), Err(Error::NoSuchUser { .. })));
        let err = become_user("no-such-user-ave-persona").unwrap_err();
        assert!(matches!(err, Error::NoSuchUser { .. }), "{err}");
    }

    #[test]
    fn root_is_found_by_name_and_the_current_user_by_uid() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let me = current_user().unwrap();
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(lookup_user(&me.name).unwrap(), me);
    }

    #[test]
    fn refuses_to_switch_with_other_threads_and_changes_nothing() {
        // The test harness may run this on its main thread; park a second one to be sure.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || rx.recv());
        let before = (getresuid().unwrap(), getresgid().unwrap(), getgroups().unwrap());
        let home_before = std::env::var_os("HOME");

        let err = become_user("nobody").unwrap_err();
        assert!(matches!(err, Error::Threaded { threads } if threads >= 2), "{err}");
        assert!(err.to_string().contains("before starting any thread"), "{err}");

        let after = (getresuid().unwrap(), getresgid().unwrap(), getgroups().unwrap());
        assert_eq!(format!("{before:?}"), format!("{after:?}"));
        assert_eq!(std::env::var_os("HOME"), home_before);
        drop(tx);
        let _ = parked.join();
    }
}
