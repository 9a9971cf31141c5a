//! The client side: `RemoteControl` calls, `BlockingConnection` and `find_free_port`.

use std::{
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    os::fd::{AsRawFd, IntoRawFd},
    time::Duration,
};

use ave::network::{
    Address, BlockingRemoteControl, Error,
    client::Call,
    connection::{BlockingConnection, find_free_port_in},
};
use pyo3::{
    exceptions::PyValueError,
    prelude::*,
    types::{PyBytes, PyDict, PyTuple},
};

use crate::{convert, errors, sys};

/// Seconds as a duration; `None`, zero or a negative value mean "no limit".
pub(crate) fn seconds(timeout: Option<f64>) -> Option<Duration> {
    timeout.filter(|t| *t > 0.0 && t.is_finite()).map(Duration::from_secs_f64)
}

/// A client of one service (the engine of `ave.network.control.RemoteControl`).
#[pyclass(module = "ave._native", frozen)]
pub(crate) struct Remote {
    inner: BlockingRemoteControl,
}

#[pymethods]
impl Remote {
    /// A client of `host:port`; with `fd`, over that connected and authenticated socket.
    #[new]
    #[pyo3(signature = (host, port, authkey=None, timeout=None, optimist=false, fd=None, resource=None))]
    fn new(
        host: &str,
        port: u16,
        authkey: Option<&str>,
        timeout: Option<f64>,
        optimist: bool,
        fd: Option<i32>,
        resource: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Remote> {
        let address = Address::new(host, port);
        let py = resource.map(|r| r.py());
        let inner = match fd {
            Some(fd) => {
                let stream = TcpStream::from(sys::owned_fd(fd)?);
                let conn = BlockingConnection::from_stream(stream).map_err(|e| {
                    py.map_or_else(|| errors::plain(&e), |py| errors::network(py, &e))
                })?;
                BlockingRemoteControl::from_connection(conn, address)
            }
            None => BlockingRemoteControl::new(address, authkey),
        };
        let mut inner = inner.with_timeout(seconds(timeout)).with_optimist(optimist);
        if let Some(resource) = resource.filter(|r| !r.is_none()) {
            inner = inner.with_resource(convert::to_value_arg(resource)?);
        }
        Ok(Remote { inner })
    }

    /// Calls `method`; returns its result, or `None` at once for a one-way call.
    #[pyo3(signature = (method, args, kwargs=None, one_way=false))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        one_way: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut call = Call::new(method).one_way(one_way);
        for arg in args.iter() {
            call = call.arg(convert::to_value_arg(&arg)?);
        }
        if let Some(kwargs) = kwargs {
            for (k, v) in kwargs.iter() {
                call = call.kwarg(k.extract::<String>()?, convert::to_value_arg(&v)?);
            }
        }
        let result = py.detach(|| self.inner.invoke(&call));
        match result {
            Ok(Some(value)) => convert::to_py(py, &value),
            Ok(None) => Ok(py.None().into_bound(py)),
            Err(e) => Err(errors::network(py, &e)),
        }
    }

    /// Connects now (the handshake included), within `timeout` seconds.
    #[pyo3(signature = (timeout=None))]
    fn connect(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        py.detach(|| self.inner.connect(seconds(timeout))).map_err(|e| errors::network(py, &e))
    }

    /// Closes the connection; the next call connects again.
    fn close(&self) {
        self.inner.disconnect();
    }

    /// Whether the last handshake authenticated (`None` before the first one).
    #[getter]
    fn authenticated(&self) -> Option<bool> {
        self.inner.authenticated()
    }
}

/// A blocking framed connection (the engine of `ave.network.connection.BlockingConnection`).
#[pyclass(module = "ave._native")]
pub(crate) struct Framed {
    conn: Option<BlockingConnection>,
}

impl Framed {
    fn conn(&mut self) -> PyResult<&mut BlockingConnection> {
        self.conn.as_mut().ok_or_else(|| {
            Python::attach(|py| errors::network_error(py, &ave::exceptions::NetworkError::closed()))
        })
    }
}

fn map<T>(py: Python<'_>, r: Result<T, Error>) -> PyResult<T> {
    r.map_err(|e| errors::network(py, &e))
}

