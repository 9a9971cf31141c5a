//! `ave.cmd` on the Rust pty runner.

use std::{io, time::Duration};

use ave::{
    cmd::{self, Argv, Options},
    exceptions::AveException,
};
use pyo3::{prelude::*, types::PyBytes};

use crate::errors;

/// Output copied to a Python callable (`output_file`'s writer) as it is read.
struct PyWriter(Py<PyAny>);

impl io::Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Python::attach(|py| {
            self.0.call1(py, (PyBytes::new(py, buf),)).map_err(|e| {
                e.print(py);
                io::Error::other("the output file's write failed")
            })
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn options(timeout: f64, debug: bool, cwd: &str) -> Options {
    let mut options = Options::new().debug(debug);
    if timeout > 0.0 && timeout.is_finite() {
        options = options.timeout(Duration::from_secs_f64(timeout));
    }
    if !cwd.is_empty() {
        options = options.cwd(cwd);
    }
    options
}

/// Runs `argv` on a new pty; returns the original's status code and the output bytes.
/// `write`, if given, receives each chunk of output as it is read.
#[pyfunction]
#[pyo3(signature = (argv, timeout=0.0, debug=false, cwd="", write=None))]
pub(crate) fn run<'py>(
    py: Python<'py>,
    argv: Vec<String>,
    timeout: f64,
    debug: bool,
    cwd: &str,
    write: Option<Py<PyAny>>,
) -> PyResult<(i32, Bound<'py, PyBytes>)> {
    let mut options = options(timeout, debug, cwd);
    if let Some(write) = write {
        options = options.output(PyWriter(write));
    }
    let argv = Argv::new(argv);
    match py.detach(|| cmd::run(argv, &options)) {
        Ok(output) => Ok((output.legacy_code(), PyBytes::new(py, &output.output))),
        Err(e) => Err(errors::ave_exception(py, &AveException::from(e))),
    }
}

/// Starts `argv` on a new pty and leaves it running; returns its pid and the pty's master
/// descriptor, which the caller owns (and must close, after reaping the pid).
#[pyfunction]
#[pyo3(signature = (argv, debug=false, cwd=""))]
pub(crate) fn run_bg(
    py: Python<'_>,
    argv: Vec<String>,
    debug: bool,
    cwd: &str,
) -> PyResult<(i32, i32)> {
    let options = options(0.0, debug, cwd);
    let argv = Argv::new(argv);
    match py.detach(|| cmd::run_bg(argv, &options)) {
        Ok(background) => {
            let (pid, master) = background.into_raw_parts().map_err(|e| errors::plain(&e))?;
            let pid = i32::try_from(pid.as_u32()).unwrap_or(-1);
            Ok((pid, std::os::fd::IntoRawFd::into_raw_fd(master)))
        }
        Err(e) => Err(errors::ave_exception(py, &AveException::from(e))),
    }
}
