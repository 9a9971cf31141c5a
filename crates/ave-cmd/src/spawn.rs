//! Starting a command: checks, `PATH` lookup and the environment in the parent, then
//! `sys::spawn` on a fresh pty.

use std::{
    ffi::{CString, OsStr, OsString},
    io,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use nix::unistd::{AccessFlags, access};

use crate::{Argv, Error, Options, Pid, sys};

/// The default search path of `execvp` when `PATH` is unset (glibc's `_CS_PATH`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// A started child: its pid, a pidfd for it, and the pty master.
pub(crate) struct Started {
    pub(crate) pid: Pid,
    pub(crate) pidfd: OwnedFd,
    pub(crate) master: OwnedFd,
}

/// Starts `argv` in a new session on a fresh pty.
pub(crate) fn start(argv: &Argv, options: &Options) -> Result<Started, Error> {
    let Some(program) = argv.program() else { return Err(Error::EmptyCommand) };
    if let Some(debug) = &options.debug {
        // Tracing must not fail a run.
        let _ = debug.write_chunk(format!("{argv}\n").as_bytes());
    }
    let cmd = || argv.as_slice().to_vec();
    let exec_error =
        |error: io::Error| Error::Exec { cmd: cmd(), program: program.to_owned(), error };
    let os_error = |operation, source| Error::Os { cmd: cmd(), operation, source };

    let cwd = match &options.cwd {
        Some(dir) => Some(check_cwd(dir).map_err(|error| Error::Cwd {
            cmd: cmd(),
            path: dir.clone(),
            error,
        })?),
        None => None,
    };
    let env = options.child_environment();
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
    let resolved = resolve(program, path_var, options.cwd.as_deref()).map_err(exec_error)?;

    let program_c = c_string(resolved.as_os_str()).map_err(exec_error)?;
    let argv_c = argv
        .as_slice()
        .iter()
        .map(|a| c_string(OsStr::new(a)))
        .collect::<io::Result<Vec<_>>>()
        .map_err(exec_error)?;
    let envp_c = env
        .iter()
        .map(|(k, v)| {
            let mut entry = OsString::with_capacity(k.len() + v.len() + 1);
            entry.push(k);
            entry.push("=");
            entry.push(v);
            c_string(&entry)
        })
        .collect::<io::Result<Vec<_>>>()
        .map_err(exec_error)?;

    let window = options.window;
    let (master, slave) =
        sys::open_pty(window.rows, window.cols).map_err(|e| os_error("allocating a pty", e))?;
    let request = sys::SpawnRequest {
        program: &program_c,
        argv: &argv_c,
        envp: &envp_c,
        slave: &slave,
        cwd: cwd.as_deref(),
    };
    let raw_pid = sys::spawn(&request).map_err(exec_error)?;
    let pid = Pid::from_raw(raw_pid);
    let pidfd = match sys::pidfd_open(raw_pid) {
        Ok(pidfd) => pidfd,
        Err(error) => {
            // Without a pidfd (Linux < 5.3) the child cannot be waited for properly; end it.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(raw_pid),
                nix::sys::signal::SIGKILL,
            );
            let _ = sys::waitpid(raw_pid, false);
            return Err(os_error("opening a pidfd", error));
        }
    };
    tracing::debug!(%pid, cmd = %argv, "started");
    Ok(Started { pid, pidfd, master })
}

/// Checks that a working directory can be entered (the child's `chdir` would report the
/// same error as a missing program otherwise).
fn check_cwd(dir: &Path) -> io::Result<CString> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    access(dir, AccessFlags::X_OK)?;
    c_string(dir.as_os_str())
}

/// Finds the program the way `execvp` does: as given when it contains a `/`, otherwise in
/// each directory of `PATH` (an empty entry is the working directory). Reports `EACCES`
/// when a candidate exists but cannot be executed and no other one can, `ENOENT` when
/// there is none.
fn resolve(program: &str, path_var: Option<&OsStr>, cwd: Option<&Path>) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let path_var = path_var.unwrap_or_else(|| OsStr::new(DEFAULT_PATH));
    let mut denied = false;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(program);
        // A relative candidate is relative to the child's working directory.
        let on_disk = match cwd {
            Some(cwd) if candidate.is_relative() => cwd.join(&candidate),
            _ => candidate.clone(),
        };
        match std::fs::metadata(&on_disk) {
            Ok(meta) if meta.is_file() && access(&on_disk, AccessFlags::X_OK).is_ok() => {
                return Ok(candidate);
            }
            Ok(_) => denied = true,
            Err(_) => {}
        }
    }
    let errno = if denied { libc::EACCES } else { libc::ENOENT };
    Err(io::Error::from_raw_os_error(errno))
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_path() {
        let path = OsStr::new("/nonexistent:/bin:/usr/bin");
        let found = resolve("sh", Some(path), None).unwrap();
        assert!(found.ends_with("sh") && found.is_absolute(), "{found:?}");
        assert_eq!(resolve("./x", Some(path), None).unwrap(), PathBuf::from("./x"));
        let missing = resolve("no-such-program-here", Some(path), None).unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(resolve("", Some(path), None).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_directory_named_like_the_program_is_denied() {
        // `/` contains `tmp`, a directory: execvp would report EACCES.
        let denied = resolve("tmp", Some(OsStr::new("/")), None).unwrap_err();
        assert_eq!(denied.raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn relative_path_entries_follow_the_working_directory() {
        let found = resolve("sh", Some(OsStr::new("bin")), Some(Path::new("/"))).unwrap();
        assert_eq!(found, PathBuf::from("bin/sh"));
    }
}
