//! The AVE exception hierarchy and its wire form.
//!
//! Most users reach this crate through the facade, as `ave::exceptions`.
//!
//! AVE services report errors to their clients as a JSON object, the *details* of an
//! exception: a `message`, a `type` naming the exception class, an optional server-side
//! `trace`, and any extra fields the raiser added (`RunError` adds `cmd`, `out` and
//! `ptyout`). This crate holds that form and the types built on it:
//!
//! - [`AveException`]: one exception, carrying its details unchanged through any number
//!   of hops. Its [`Kind`] says which class of the original it is (`Timeout`, `Exit`,
//!   `RunError`, ...); unknown type names are kept as they are.
//! - [`AveException::from_wire`]: rebuilding an exception from the `exception` value of an
//!   RPC response, exactly as the original client's `exception_factory` does (a bare string
//!   becomes a generic exception, `RunError` loses its trace, and so on).
//! - [`TraceFrame`] and [`AveException::format_trace`]: the server-side trace and its
//!   pretty-printed form.
//! - [`NetworkError`] and [`ProcessError`]: the client-side conditions of
//!   `ave.network.exceptions` (`ConnectionClosed`, `ConnectionTimeout`, ...; `Unstarted`,
//!   `Unwaitable`, ...), which are detected locally rather than received.
//! - [`python_repr`] and [`python2_repr`]: Python's `repr` of a JSON value, which some
//!   fixed error texts of the original embed.
//! - [`ErrorChain`] and [`error_chain`]: any error with its causes on one line
//!   (`outer: inner: innermost`), the one formatter the workspace's logs and messages use.
//!
//! # Example
//!
//! ```
//! use ave_exceptions::{AveException, Kind, TraceFrame};
//!
//! // A server raises a Timeout with an extra field and a trace...
//! let raised = AveException::timeout("command timed out")
//!     .with_field("cmd", serde_json::json!(["sleep", "10"]))
//!     .with_trace(vec![TraceFrame::new("service.rs", 42, "raise_timeout", None)]);
//! let wire = raised.to_wire();
//! assert_eq!(wire["type"], "Timeout");
//!
//! // ...and the client rebuilds it from the response, every field intact.
//! let received = AveException::from_wire(&wire);
//! assert_eq!(received.kind(), Kind::Timeout);
//! assert_eq!(received.field("cmd"), Some(&serde_json::json!(["sleep", "10"])));
//! assert_eq!(
//!     received.to_string(),
//!     "command timed out\nServer side traceback:\n  File \"service.rs\", line 42, in raise_timeout\n",
//! );
//!
//! // Validation errors arrive as bare strings.
//! let validation = AveException::from_wire(&serde_json::json!("no such RPC: nope"));
//! assert_eq!(validation.type_name(), "Exception");
//! assert_eq!(validation.message(), "no such RPC: nope");
//! ```

mod chain;
mod error;
mod exception;
mod kind;
mod local;
mod repr;
mod trace;

pub use crate::{
    chain::{ErrorChain, error_chain},
    error::DetailsError,
    exception::{AveException, Details},
    kind::Kind,
    local::{NetworkError, ProcessError},
    repr::{python_repr, python2_repr},
    trace::TraceFrame,
};
