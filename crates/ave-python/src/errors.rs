//! Rust errors raised as the classes of the Python package: `ave.exceptions` for
//! exceptions of services, `ave.network.exceptions` for connection and process conditions.

use ave::{
    exceptions::{AveException, NetworkError, ProcessError},
    network::Error,
};
use pyo3::{exceptions::PyException, prelude::*};

use crate::convert;

/// An instance of `module.class(args...)` raised as a Python exception.
fn raise(py: Python<'_>, module: &str, class: &str, message: &str) -> PyErr {
    let made = py.import(module).and_then(|m| m.getattr(class)).and_then(|c| c.call1((message,)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// A service's exception, rebuilt by `ave.exceptions.exception_factory` as the original
/// client rebuilds it (`Timeout`, `Exit`, `RunError`, ... or `AveException`).
pub(crate) fn ave_exception(py: Python<'_>, e: &AveException) -> PyErr {
    let made = convert::to_py(py, &e.to_wire()).and_then(|details| {
        py.import("ave.exceptions")?.getattr("exception_factory")?.call1((details,))
    });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// A connection condition as `ave.network.exceptions.ConnectionClosed` and its siblings.
pub(crate) fn network_error(py: Python<'_>, e: &NetworkError) -> PyErr {
    raise(py, "ave.network.exceptions", e.type_name(), e.message())
}

/// A process condition as `ave.network.exceptions.Unwaitable` and its siblings.
pub(crate) fn process_error(py: Python<'_>, e: &ProcessError) -> PyErr {
    raise(py, "ave.network.exceptions", e.type_name(), e.message())
}

/// An error and its causes on one line, `outer: inner`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Any error of the network crate as the Python exception the original raised for it.
pub(crate) fn network(py: Python<'_>, e: &Error) -> PyErr {
    match e {
        Error::Network(n) => network_error(py, n),
        Error::Remote(remote) => ave_exception(py, remote),
        Error::Process(p) => process_error(py, p),
        Error::Timeout(message) => raise(py, "ave.exceptions", "Timeout", message),
        other => PyException::new_err(chain(other)),
    }
}

/// A plain `Exception` with the error's text and causes.
pub(crate) fn plain(e: &dyn std::error::Error) -> PyErr {
    PyException::new_err(chain(e))
}
