//! Errors of profile construction and minimization.

/// Why a profile could not be built or minimized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The value is not a JSON object.
    #[error("profile is not a JSON object: {0}")]
    NotAnObject(String),
    /// The profile has no `type`, so its kind is unknown.
    #[error("profile has no type")]
    MissingType,
    /// No kind of that name is registered (the original factory's text).
    #[error("type {0} not supported in profiles")]
    UnsupportedType(String),
    /// The kind does not define `minimize`.
    #[error("{0} profiles do not implement minimize()")]
    NoMinimize(String),
    /// A key the kind needs is missing from the profile.
    #[error("{kind} profile has no \"{key}\"")]
    MissingKey {
        /// The profile's kind.
        kind: String,
        /// The missing key.
        key: String,
    },
    /// The profile names another kind than the one asked for.
    #[error("not a {expected} profile: type is {found}")]
    WrongType {
        /// The kind asked for.
        expected: String,
        /// The profile's `type` (empty if none).
        found: String,
    },
}
