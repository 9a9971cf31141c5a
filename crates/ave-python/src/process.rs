//! `ave.network.process.Process` on the Rust `Process`: the fork, the daemon's double
//! fork, the synchronization, typed joins; the child's steps call back into Python.

use std::{io, sync::Mutex};

use ave::network::{
    Error, Process,
    process::{ChildContext, FdSet, Signal, Target, TargetError},
};
use pyo3::{
    exceptions::{PyRuntimeError, PyValueError},
    prelude::*,
};

use crate::{client::seconds, errors, sys};

/// The child's steps, each a method of the Python `Process` object.
struct PyTarget {
    obj: Py<PyAny>,
}

fn step_error(e: PyErr) -> io::Error {
    Python::attach(|py| e.print(py));
    io::Error::other("a Python step failed")
}

impl Target for PyTarget {
    fn close_fds(&mut self, child: &mut ChildContext, exclude: &FdSet) -> io::Result<()> {
        // The first step in the child: the interpreter learns it was forked.
        sys::after_fork_child();
        let keep: Vec<i32> =
            Python::attach(|py| self.obj.call_method1(py, "_ave_child_keep_fds", ())?.extract(py))
                .map_err(step_error)?;
        let mut exclude = exclude.clone();
        for fd in keep {
            if let Ok(fd) = sys::borrow_fd(fd) {
                exclude.insert(fd);
            }
        }
        let before = sys::open_fds();
        child.close_fds(&exclude)?;
        // Objects of the parent (sockets, pipes, connections) still hold the numbers just
        // closed; when the child's garbage collector drops them, they must close
        // placeholders, not EBADF (an abort for a Rust `OwnedFd`) or a descriptor opened
        // since with the same number.
        let after = sys::open_fds();
        for fd in before.into_iter().filter(|fd| *fd > 2 && !after.contains(fd)) {
            sys::placeholder(fd)?;
        }
        Ok(())
    }

    fn redirect(&mut self, _child: &mut ChildContext) -> io::Result<()> {
        Python::attach(|py| self.obj.call_method0(py, "redirect").map(drop)).map_err(step_error)
    }

    fn initialize(&mut self, _child: &mut ChildContext) -> Result<(), TargetError> {
        Python::attach(|py| self.obj.call_method0(py, "initialize").map(drop))
            .map_err(|e| TargetError::from(step_error(e).to_string()))
    }

    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        let code: i32 = Python::attach(|py| {
            let code = self.obj.call_method0(py, "_ave_child_run").and_then(|c| c.extract(py));
            let _ = py.run(c"import sys\nsys.stdout.flush()\nsys.stderr.flush()", None, None);
            code
        })
        .map_err(|e| TargetError::from(step_error(e).to_string()))?;
        child.set_exit_code(code);
        Ok(())
    }
}

/// A forked child running a Python object's steps (the engine of
/// `ave.network.process.Process`).
#[pyclass(module = "ave._native", frozen)]
pub(crate) struct Child {
    inner: Mutex<Process>,
}

impl Child {
    fn with<T>(&self, f: impl FnOnce(&mut Process) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

fn map<T>(py: Python<'_>, r: Result<T, Error>) -> PyResult<T> {
    r.map_err(|e| errors::network(py, &e))
}

#[pymethods]
impl Child {
    /// A process whose child runs `obj`'s steps: `_ave_child_keep_fds`, `redirect`,
    /// `initialize`, `_ave_child_run` (which returns the exit code).
    #[new]
    #[pyo3(signature = (obj, name, logging=false))]
    fn new(obj: Py<PyAny>, name: String, logging: bool) -> Child {
        // Python's `initialize` sets the death signal itself (`perform_prctl`).
        let process = Process::new(PyTarget { obj }).name(name).logging(logging).death_signal(None);
        Child { inner: Mutex::new(process) }
    }

    /// Forks (twice with `daemonize`); with `synchronize`, returns once the child has
    /// initialized. Returns the child's pid (`-1` for an unsynchronized daemon).
    ///
    /// The GIL stays held across the fork, as `os.fork()` holds it, so that the child's
    /// interpreter has a consistent state.
    fn start(&self, py: Python<'_>, daemonize: bool, synchronize: bool) -> PyResult<i32> {
        match self.with(|p| p.start(daemonize, synchronize)) {
            Ok(pid) => Ok(pid.get()),
            Err(e @ Error::Threaded { .. }) => {
                let threads = py
                    .import("threading")
                    .and_then(|t| t.call_method0("active_count"))
                    .and_then(|n| n.extract::<usize>())
                    .unwrap_or(0);
                Err(PyRuntimeError::new_err(format!(
                    "{e}; Python threads alive: {threads} (start processes before \
                     starting threads; a Control serving in this process also runs one)"
                )))
            }
            Err(e) => Err(errors::network(py, &e)),
        }
    }

    /// The child's pid.
    #[getter]
    fn pid(&self, py: Python<'_>) -> PyResult<i32> {
        map(py, self.with(|p| p.pid())).map(|p| p.get())
    }

    /// Waits for the child (at most `timeout` seconds); returns the raw wait status.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<i32> {
        let timeout = seconds(timeout);
        let status = py.detach(|| self.with(|p| p.join(timeout)));
        map(py, status).map(|s| s.raw())
    }

    /// Reaps the child if it ended: `(pid, raw status)`, or `(0, 0)` while it runs.
    fn join_nohang(&self, py: Python<'_>) -> PyResult<(i32, i32)> {
        let pid = map(py, self.with(|p| p.pid()))?.get();
        Ok(match map(py, self.with(|p| p.join_nohang()))? {
            Some(status) => (pid, status.raw()),
            None => (0, 0),
        })
    }

    /// Whether the child still runs (it is not reaped).
    fn is_alive(&self, py: Python<'_>) -> PyResult<bool> {
        map(py, self.with(|p| p.is_alive()))
    }

    /// Sends `signal` to the child.
    fn kill(&self, py: Python<'_>, signal: i32) -> PyResult<()> {
        let signal = Signal::new(signal).ok_or_else(|| PyValueError::new_err("not a signal"))?;
        map(py, self.with(|p| p.kill(signal)))
    }
}

/// Sets this process's parent-death signal (0: none).
#[pyfunction]
pub(crate) fn set_death_signal(signal: i32) -> PyResult<()> {
    sys::set_death_signal(signal).map_err(|e| errors::plain(&e))
}

/// Sets this process's kernel name (15 bytes are kept).
#[pyfunction]
pub(crate) fn set_process_name(name: &str) -> PyResult<()> {
    sys::set_process_name(name).map_err(|e| errors::plain(&e))
}