#[pymethods]
impl Framed {
    /// Connects to `host:port` within `timeout`, retrying refused attempts if `optimist`.
    #[staticmethod]
    #[pyo3(signature = (host, port, timeout=None, optimist=false))]
    fn connect(
        py: Python<'_>,
        host: &str,
        port: u16,
        timeout: Option<f64>,
        optimist: bool,
    ) -> PyResult<Framed> {
        let address = Address::new(host, port);
        let conn = map(
            py,
            py.detach(|| BlockingConnection::connect(&address, seconds(timeout), optimist)),
        )?;
        Ok(Framed { conn: Some(conn) })
    }

    /// Accepts one connection on the listening socket `fd` (borrowed) within `timeout`.
    #[staticmethod]
    #[pyo3(signature = (fd, timeout=None))]
    fn accept(py: Python<'_>, fd: i32, timeout: Option<f64>) -> PyResult<Framed> {
        let listener = TcpListener::from(sys::dup_fd(fd)?);
        let conn = map(py, py.detach(|| BlockingConnection::accept(&listener, seconds(timeout))))?;
        Ok(Framed { conn: Some(conn) })
    }

    /// Wraps the connected socket `fd` (borrowed: it is duplicated).
    #[staticmethod]
    fn from_fd(py: Python<'_>, fd: i32) -> PyResult<Framed> {
        let stream = TcpStream::from(sys::dup_fd(fd)?);
        Ok(Framed { conn: Some(map(py, BlockingConnection::from_stream(stream))?) })
    }

    /// Reads exactly `size` bytes.
    #[pyo3(signature = (size, timeout=None))]
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        size: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let conn = self.conn()?;
        let data = map(py, py.detach(|| conn.read(size, seconds(timeout))))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Writes all of `data`.
    #[pyo3(signature = (data, timeout=None))]
    fn write(&mut self, py: Python<'_>, data: &[u8], timeout: Option<f64>) -> PyResult<()> {
        let conn = self.conn()?;
        let data = data.to_vec();
        map(py, py.detach(|| conn.write(&data, seconds(timeout))))
    }

    /// Reads one frame.
    #[pyo3(signature = (timeout=None))]
    fn get<'py>(&mut self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let conn = self.conn()?;
        let data = map(py, py.detach(|| conn.get(seconds(timeout))))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Writes one frame.
    #[pyo3(signature = (payload, timeout=None))]
    fn put(&mut self, py: Python<'_>, payload: &[u8], timeout: Option<f64>) -> PyResult<()> {
        let conn = self.conn()?;
        let payload = payload.to_vec();
        map(py, py.detach(|| conn.put(&payload, seconds(timeout))))
    }

    /// The socket's descriptor, `-1` once closed.
    fn fileno(&self) -> i32 {
        self.conn.as_ref().map_or(-1, |c| c.stream().as_raw_fd())
    }

    /// A duplicate of the socket's descriptor, for a caller that keeps it.
    fn dup(&self) -> PyResult<i32> {
        let conn = self.conn.as_ref().ok_or_else(|| PyValueError::new_err("closed"))?;
        let stream = conn.stream().try_clone().map_err(|e| errors::plain(&e))?;
        Ok(stream.into_raw_fd())
    }

    /// Shuts the connection down and closes it.
    fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
    }
}

/// Binds (and listens on) a random free port in `start..=stop` on every interface;
/// returns the socket's descriptor (the caller owns it) and the port.
#[pyfunction]
#[pyo3(signature = (start=49152, stop=65535, listen=true))]
pub(crate) fn find_free_port(
    py: Python<'_>,
    start: u32,
    stop: u32,
    listen: bool,
) -> PyResult<(i32, u16)> {
    let clamp = |p: u32| u16::try_from(p.min(65535)).unwrap_or(u16::MAX);
    let (start, stop) = (clamp(start.max(1)), clamp(stop));
    let free = py
        .detach(|| find_free_port_in(IpAddr::V4(Ipv4Addr::UNSPECIFIED), start..=stop, listen))
        .map_err(|e| match e {
            Error::Io { context, .. } if context == "no free port available" => {
                pyo3::exceptions::PyException::new_err("no free port available")
            }
            other => errors::network(py, &other),
        })?;
    let port = free.port();
    Ok((free.into_fd().into_raw_fd(), port))
}
