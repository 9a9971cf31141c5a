//! `ave.network.fdtx.FdTx` on the Rust `fdtx` module: open descriptors passed over a
//! Unix socket, with one text message.

use std::{
    os::fd::IntoRawFd,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use ave::network::fdtx::{FdTx as RustFdTx, FdTxListener};
use pyo3::{exceptions::PyException, prelude::*, types::PyBytes};

use crate::{client::seconds, errors, sys};

/// One end of a descriptor transfer: a listener until `accept`, a connection after it.
#[pyclass(module = "ave._native", frozen)]
pub(crate) struct FdTx {
    listener: Mutex<Option<FdTxListener>>,
    conn: Mutex<Option<RustFdTx>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn not_connected() -> PyErr {
    PyException::new_err("not connected")
}

#[pymethods]
impl FdTx {
    #[new]
    fn new() -> FdTx {
        FdTx { listener: Mutex::new(None), conn: Mutex::new(None) }
    }

    /// Listens on `<dirname>/<filename>` (a random name if `None`); returns the path.
    #[pyo3(signature = (dirname, filename=None))]
    fn listen(&self, py: Python<'_>, dirname: &str, filename: Option<&str>) -> PyResult<String> {
        let listener =
            FdTxListener::listen(dirname, filename).map_err(|e| errors::network(py, &e))?;
        let path = listener.path().to_string_lossy().into_owned();
        *lock(&self.listener) = Some(listener);
        Ok(path)
    }

    /// Accepts the one peer, within `timeout` seconds.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let guard = lock(&self.listener);
        let listener = guard.as_ref().ok_or_else(|| PyException::new_err("not listening"))?;
        let conn =
            py.detach(|| listener.accept(seconds(timeout))).map_err(|e| errors::network(py, &e))?;
        *lock(&self.conn) = Some(conn);
        Ok(())
    }

    /// Connects to the listener at `path`, retrying until `timeout` seconds have passed.
    fn connect(&self, py: Python<'_>, path: &str, timeout: f64) -> PyResult<()> {
        let timeout = Duration::from_secs_f64(timeout.max(0.0));
        let conn =
            py.detach(|| RustFdTx::connect(path, timeout)).map_err(|e| errors::network(py, &e))?;
        *lock(&self.conn) = Some(conn);
        Ok(())
    }

    /// Sends `message` and the descriptors `fds` in one message.
    fn put(&self, py: Python<'_>, message: &[u8], fds: Vec<i32>) -> PyResult<()> {
        let borrowed = fds.iter().map(|&fd| sys::borrow_fd(fd)).collect::<PyResult<Vec<_>>>()?;
        let guard = lock(&self.conn);
        let conn = guard.as_ref().ok_or_else(not_connected)?;
        conn.put(message, &borrowed).map_err(|e| errors::network(py, &e))
    }

    /// Receives one message: its bytes (at most `max_msg_len`) and its descriptors (at most
    /// `max_fds`), which the caller owns.
    fn get<'py>(
        &self,
        py: Python<'py>,
        max_msg_len: usize,
        max_fds: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<i32>)> {
        let guard = lock(&self.conn);
        let conn = guard.as_ref().ok_or_else(not_connected)?;
        let received =
            py.detach(|| conn.get(max_msg_len, max_fds)).map_err(|e| errors::network(py, &e))?;
        let fds = received.fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
        Ok((PyBytes::new(py, &received.bytes), fds))
    }

    /// Closes the socket (and removes a listener's socket file).
    fn close(&self) {
        if let Some(conn) = lock(&self.conn).take() {
            conn.close();
        }
        if let Some(listener) = lock(&self.listener).take() {
            let _ = listener.close();
        }
    }
}
