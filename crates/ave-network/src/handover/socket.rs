//! The socket directory: where a serving instance listens for its successor, who may
//! talk to it, and how a successor's socket replaces its predecessor's.

use std::{
    fmt, fs, io,
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
};

use crate::{
    Error,
    control::{Control, ControlHandle, Stopped},
    fdtx,
    handover::{
        HandoverOptions, Successor,
        channel::check_peer,
        old::{hand_over, refuse},
    },
};

/// How many peers that ask during a handover may wait for their refusal at once.
const MAX_REFUSING: usize = 8;

/// Where the handover socket of the service `name` lives under `home`:
/// `<home>/.ave/handover/<name>.sock`.
pub fn socket_path(home: &Path, name: &str) -> PathBuf {
    home.join(".ave").join("handover").join(format!("{name}.sock"))
}

/// The socket a serving instance listens on for a successor.
pub struct HandoverSocket {
    listener: Option<UnixListener>,
    /// Where the socket file is now.
    path: PathBuf,
    /// Where it goes once installed (the same as `path` when bound in place).
    target: PathBuf,
    /// The socket file's device and inode, to remove it only while it is ours.
    id: (u64, u64),
    handed_over: bool,
}

impl fmt::Debug for HandoverSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoverSocket").field("path", &self.path).finish_non_exhaustive()
    }
}

impl HandoverSocket {
    /// Listens at `path` for a successor. The directory is created 0700 if missing; a
    /// stale socket left by an instance that died is replaced.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with an `AddrInUse` source if a live instance already listens there
    /// (take it over with [`take_over`](crate::handover::take_over) instead); [`Error::Io`] if the directory or the
    /// socket cannot be created, or the directory belongs to another user.
    pub fn bind(path: &Path) -> Result<HandoverSocket, Error> {
        private_parent(path)?;
        if fs::symlink_metadata(path).is_ok() {
            if !fdtx::is_socket(path) {
                return Err(Error::io(
                    format!("{} exists and is not a socket", path.display()),
                    io::Error::from(io::ErrorKind::AlreadyExists),
                ));
            }
            match UnixStream::connect(path) {
                // The probe closes before saying hello; the instance ignores it.
                Ok(_) => return Err(live_instance(path)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "removing a stale handover socket");
                    remove_if_exists(path)?;
                }
                Err(e) => return Err(Error::io(format!("probe {}", path.display()), e)),
            }
        }
        let listener = match UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(live_instance(path)),
            Err(e) => return Err(Error::io(format!("listen on {}", path.display()), e)),
        };
        HandoverSocket::new(listener, path.to_owned(), path.to_owned())
    }

    /// Listens beside `path`, for a successor that will be the serving instance once its
    /// handover is committed: [`HandoverSocket::install`] then moves the socket to `path`
    /// in one atomic rename, so the next successor always finds someone to talk to.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or the socket cannot be created.
    pub fn bind_successor(path: &Path) -> Result<HandoverSocket, Error> {
        private_parent(path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        remove_abandoned(path, &name);
        let temp = path.with_file_name(format!(".{name}.{}", std::process::id()));
        remove_if_exists(&temp)?;
        let listener = UnixListener::bind(&temp)
            .map_err(|e| Error::io(format!("listen on {}", temp.display()), e))?;
        HandoverSocket::new(listener, temp, path.to_owned())
    }

    fn new(
        listener: UnixListener,
        path: PathBuf,
        target: PathBuf,
    ) -> Result<HandoverSocket, Error> {
        let mut socket = HandoverSocket {
            listener: Some(listener),
            path,
            target,
            id: (0, 0),
            handed_over: false,
        };
        fs::set_permissions(&socket.path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("restrict {}", socket.path.display()), e))?;
        let meta = fs::symlink_metadata(&socket.path)
            .map_err(|e| Error::io(format!("inspect {}", socket.path.display()), e))?;
        socket.id = (meta.dev(), meta.ino());
        Ok(socket)
    }

    /// Moves a socket bound with [`HandoverSocket::bind_successor`] to its final path,
    /// replacing the previous instance's (a no-op for [`HandoverSocket::bind`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the rename fails.
    pub fn install(&mut self) -> Result<(), Error> {
        if self.path != self.target {
            fs::rename(&self.path, &self.target).map_err(|e| {
                Error::io(format!("move {} to {}", self.path.display(), self.target.display()), e)
            })?;
            self.path = self.target.clone();
        }
        Ok(())
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves successors of the `Control` behind `handle`, one at a time, until one takes
    /// over, and returns it at the commit. The `Control` then drains: the connections
    /// with a call in flight follow as their calls end (up to
    /// [`Limits::drain`](crate::control::Limits::drain)), and its loop ends with
    /// [`Stopped::Replaced`]. A handover that fails is rolled back, logged, and the next
    /// successor is awaited; another successor that asks meanwhile is refused. Returns
    /// `Ok(None)` when the `Control` stops first.
    ///
    /// Must run on the runtime of the `Control` (spawn it).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be registered with the runtime or accepting
    /// fails.
    pub async fn serve(
        mut self,
        handle: ControlHandle,
        options: HandoverOptions,
    ) -> Result<Option<Successor>, Error> {
        let Some(std) = self.listener.take() else { return Ok(None) };
        let listener = std
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixListener::from_std(std))
            .map_err(|e| Error::io("use the handover socket", e))?;
        let mut stopping = handle.shared.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stopping.wait_for(Option::is_some) => return Ok(None),
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => return Err(Error::io("accept on the handover socket", e)),
            };
            let pid = match check_peer(&stream) {
                Ok(pid) => pid,
                Err(e) => {
                    tracing::warn!(error = %ave_exceptions::error_chain(&e), "handover peer refused");
                    continue;
                }
            };
            let stream = match stream.into_std().map_err(|e| Error::io("use a handover peer", e)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "handover peer dropped");
                    continue;
                }
            };
            // One handover at a time: a successor that asks meanwhile is told so.
            let handover = hand_over(&handle, stream, pid, &options);
            tokio::pin!(handover);
            let mut refusing = tokio::task::JoinSet::new();
            let result = loop {
                tokio::select! {
                    biased;
                    result = &mut handover => break result,
                    Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
                    accepted = listener.accept() => {
                        // At most a few peers wait for their refusal (each may take its
                        // time to say hello); more are closed at once.
                        if let (Ok((other, _)), true) = (accepted, refusing.len() < MAX_REFUSING) {
                            refusing.spawn(refuse(other, "another replace is in progress"));
                        }
                    }
                }
            };
            // Those still waiting to be refused are closed with the handover's end.
            drop(refusing);
            match result {
                Ok(Some((successor, drain))) => {
                    self.handed_over = true;
                    tracing::info!(
                        pid = successor.pid,
                        connections = successor.connections,
                        kept = successor.kept,
                        elapsed_ms = successor.elapsed.as_secs_f64() * 1e3,
                        "handed over to a successor"
                    );
                    // The calls in flight finish here; their connections follow.
                    let drain = drain.run(handle.clone(), handle.limits().drain);
                    handle.run_alongside(Box::pin(drain));
                    return Ok(Some(successor));
                }
                Ok(None) => tracing::debug!(pid, "a peer left the handover socket before hello"),
                Err(e) => tracing::warn!(
                    pid,
                    error = %ave_exceptions::error_chain(&e),
                    "handover failed; still serving"
                ),
            }
        }
    }
}

