//! `cargo xtask python`: the Python package `ave` (crates/ave-python) built, installed and
//! tested the way its users install it.
//!
//! 1. A virtual environment under the target directory (`<target>/python-venv`), made
//!    once with `python3 -m venv`, with maturin and pytest from PyPI.
//! 2. `pip install crates/ave-python` into it (maturin as the build backend, without
//!    build isolation so the venv's maturin is used; the dev profile keeps CI fast, set
//!    `AVE_PYTHON_PROFILE=release` for an optimized build).
//! 3. The `ave` binary, for the interop tests (`ave call`, `ave serve`).
//! 4. pytest on `crates/ave-python/tests`, with `AVE_BIN` naming the binary.
//!
//! `cargo xtask python bench [ARGS...]` builds both in release instead and runs
//! `crates/ave-python/bench/rpc_throughput.py` (calls per second with 64 connections: a
//! Python service on the bindings against a Python 3 port of the original's poll loop,
//! with and without `TCP_NODELAY`, and against `ave serve`), which prints the ratios.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use crate::Result;

/// The PyPI packages the step installs: maturin builds the package, pytest runs its tests.
const TOOLS: &[&str] = &["maturin>=1.9.4,<2", "pytest>=7"];

pub(crate) fn run(root: &Path, target: &Path, args: &[String]) -> Result {
    let bench = args.first().is_some_and(|a| a == "bench");
    let venv = target.join("python-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let python3 = env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        run_cmd(Command::new(&python3).args(["-m", "venv"]).arg(&venv))?;
    }
    let have_tools = Command::new(&python)
        .args(["-c", "import maturin, pytest"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_tools {
        run_cmd(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .args(TOOLS),
        )?;
    }
    let profile = if bench {
        "release".to_owned()
    } else {
        env::var("AVE_PYTHON_PROFILE").unwrap_or_else(|_| "dev".to_owned())
    };
    run_cmd(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(["--no-build-isolation", "--force-reinstall", "--no-deps"])
            .arg(root.join("crates/ave-python"))
            .env("MATURIN_PEP517_ARGS", format!("--profile {profile}"))
            .env("PATH", path_with(&venv.join("bin"))),
    )?;
    let mut build = Command::new(cargo());
    build.args(["build", "--quiet", "-p", "ave-cli", "--bin", "ave"]);
    if bench {
        build.arg("--release");
        run_cmd(&mut build)?;
        return run_cmd(
            Command::new(&python)
                .arg(root.join("crates/ave-python/bench/rpc_throughput.py"))
                .arg(target.join("release/ave"))
                .args(&args[1..]),
        );
    }
    run_cmd(&mut build)?;
    let ave_bin = target.join("debug/ave");
    run_cmd(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .args(args)
            .current_dir(root.join("crates/ave-python"))
            .env("AVE_BIN", &ave_bin),
    )
}

fn path_with(dir: &Path) -> PathBuf {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(path) = env::var_os("PATH") {
        paths.extend(env::split_paths(&path));
    }
    env::join_paths(paths).map(PathBuf::from).unwrap_or_else(|_| dir.to_path_buf())
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run_cmd(cmd: &mut Command) -> Result {
    println!("$ {cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed ({status})")) }
}
