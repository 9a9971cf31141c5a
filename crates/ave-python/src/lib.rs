//! Python 3 bindings: the extension module `ave._native` under the pure-Python package
//! `ave`, which offers the original `ave-common` API (`ave.cmd`, `ave.config`,
//! `ave.persona`, `ave.profile`, `ave.exceptions`, `ave.network.*`) on the Rust crates.
//!
//! Build and install it with `pip install crates/ave-python` (maturin is the build
//! backend). The Python package's own documentation (docstrings and `.pyi` stubs) is the
//! user's reference; this crate only holds the engines the package calls:
//!
//! - `server`: a Python `Control` subclass served by the Rust `Control`. The network work
//!   runs on a runtime thread without the GIL; Python methods and hooks run one at a time
//!   on the thread that called `run()` (see the module doc for the threading model).
//! - `client`: `RemoteControl` calls, `BlockingConnection`, `find_free_port`.
//! - `process`: `Process` on the Rust `Process` (fork, daemonize, synchronize, joins).
//! - `cmd`: `ave.cmd.run` and `run_bg` on the pty runner.
//! - `pipe`: framed JSON over a pipe; `fdtx`: descriptors over a Unix socket.
//! - `config`, `persona`: the configuration files and privilege drop.
//!
//! The GIL is released whenever Rust waits: on the network, on a pty, on a join.

mod client;
mod cmd;
mod convert;
mod errors;
mod fdtx;
mod pipe;
mod process;
mod server;
mod sys;

use std::path::{Path, PathBuf};

use ave::config;
use pyo3::{
    exceptions::PyException,
    prelude::*,
    types::{PyDict, PyList},
};
use serde_json::Value;

fn config_error(e: &config::Error) -> PyErr {
    PyException::new_err(errors::chain(e))
}

fn paths(list: Vec<PathBuf>) -> Vec<String> {
    list.into_iter().map(|p| p.to_string_lossy().into_owned()).collect()
}

/// Creates the default configuration files under `<home>/.ave/config`; returns the
/// created and the skipped paths.
#[pyfunction]
fn config_create_default(home: &str) -> PyResult<(Vec<String>, Vec<String>)> {
    let (created, skipped) =
        config::create_default(Path::new(home)).map_err(|e| config_error(&e))?;
    Ok((paths(created), paths(skipped)))
}

/// Loads a configuration file (a JSON object).
#[pyfunction]
fn config_load<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let object = config::load(Path::new(path)).map_err(|e| config_error(&e))?;
    convert::to_py(py, &Value::Object(object))
}

/// Loads `<home>/.ave/config/authkeys.json`: account → key (or `None`).
#[pyfunction]
fn config_load_authkeys<'py>(py: Python<'py>, home: &str) -> PyResult<Bound<'py, PyDict>> {
    let keys = config::load_authkeys(Path::new(home)).map_err(|e| config_error(&e))?;
    let dict = PyDict::new(py);
    for (account, key) in keys.iter() {
        dict.set_item(account, key)?;
    }
    Ok(dict)
}

/// Writes the `/etc/ave/user` file at `path` naming `user`; returns the user name.
#[pyfunction]
fn config_create_etc(path: &str, user: &str) -> PyResult<String> {
    let created = config::create_etc(Path::new(path), user).map_err(|e| config_error(&e))?;
    Ok(created.user.name)
}

/// Loads the `/etc/ave/user` file (at `path`, default the real one).
#[pyfunction]
#[pyo3(signature = (path=None))]
fn config_load_etc<'py>(py: Python<'py>, path: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
    let user = match path {
        Some(path) => config::load_etc_at(Path::new(path)),
        None => config::load_etc(),
    }
    .map_err(|e| config_error(&e))?;
    convert::to_py(py, &user.to_json())
}

/// Drops this process's privileges to `name`'s; returns the user's home directory.
#[pyfunction]
fn persona_become_user(name: &str) -> PyResult<String> {
    ave::persona::become_user(name)
        .map(|home| home.to_string_lossy().into_owned())
        .map_err(|e| PyException::new_err(errors::chain(&e)))
}

/// Whether `profile` matches `request` by the Rust profile rules (every key of the
/// request present with an equal value).
#[pyfunction]
fn profile_matches(profile: &Bound<'_, PyAny>, request: &Bound<'_, PyAny>) -> PyResult<bool> {
    let profile = ave::profile::Profile::from_value(convert::to_value_arg(profile)?)
        .map_err(|e| PyException::new_err(errors::chain(&e)))?;
    let request = ave::profile::Profile::from_value(convert::to_value_arg(request)?)
        .map_err(|e| PyException::new_err(errors::chain(&e)))?;
    Ok(profile.matches_keys(&request))
}

/// Every name the package's stubs promise, for a test that checks they exist.
#[pyfunction]
fn native_names(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    PyList::new(py, ["Remote", "Framed", "Peer", "Server", "Child", "Pipe", "FdTx"])
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<client::Remote>()?;
    m.add_class::<client::Framed>()?;
    m.add_class::<server::Peer>()?;
    m.add_class::<server::Server>()?;
    m.add_class::<process::Child>()?;
    m.add_class::<pipe::Pipe>()?;
    m.add_class::<fdtx::FdTx>()?;
    m.add_function(wrap_pyfunction!(client::find_free_port, m)?)?;
    m.add_function(wrap_pyfunction!(server::serve, m)?)?;
    m.add_function(wrap_pyfunction!(process::set_death_signal, m)?)?;
    m.add_function(wrap_pyfunction!(process::set_process_name, m)?)?;
    m.add_function(wrap_pyfunction!(cmd::run, m)?)?;
    m.add_function(wrap_pyfunction!(cmd::run_bg, m)?)?;
    m.add_function(wrap_pyfunction!(config_create_default, m)?)?;
    m.add_function(wrap_pyfunction!(config_load, m)?)?;
    m.add_function(wrap_pyfunction!(config_load_authkeys, m)?)?;
    m.add_function(wrap_pyfunction!(config_create_etc, m)?)?;
    m.add_function(wrap_pyfunction!(config_load_etc, m)?)?;
    m.add_function(wrap_pyfunction!(persona_become_user, m)?)?;
    m.add_function(wrap_pyfunction!(profile_matches, m)?)?;
    m.add_function(wrap_pyfunction!(native_names, m)?)?;
    Ok(())
}
