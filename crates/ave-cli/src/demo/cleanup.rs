//! The cleanup: whatever still runs is ended and the home removed, after the last step, a
//! failure or a signal alike.

use crate::demo::*;

impl Demo {
    /// Ends whatever still runs and removes the home: after the last step, a failure or a
    /// signal alike. Bounded: every wait has a limit, then SIGKILL.
    pub(super) async fn cleanup(&mut self) {
        self.client = None;
        if let Some(successor) = self.successor.as_mut()
            && successor.status.is_none()
        {
            let pid = successor.pid;
            let note = match successor.kill().await {
                Ok(status) => format!("ended the new instance (pid {pid}): {status}"),
                Err(e) => format!("could not end the new instance (pid {pid}): {e:#}"),
            };
            self.cleanup.push(note);
        }
        tokio::task::block_in_place(|| self.cleanup_sync());
        for note in &self.cleanup {
            self.out.line(format_args!("cleanup: {note}"));
        }
    }

    /// The synchronous part of the cleanup: pty commands, the first server and the home.
    pub(super) fn cleanup_sync(&mut self) {
        // A run of `ave::cmd` that was dropped in the middle (a signal) has ended its
        // command's session and reaped it before the drop returned; this checks it.
        for session in std::mem::take(&mut self.pty_sessions) {
            let left = ave::cmd::session_members(session);
            let note = if left.is_empty() {
                format!("the pty command's session {session} was ended")
            } else {
                for pid in &left {
                    let pid =
                        nix::unistd::Pid::from_raw(i32::try_from(pid.as_u32()).unwrap_or(i32::MAX));
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
                format!(
                    "processes {left:?} of the pty command's session {session} were left: killed"
                )
            };
            self.cleanup.push(note);
        }
        if let Some(server) = self.server.as_mut()
            && let Ok(pid) = server.pid()
            && server.status().is_none()
        {
            let note = match end_process(server) {
                Ok(status) => format!("ended the server (pid {pid}): {status}"),
                Err(e) => format!("could not end the server (pid {pid}): {e:#}"),
            };
            self.cleanup.push(note);
        }
        if let Some(home) = &self.home
            && !self.keep
            && fs::symlink_metadata(home).is_ok()
        {
            let note = match fs::remove_dir_all(home) {
                Ok(()) => {
                    self.home_removed = true;
                    format!("removed {}", home.display())
                }
                Err(e) => format!("could not remove {}: {e}", home.display()),
            };
            self.cleanup.push(note);
        }
    }
}

/// SIGTERM (a clean stop), then SIGKILL if it is still there after a while; reaped.
pub(super) fn end_process(process: &mut Process) -> anyhow::Result<ExitStatus> {
    process.terminate()?;
    match process.join(Some(Duration::from_secs(3))) {
        Ok(status) => Ok(status),
        Err(_) => {
            process.kill(Signal::KILL)?;
            Ok(process.join(Some(LIMIT))?)
        }
    }
}
