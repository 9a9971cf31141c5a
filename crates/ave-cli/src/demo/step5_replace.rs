//! Step 5: `ave serve --replace` takes the service over while a client keeps calling.

use crate::demo::*;

impl Demo {
    pub(super) async fn replace(&mut self) -> anyhow::Result<Done> {
        let home = self.home.clone().context("no home")?;
        let client = self.client.take().context("no client")?;
        let old = self.server_pid()?;
        let before = client.call("get_pid", ()).await.context("get_pid")?;
        ensure!(before == old, "get_pid answered {before}, not the server's pid {old}");

        let mut pings = PingLoop::start(client);
        pings.wait_for(CALLS_AROUND, LIMIT).await?;
        let local = self.local_addr.context("no connection")?;
        self.detail(format_args!(
            "a client calls sync_ping in a loop on its one connection ({local}); get_pid says {old}"
        ));

        let exe = std::env::current_exe().context("find the ave program")?;
        let argv: Vec<String> = vec![
            exe.to_string_lossy().into_owned(),
            "serve".into(),
            "--replace".into(),
            "--home".into(),
            home.to_string_lossy().into_owned(),
            "--authkeys".into(),
        ];
        let spawned = Instant::now();
        let successor = self.successor.insert(Supervised::start(argv)?);
        let new = successor.pid;
        self.pids.push(("new instance", new));
        self.out.detail(format_args!(
            "started `ave serve --replace --home <temporary home> --authkeys` on a pty: pid {new}"
        ));
        if self.hold.as_deref() == Some("replace") {
            self.hold("in step 5, the new instance started").await;
        }

        // The old instance's own account of the handover, then its exit; unless the new
        // one ends first, which is a failed replace (the old one then serves on).
        let mut reports = self.reports.take().context("no report pipe")?;
        let mut reading = tokio::task::spawn_blocking(move || {
            let report = reports.get(Some(LIMIT));
            (reports, report)
        });
        let successor = self.successor.as_mut().context("no successor")?;
        let (reports, report) = tokio::select! {
            read = &mut reading => read?,
            ended = successor.wait(LIMIT) => {
                let status = ended?;
                bail!(
                    "the new instance ended ({status}) before it took over; it said: {:?}",
                    successor.said()
                );
            }
        };
        self.reports = Some(reports);
        let report = report.context("the old instance did not report how it ended")?;
        ensure!(report["stopped"] == "replaced", "the old instance ended otherwise: {report}");
        let server = self.server.as_mut().context("no server")?;
        let status = tokio::task::block_in_place(|| server.join(Some(LIMIT)))
            .context("wait for the old instance")?;
        let exited = Instant::now();
        let answered_at_exit = pings.answered();
        ensure!(status == ExitStatus::Exited(0), "the old instance {status}");

        let successor = self.successor.as_mut().context("no successor")?;
        let took_over = successor.line("took over", LIMIT).await?;
        let listening = successor.log.iter().find(|l| l.contains("listening on")).cloned();
        let same_port =
            listening.as_deref().is_some_and(|l| l.ends_with(&format!(":{}", self.port)));
        ensure!(same_port, "the new instance does not listen on port {}: {listening:?}", self.port);

        pings.wait_for(answered_at_exit + CALLS_AROUND, LIMIT).await?;
        let (client, record) = pings.finish().await?;
        // The loop ends at its first failed call (a second would reconnect).
        let failed = usize::from(record.failure.is_some());
        if let Some(failure) = &record.failure {
            bail!("a call failed: {failure}");
        }
        let during = record.between(spawned, exited);
        let gap = record.longest_gap();
        let after = client.call("get_pid", ()).await.context("get_pid")?;
        ensure!(after == new, "get_pid answered {after}, not the new instance's pid {new}");
        let identity = client.call("whoami", ()).await.context("whoami")?;
        ensure!(identity == self.admin.as_str(), "the connection lost its identity: {identity}");
        let conn = client.into_connection().await?;
        let local_after = conn.local_addr()?;
        ensure!(local_after == local, "the client reconnected: {local} became {local_after}");
        self.client = Some(
            RemoteControl::from_connection(conn, Address::new("127.0.0.1", self.port))
                .with_timeout(Some(CALL_TIMEOUT)),
        );

        let handover_ms = report["successor"]["elapsed_ms"].as_f64().unwrap_or(f64::NAN);
        let moved = report["successor"]["connections"].as_u64().unwrap_or(0);
        let replace_time = exited.duration_since(spawned);
        self.detail(format_args!(
            "the old instance (pid {old}) handed over its listener and {moved} connection(s) in \
             {handover_ms:.1} ms (from the new one's hello to its ready) and {status}"
        ));
        self.detail(format_args!(
            "the new instance says: {}",
            took_over.trim_start_matches("ave serve: ")
        ));
        self.detail(format_args!(
            "{during} calls answered during the replace ({} from starting the new instance to \
             the old one's exit), {failed} failed, longest gap between answers {}; {} calls in all",
            duration(replace_time),
            duration(gap),
            record.answers.len()
        ));
        self.detail(format_args!(
            "same connection ({local}): get_pid now says {new}, whoami still the admin key"
        ));
        Ok(Done {
            summary: format!(
                "{during} calls during the replace, {failed} failed, longest gap {}, handover \
                 {handover_ms:.1} ms, pid {old} -> {new} on the same connection",
                duration(gap)
            ),
            data: json!({
                "old_pid": old,
                "new_pid": new,
                "calls": record.answers.len(),
                "calls_during_replace": during,
                "failed_calls": failed,
                "longest_gap_ms": millis(gap),
                "handover_ms": handover_ms,
                "replace_ms": millis(replace_time),
                "connections_moved": moved,
                "old_exit": status.to_string(),
                "same_connection": true,
                "pid_before": before,
                "pid_after": after,
            }),
        })
    }
}
