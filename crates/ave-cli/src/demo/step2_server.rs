//! Step 2: the diagnostic service in a synchronized child process.

use crate::demo::*;

impl Demo {
    pub(super) fn start_server(&mut self) -> anyhow::Result<Done> {
        let home = self.home.clone().context("no home")?;
        let keys = self.keys.as_ref().context("no keys")?;
        let prepared = server::prepare(&home, keys)?;
        self.port = prepared.port;
        self.reports = Some(prepared.reports);
        let process = self.server.insert(prepared.process);
        let started = Instant::now();
        let result = process.start(false, true);
        let took = started.elapsed();
        // Known even when the child failed to initialize, so the cleanup can end it.
        if let Ok(pid) = process.pid() {
            self.pids.push(("server", pid.get().unsigned_abs()));
        }
        let pid = result.context("start the server process")?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        self.detail(format_args!(
            "pid {pid} (named {:?}) serves 127.0.0.1:{} with the accounts of authkeys.json",
            comm.trim(),
            self.port
        ));
        self.detail(format_args!(
            "Process::start(daemonize=false, synchronize=true) returned in {}, once the child \
             had its signal handling, runtime and handover socket",
            duration(took)
        ));
        let socket = prepared.socket;
        let is_socket = fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket());
        ensure!(is_socket, "the server has no handover socket at {}", socket.display());
        self.detail(format_args!("replaceable through {}", socket.display()));
        Ok(Done {
            summary: format!(
                "pid {pid} serving 127.0.0.1:{}, synchronized start in {}",
                self.port,
                duration(took)
            ),
            data: json!({
                "pid": pid.get(),
                "port": self.port,
                "name": comm.trim(),
                "start_ms": millis(took),
                "handover_socket": socket,
            }),
        })
    }
}
