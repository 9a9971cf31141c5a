//! Where the admin socket is: an explicit path, `TRIPESOCK`, `TRIPEDIR`, or the default
//! (spec/tripe-admin.md section 1).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

/// The TrIPE directory when neither an argument nor `TRIPEDIR` names one (upstream's
/// configured `CONFIGDIR`).
pub const DEFAULT_DIR: &str = "/etc/tripe";

/// The admin socket when nothing names one and no TrIPE directory is chosen: the path of
/// the upstream Debian packaging (`--with-socketdir=/var/run`).
pub const DEFAULT_SOCKET: &str = "/var/run/tripesock";

/// The socket's file name inside a TrIPE directory (upstream's built-in default, where the
/// socket directory is the server's working directory).
pub const SOCKET_NAME: &str = "tripesock";

/// Resolves the admin socket path from the arguments and the process environment.
///
/// See [`resolve_socket_with`] for the rules; this reads `TRIPESOCK` and `TRIPEDIR` from
/// the environment.
pub fn resolve_socket(socket: Option<&Path>, dir: Option<&Path>) -> PathBuf {
    resolve_socket_with(socket, dir, |name| std::env::var_os(name))
}

/// Resolves the admin socket path, reading environment variables through `env`.
///
/// - The directory is `dir`, else `$TRIPEDIR`, else [`DEFAULT_DIR`] (`tripectl -d` and
///   `TRIPEDIR` mean the same).
/// - The socket is `socket`, else `$TRIPESOCK`; a relative one is taken inside the
///   directory, as `tripectl` does by changing into it.
/// - With neither, the socket is [`SOCKET_NAME`] inside the directory when a directory was
///   chosen (argument or `TRIPEDIR`), and [`DEFAULT_SOCKET`] otherwise.
///
/// Empty values count as unset.
///
/// # Examples
///
/// ```
/// use std::path::{Path, PathBuf};
/// use ave_tripe::resolve_socket_with;
///
/// let no_env = |_: &str| None;
/// assert_eq!(resolve_socket_with(None, None, no_env), PathBuf::from("/var/run/tripesock"));
/// assert_eq!(
///     resolve_socket_with(None, Some(Path::new("/srv/vpn")), no_env),
///     PathBuf::from("/srv/vpn/tripesock"),
/// );
/// assert_eq!(
///     resolve_socket_with(Some(Path::new("admin.sock")), Some(Path::new("/srv/vpn")), no_env),
///     PathBuf::from("/srv/vpn/admin.sock"),
/// );
/// ```
pub fn resolve_socket_with(
    socket: Option<&Path>,
    dir: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> PathBuf {
    let non_empty = |v: OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    let chosen_dir = dir
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .or_else(|| env("TRIPEDIR").and_then(non_empty));
    let socket = socket
        .filter(|s| !s.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .or_else(|| env("TRIPESOCK").and_then(non_empty));
    match (socket, chosen_dir) {
        (Some(socket), _) if socket.is_absolute() => socket,
        (Some(socket), dir) => dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)).join(socket),
        (None, Some(dir)) => dir.join(SOCKET_NAME),
        (None, None) => PathBuf::from(DEFAULT_SOCKET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn resolution_order() {
        let both = [("TRIPESOCK", "/run/env.sock"), ("TRIPEDIR", "/env/dir")];
        // An explicit socket wins over everything.
        assert_eq!(
            resolve_socket_with(Some(Path::new("/a/s")), Some(Path::new("/d")), env(&both)),
            PathBuf::from("/a/s")
        );
        // Then TRIPESOCK.
        assert_eq!(resolve_socket_with(None, None, env(&both)), PathBuf::from("/run/env.sock"));
        // A relative TRIPESOCK lives in the directory: the argument's, else TRIPEDIR's,
        // else the default one.
        let rel = [("TRIPESOCK", "sock"), ("TRIPEDIR", "/env/dir")];
        assert_eq!(resolve_socket_with(None, None, env(&rel)), PathBuf::from("/env/dir/sock"));
        assert_eq!(
            resolve_socket_with(None, Some(Path::new("/arg")), env(&rel)),
            PathBuf::from("/arg/sock")
        );
        assert_eq!(
            resolve_socket_with(None, None, env(&[("TRIPESOCK", "sock")])),
            PathBuf::from("/etc/tripe/sock")
        );
        // A chosen directory holds the socket; otherwise the packaged default.
        assert_eq!(
            resolve_socket_with(None, None, env(&[("TRIPEDIR", "/env/dir")])),
            PathBuf::from("/env/dir/tripesock")
        );
        assert_eq!(resolve_socket_with(None, None, env(&[])), PathBuf::from(DEFAULT_SOCKET));
        // Empty values are unset.
        assert_eq!(
            resolve_socket_with(Some(Path::new("")), None, env(&[("TRIPESOCK", "")])),
            PathBuf::from(DEFAULT_SOCKET)
        );
    }
}
