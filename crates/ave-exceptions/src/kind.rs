//! The classes of the original exception hierarchy.

use std::fmt;

/// Which class of the original `ave.exceptions` an [`AveException`](crate::AveException)
/// is, derived from its `type` field.
///
/// `Other` covers every type name this crate does not know (`Exception`, `TypeError`,
/// `Busy`, `NoSuch`, ...). Such exceptions keep their type name and all their fields; only
/// the kind is generic. Match on the kind, not on the type string, where you can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `AveException`, the base class, raised directly.
    AveException,
    /// `Timeout`: an operation timed out.
    Timeout,
    /// `Exit`: the service terminated in a controlled manner. A `Control` that raises it
    /// answers the call and then shuts down.
    Exit,
    /// `AuthError`: a handshake failed.
    AuthError,
    /// `RunError`: an external command could not be run. Carries `cmd`, `out` and the
    /// deprecated alias `ptyout`.
    RunError,
    /// `Restarting`: the service restarted and no longer accepts new calls.
    Restarting,
    /// `Terminated`: a background activity has terminated.
    Terminated,
    /// `Offline`: a handset is offline.
    Offline,
    /// `CompositionServerResponseNot200Exception`.
    CompositionServerResponseNot200,
    /// `CompositionServerResponseHttpRetryCode`.
    CompositionServerResponseHttpRetryCode,
    /// `CompositionServerResponseOrderFailed`.
    CompositionServerResponseOrderFailed,
    /// `CompositionDownloadImagesFailed`.
    CompositionDownloadImagesFailed,
    /// Python's builtin `OverflowError`, which the original client rebuilds as such (a
    /// Control answers an over-long frame header with it).
    OverflowError,
    /// Any other type name.
    Other,
}

impl Kind {
    /// Every kind with a fixed type name, in the order of the original module.
    pub const KNOWN: [Kind; 13] = [
        Kind::AveException,
        Kind::Timeout,
        Kind::Exit,
        Kind::AuthError,
        Kind::RunError,
        Kind::Restarting,
        Kind::Terminated,
        Kind::Offline,
        Kind::CompositionServerResponseNot200,
        Kind::CompositionServerResponseHttpRetryCode,
        Kind::CompositionServerResponseOrderFailed,
        Kind::CompositionDownloadImagesFailed,
        Kind::OverflowError,
    ];

    /// The kind of a wire `type` name; unknown names give [`Kind::Other`].
    pub fn from_type_name(name: &str) -> Kind {
        Kind::KNOWN.into_iter().find(|kind| kind.type_name() == Some(name)).unwrap_or(Kind::Other)
    }

    /// The wire `type` name of this kind, or `None` for [`Kind::Other`].
    pub fn type_name(self) -> Option<&'static str> {
        Some(match self {
            Kind::AveException => "AveException",
            Kind::Timeout => "Timeout",
            Kind::Exit => "Exit",
            Kind::AuthError => "AuthError",
            Kind::RunError => "RunError",
            Kind::Restarting => "Restarting",
            Kind::Terminated => "Terminated",
            Kind::Offline => "Offline",
            Kind::CompositionServerResponseNot200 => "CompositionServerResponseNot200Exception",
            Kind::CompositionServerResponseHttpRetryCode => {
                "CompositionServerResponseHttpRetryCode"
            }
            Kind::CompositionServerResponseOrderFailed => "CompositionServerResponseOrderFailed",
            Kind::CompositionDownloadImagesFailed => "CompositionDownloadImagesFailed",
            Kind::OverflowError => "OverflowError",
            Kind::Other => return None,
        })
    }

    /// Whether the original client's `exception_factory` rebuilds this kind as its own
    /// class (as opposed to a generic `AveException` that keeps the type name).
    ///
    /// The four `Composition*` classes exist but are not mapped by the factory.
    pub fn is_mapped_by_factory(self) -> bool {
        matches!(
            self,
            Kind::Timeout
                | Kind::Exit
                | Kind::AuthError
                | Kind::RunError
                | Kind::Restarting
                | Kind::Terminated
                | Kind::OverflowError
                | Kind::Offline
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name().unwrap_or("other"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Kind::KNOWN {
            let name = kind.type_name().unwrap();
            assert_eq!(Kind::from_type_name(name), kind, "{name}");
        }
        assert_eq!(Kind::from_type_name("TypeError"), Kind::Other);
        assert_eq!(Kind::from_type_name("Exception"), Kind::Other);
        assert_eq!(Kind::Other.type_name(), None);
    }

    #[test]
    fn composition_kinds_are_not_mapped() {
        assert!(!Kind::CompositionDownloadImagesFailed.is_mapped_by_factory());
        assert!(!Kind::AveException.is_mapped_by_factory());
        assert!(Kind::Offline.is_mapped_by_factory());
    }
}