impl Drop for HandoverSocket {
    fn drop(&mut self) {
        if self.handed_over {
            // The successor's socket is at the path now.
            return;
        }
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.id {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Runs `control` until it stops, replaceable through `socket` meanwhile; returns why it
/// stopped and, if it was replaced, by whom. Spawns the socket's task on the current
/// runtime.
///
/// # Errors
///
/// As [`Control::run`].
pub async fn run_replaceable(
    control: Control,
    socket: HandoverSocket,
    options: HandoverOptions,
) -> Result<(Stopped, Option<Successor>), Error> {
    let offer = tokio::spawn(socket.serve(control.handle(), options));
    let stopped = control.run().await?;
    // The socket's task ends with the control: with the successor, or with nothing.
    let successor = match offer.await {
        Ok(Ok(successor)) => successor,
        Ok(Err(e)) => {
            tracing::warn!(error = %ave_exceptions::error_chain(&e), "the handover socket failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "the handover socket's task failed");
            None
        }
    };
    Ok((stopped, successor))
}

/// Creates the socket's directory (0700) and makes sure it is this user's and private.
fn private_parent(path: &Path) -> Result<(), Error> {
    let dir =
        path.parent().filter(|d| !d.as_os_str().is_empty()).ok_or_else(|| Error::BadArgument {
            what: "socket path",
            value: path.display().to_string(),
            expected: "a path in a directory",
        })?;
    fdtx::ensure_private_dir(dir)?;
    let meta = fs::metadata(dir).map_err(|e| Error::io(format!("inspect {}", dir.display()), e))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::io(
            format!("{} belongs to uid {}, not {me}", dir.display(), meta.uid()),
            io::Error::from(io::ErrorKind::PermissionDenied),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        tracing::info!(dir = %dir.display(), "making the handover directory private (0700)");
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("restrict {}", dir.display()), e))?;
    }
    Ok(())
}

/// Removes the sockets that successors which died before installing theirs left beside
/// `path` (`.<name>.<pid>` of a process that no longer exists).
fn remove_abandoned(path: &Path, name: &str) {
    let Some(dir) = path.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        let alive = Path::new("/proc").join(pid).exists();
        if pid.parse::<u32>().is_ok() && !alive && fdtx::is_socket(&entry.path()) {
            tracing::debug!(path = %entry.path().display(), "removing an abandoned handover socket");
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

fn live_instance(path: &Path) -> Error {
    Error::io(
        format!("another instance is serving (its handover socket {} is live)", path.display()),
        io::Error::from(io::ErrorKind::AddrInUse),
    )
}
