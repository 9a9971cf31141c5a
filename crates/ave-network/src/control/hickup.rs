//! Hickup dumps: what a `Control` does on SIGUSR1.
//!
//! It forwards SIGUSR1 to its children whose kernel name starts with `ave-` (so a whole
//! tree of AVE services dumps at once, and other programs are left alone), then writes
//! `<home>/.ave/hickup/<YYYYmmdd-HHMMSS>-<proc_name>-<pid>` (local time; a second dump
//! within the same second gets a `.1`, `.2`, ... suffix instead of overwriting). The
//! file is created with mode 0600 and holds what a Rust service can report about
//! itself: its threads and their states, its listener, its connection table (addresses,
//! the kind of identity, never key text), its deferred joins, its descriptors and
//! memory, and whatever the service's `hickup` hook adds. The work runs in the event loop,
//! not in signal context.

use std::{
    fmt::Write as _,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use crate::{
    Error,
    control::ControlHandle,
    process::log::{ctime, now_secs, parse_stat, thread_list},
    process::{Pid, Signal},
    sys::process as sys,
    wire::handshake::Keys,
};

/// What a `Control`'s event loop does on SIGUSR1.
pub(crate) fn on_signal(handle: &ControlHandle) {
    match handle.hickup() {
        Ok(path) => tracing::info!(path = %path.display(), "wrote a hickup dump"),
        Err(e) => tracing::error!(
            "ERROR: could not write a hickup dump: {}",
            ave_exceptions::error_chain(&e)
        ),
    }
}

impl ControlHandle {
    /// Does what SIGUSR1 does to a `Control`: forwards SIGUSR1 to the children whose name
    /// starts with `ave-`, and writes a hickup dump into `<home>/.ave/hickup/`. Returns
    /// the dump's path.
    ///
    /// # Errors
    ///
    /// [`Error::NoHome`] if there is no home directory (neither
    /// [`ControlBuilder::home`](crate::control::ControlBuilder::home) nor `HOME`); [`Error::Io`] if
    /// the folder or the file cannot be made.
    pub fn hickup(&self) -> Result<PathBuf, Error> {
        let forwarded = forward_to_children(Signal::USR1);
        let home = self.hickup_home().ok_or(Error::NoHome)?;
        let dir = home.join(".ave").join("hickup");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("could not create {}", dir.display()), e))?;
        let text = self.dump_text(&forwarded);
        let stem = dump_stem(self.name(), Pid::this());
        let (path, mut file) = create_new(&dir, &stem)
            .map_err(|e| Error::io(format!("could not create a dump in {}", dir.display()), e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("could not write {}", path.display()), e))?;
        Ok(path)
    }

    /// Where hickup dumps go: `<home>/.ave/hickup/`.
    fn hickup_home(&self) -> Option<PathBuf> {
        self.shared
            .config
            .home
            .clone()
            .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from))
    }

    fn dump_text(&self, forwarded: &[(Pid, String)]) -> String {
        let me = Pid::this();
        let mut out = String::new();
        let _ = writeln!(out, "AVE hickup dump");
        let _ =
            writeln!(out, "process: {} (pid {me}, parent {})", self.name(), nix::unistd::getppid());
        let _ = writeln!(out, "time: {}", ctime(now_secs()));
        let _ = writeln!(out, "service: {}", self.service().name());
        let _ = write!(out, "threads:\n{}", thread_list());
        match self.local_addr() {
            Some(addr) if self.is_listening() => {
                let _ = writeln!(out, "listening: {addr}");
            }
            _ => {
                let _ = writeln!(out, "listening: no");
            }
        }
        if self.is_shutting_down() {
            let _ = writeln!(out, "shutting down: yes");
        }
        let connections = self.connections();
        let _ = writeln!(out, "connections: {}", connections.len());
        for c in &connections {
            let _ = writeln!(
                out,
                "  {} {} {}, identity: {}",
                c.id,
                c.address,
                if c.established { "established" } else { "authenticating" },
                identity_kind(self.keys(), c.identity.as_deref())
            );
        }
        let deferred = self.deferred_joins();
        let pids: Vec<String> = deferred.iter().map(Pid::to_string).collect();
        let _ = writeln!(out, "deferred joins: {} [{}]", deferred.len(), pids.join(", "));
        let children: Vec<String> =
            forwarded.iter().map(|(pid, name)| format!("{pid} ({name})")).collect();
        let _ = writeln!(out, "SIGUSR1 forwarded to: [{}]", children.join(", "));
        let fds = fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
        let _ = writeln!(out, "open descriptors: {fds}");
        if let Ok(status) = fs::read_to_string("/proc/self/status") {
            for line in status.lines().filter(|l| {
                ["VmRSS:", "VmHWM:", "VmSize:", "Threads:"].iter().any(|k| l.starts_with(k))
            }) {
                let _ = writeln!(out, "{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        if let Some(hook) = &self.shared.service.hooks().hickup {
            let call = std::panic::AssertUnwindSafe(|| hook(self));
            match std::panic::catch_unwind(call) {
                Ok(text) => {
                    let _ = write!(out, "service state:\n{text}");
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Err(_) => {
                    let _ = writeln!(out, "service state: the hickup hook panicked");
                }
            }
        }
        out
    }
}

/// `YYYYmmdd-HHMMSS-<name>-<pid>` in local time (`/` in the name becomes `_`).
fn dump_stem(name: &str, pid: Pid) -> String {
    let name = name.replace('/', "_");
    match sys::local_time(now_secs()) {
        Ok(t) => format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}-{name}-{pid}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        Err(_) => format!("{}-{name}-{pid}", now_secs()),
    }
}

/// Creates `<dir>/<stem>` with mode 0600, or `<stem>.1`, `<stem>.2`, ... if it exists.
fn create_new(dir: &Path, stem: &str) -> io::Result<(PathBuf, File)> {
    for n in 0..10_000 {
        let name = if n == 0 { stem.to_owned() } else { format!("{stem}.{n}") };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

/// What a connection's identity is, without the key.
fn identity_kind(keys: &Keys, identity: Option<&str>) -> String {
    let Some(key) = identity else { return "none (not authenticated)".to_owned() };
    if keys.primary() == Some(key) {
        return if key.is_empty() { "the empty primary key" } else { "the primary key" }.to_owned();
    }
    if let Some((name, _)) = keys.accounts().find(|(_, k)| *k == Some(key)) {
        return format!("the key of account {name:?}");
    }
    "a key given to the connection".to_owned()
}

/// The children of this process whose kernel name starts with `ave-` get `signal`;
/// returns them. A child that vanished meanwhile is skipped.
fn forward_to_children(signal: Signal) -> Vec<(Pid, String)> {
    let me = Pid::this().get();
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(stat) = parse_stat(&stat) else { continue };
        if stat.ppid != me || !stat.name.starts_with("ave-") || stat.state == "Z" {
            continue;
        }
        let Some(child) = Pid::from_raw(pid) else { continue };
        match sys::kill(pid, signal.number()) {
            Ok(()) => out.push((child, stat.name.to_owned())),
            Err(e) => tracing::debug!(pid, error = %e, "a child vanished before its SIGUSR1"),
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names() {
        let s = parse_stat("42 (ave-a (b) c) S 7 42 42 0").unwrap();
        assert_eq!((s.name, s.state, s.ppid), ("ave-a (b) c", "S", 7));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn identities_never_show_keys() {
        let keys = Keys::new(Some("primary-secret")).with_account("admin", Some("admin-secret"));
        assert_eq!(identity_kind(&keys, None), "none (not authenticated)");
        assert_eq!(identity_kind(&keys, Some("primary-secret")), "the primary key");
        assert_eq!(identity_kind(&keys, Some("admin-secret")), "the key of account \"admin\"");
        assert_eq!(identity_kind(&keys, Some("session-key")), "a key given to the connection");
    }

    #[test]
    fn dumps_never_overwrite() {
        let dir = ave_test_support::TempDir::new("hickup-unit");
        let (a, _) = create_new(dir.path(), "stem").unwrap();
        let (b, _) = create_new(dir.path(), "stem").unwrap();
        assert_eq!(a.file_name().unwrap(), "stem");
        assert_eq!(b.file_name().unwrap(), "stem.1");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
