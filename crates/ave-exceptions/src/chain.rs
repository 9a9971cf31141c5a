//! An error and its causes on one line: `outer: inner: innermost`.
//!
//! The workspace's errors keep a cause either in their message or as their `source()`,
//! never both, so joining the messages of the chain says everything once.

use std::{error::Error, fmt};

/// Displays an error followed by each of its sources, joined by `": "`.
///
/// ```
/// use std::io;
///
/// use ave_exceptions::ErrorChain;
///
/// #[derive(Debug)]
/// struct Outer(io::Error);
/// impl std::fmt::Display for Outer {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("read the key file")
///     }
/// }
/// impl std::error::Error for Outer {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let error = Outer(io::Error::new(io::ErrorKind::NotFound, "no such file"));
/// assert_eq!(ErrorChain(&error).to_string(), "read the key file: no such file");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The error and its sources as one `String`, joined by `": "` (see [`ErrorChain`]).
///
/// ```
/// let error = std::io::Error::other("disk full");
/// assert_eq!(ave_exceptions::error_chain(&error), "disk full");
/// ```
pub fn error_chain(error: &dyn Error) -> String {
    ErrorChain(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn every_cause_is_joined_once_in_order() {
        let error = Layer("a", Some(Box::new(Layer("b", Some(Box::new(Layer("c", None)))))));
        assert_eq!(error_chain(&error), "a: b: c");
        assert_eq!(format!("{}", ErrorChain(&Layer("alone", None))), "alone");
    }
}
