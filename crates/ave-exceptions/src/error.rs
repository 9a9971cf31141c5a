//! Errors raised when exception details are malformed.

/// Why a value could not be turned into exception details.
///
/// The texts are the original's (`AveException(details)` raised them), so that a Rust
/// service rejecting the same input says the same thing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetailsError {
    /// The details are not a JSON object.
    #[error("AveException details must be a dictionary")]
    NotAnObject,
    /// The details have no `message` field.
    #[error("AveException details must have message field")]
    MissingMessage,
}
