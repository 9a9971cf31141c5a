//! The errors of the configuration switchboard, with the original's texts where tests
//! and users depend on them.

use std::{io, path::PathBuf};

/// Everything that can go wrong while creating or loading AVE configuration.
///
/// The texts of [`Missing`](Error::Missing), [`InvalidJson`](Error::InvalidJson),
/// [`NotAnObject`](Error::NotAnObject) and [`InvalidValue`](Error::InvalidValue) are the
/// original's (`ave.config`), including the Python 2 type names such as `<type 'list'>`
/// that scripts and tests match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file does not exist. The message tells how to create it.
    #[error(
        "no such configuration file: {}\n\nrun \"ave-config --bootstrap={user}\" to create one \
         with default values (with the ave command line: \"ave config bootstrap --user {user}\")",
        path.display()
    )]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
        /// The name of the user running the program, for the hint.
        user: String,
    },

    /// The file exists but could not be read.
    #[error("could not read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// The file is not valid JSON.
    #[error("invalid config file {}: not valid JSON encoding: {detail}", path.display())]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The parser's description of the problem, with its line and column.
        detail: String,
    },

    /// The file holds JSON, but not an object.
    #[error("invalid config file {}: contents is not a dictionary: {found}", path.display())]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The Python 2 type of what was found instead, e.g. `<type 'list'>`.
        found: String,
    },

    /// A value has the wrong type or is out of range.
    #[error("invalid config file {}: value of \"{key}\" is not {expected}: {found}", path.display())]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The key whose value is wrong.
        key: String,
        /// What the value should be, e.g. `a string`.
        expected: &'static str,
        /// The Python 2 type of the value found (`<type 'int'>`), or the value when its
        /// type is right but it is out of range.
        found: String,
    },

    /// A required key is missing.
    #[error("invalid config file {}: \"{key}\" is missing", path.display())]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: String,
    },

    /// A file or directory could not be created.
    #[error("could not create {}", path.display())]
    Create {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// The system's random generator failed while making a key.
    #[error("could not get random bytes for a key")]
    Random {
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// Writing `/etc/ave/user` needs root.
    #[error("must call as root")]
    MustBeRoot,

    /// No user of that name exists.
    #[error("no such user: {name}")]
    NoSuchUser {
        /// The name looked up.
        name: String,
    },

    /// The user database could not be searched.
    #[error("could not look up user {name}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// The `/etc/ave/user` file does not exist.
    #[error("{} does not exist", path.display())]
    EtcMissing {
        /// The file.
        path: PathBuf,
    },

    /// The `/etc/ave/user` file (or the file given instead) could not be loaded; the
    /// source says why.
    #[error("could not load {}", path.display())]
    LoadEtc {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<Error>,
    },

    /// The `/etc/ave/user` file already names another user. It is left as it is.
    #[error(
        "{} already names the user \"{existing}\", not \"{requested}\"; remove the file first \
         to change it",
        path.display()
    )]
    EtcConflict {
        /// The file.
        path: PathBuf,
        /// The user it names.
        existing: String,
        /// The user asked for.
        requested: String,
    },
}
