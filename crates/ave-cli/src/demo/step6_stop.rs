//! Step 6: the new instance is stopped with its `stop` RPC.

use crate::demo::*;

impl Demo {
    pub(super) async fn stop(&mut self) -> anyhow::Result<Done> {
        let client = self.client.take().context("no client")?;
        let (stopped, stop_time) = timed(client.call("stop", ())).await;
        stopped.context("stop")?;
        drop(client);
        let waited = Instant::now();
        let successor = self.successor.as_mut().context("no successor")?;
        let new = successor.pid;
        let status = successor.wait(LIMIT).await.context("wait for the new instance")?;
        let exit_time = waited.elapsed();
        ensure!(status.success(), "the new instance ended with {status}");
        let old = self.server_pid()?;
        let old_status = self.server.as_ref().and_then(Process::status);
        ensure!(old_status == Some(ExitStatus::Exited(0)), "the old instance: {old_status:?}");
        for (role, pid) in &self.pids {
            ensure!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "the {role} (pid {pid}) is still there"
            );
        }
        self.detail(format_args!(
            "stop() answered in {}; the new instance (pid {new}) exited 0 {} later; the old \
             one (pid {old}) had exited 0",
            duration(stop_time),
            duration(exit_time)
        ));
        self.detail(format_args!(
            "no process of the demo is left (pids {})",
            self.pids.iter().map(|(_, p)| p.to_string()).collect::<Vec<_>>().join(", ")
        ));
        let home = self.home.clone().context("no home")?;
        let what = if self.keep {
            self.detail(format_args!("kept the temporary home: {}", home.display()));
            "home kept"
        } else {
            let (removed, remove_time) = timed(async { fs::remove_dir_all(&home) }).await;
            removed.with_context(|| format!("remove {}", home.display()))?;
            ensure!(!home.exists(), "{} is still there", home.display());
            self.home_removed = true;
            self.detail(format_args!("removed {} in {}", home.display(), duration(remove_time)));
            "home removed"
        };
        Ok(Done {
            summary: format!(
                "stop answered in {}, the new instance exited 0 {} later, {what}",
                duration(stop_time),
                duration(exit_time)
            ),
            data: json!({
                "stop_ms": millis(stop_time),
                "exit_ms": millis(exit_time),
                "new_exit": status.to_string(),
                "old_exit": old_status.map(|s| s.to_string()),
                "home_removed": self.home_removed,
            }),
        })
    }
}
