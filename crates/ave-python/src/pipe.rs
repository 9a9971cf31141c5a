//! `ave.network.pipe.Pipe` on the Rust `Pipe`: framed JSON between processes.

use std::{
    os::fd::AsRawFd,
    sync::{Mutex, MutexGuard, PoisonError},
};

use ave::network::process::Pipe as RustPipe;
use pyo3::prelude::*;

use crate::{client::seconds, convert, errors};

/// A pipe carrying JSON values, each in one length-prefixed frame.
#[pyclass(module = "ave._native", frozen)]
pub(crate) struct Pipe {
    inner: Mutex<RustPipe>,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, RustPipe> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl Pipe {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Pipe> {
        let pipe = RustPipe::new().map_err(|e| errors::network(py, &e))?;
        Ok(Pipe { inner: Mutex::new(pipe) })
    }

    /// Writes `obj` as one JSON frame.
    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::to_value_arg(obj)?;
        let pipe = self.lock();
        pipe.put(&value).map_err(|e| errors::network(py, &e))
    }

    /// Reads one JSON frame, waiting at most `timeout` seconds (`None`: forever; 0: only
    /// what is there).
    #[pyo3(signature = (timeout=None))]
    fn get<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = match timeout {
            Some(t) if t <= 0.0 => Some(std::time::Duration::ZERO),
            other => seconds(other),
        };
        let value = py.detach(|| self.lock().get(timeout)).map_err(|e| errors::network(py, &e))?;
        convert::to_py(py, &value)
    }

    /// Whether nothing is waiting to be read.
    fn empty(&self) -> bool {
        self.lock().empty()
    }

    /// The read end's descriptor (-1 once closed).
    #[getter]
    fn r(&self) -> i32 {
        self.lock().reader_fd().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// The write end's descriptor (-1 once closed).
    #[getter]
    fn w(&self) -> i32 {
        self.lock().writer_fd().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// Closes both ends.
    fn close(&self) {
        let mut pipe = self.lock();
        pipe.close_reader();
        pipe.close_writer();
    }
}
