//! Step 4: commands on a pty, directly and inside the service, and a timeout that ends a
//! whole session.

use crate::demo::*;

impl Demo {
    pub(super) async fn pty(&mut self) -> anyhow::Result<Done> {
        let background = ave::cmd::run_bg(
            ["sh", "-c", "echo hello from $(tty)"],
            &Options::new().timeout(LIMIT),
        )?;
        let pid = background.pid().as_u32();
        self.pids.push(("pty command", pid));
        self.pty_sessions.push(background.pid());
        let hello = background.output_async().await?;
        self.pty_sessions.retain(|s| s.as_u32() != pid);
        let text = hello.text().trim().to_owned();
        ensure!(hello.status.success(), "`echo` ended with {}", hello.status);
        ensure!(text.starts_with("hello from /dev/pts/"), "`echo` wrote {text:?}");
        self.detail(format_args!(
            "ave::cmd: `sh -c 'echo hello from $(tty)'` (pid {pid}) -> {text:?}, {}, in {}",
            hello.status,
            duration(hello.duration)
        ));

        let client = self.client.as_ref().context("no client")?;
        let (answer, external_time) =
            timed(client.call("run_external", (["sh", "-c", "echo run by pid $PPID"],))).await;
        let answer = answer.context("run_external")?;
        let server_pid = self.server_pid()?;
        let expected = format!("run by pid {server_pid}");
        let output = answer.get(1).and_then(Value::as_str).map(str::trim);
        ensure!(
            answer.get(0) == Some(&json!(0)) && output == Some(expected.as_str()),
            "run_external answered {answer}"
        );
        self.detail(format_args!(
            "the service's run_external(`sh -c 'echo run by pid $PPID'`) -> status 0, {:?}, \
             in {}",
            expected,
            duration(external_time)
        ));

        let started = Instant::now();
        let command = ["sh", "-c", "sleep 30 & sleep 30"];
        let background = ave::cmd::run_bg(command, &Options::new().timeout(PTY_TIMEOUT))?;
        let session = background.pid();
        self.pids.push(("timed-out pty command", session.as_u32()));
        self.pty_sessions.push(session);
        let result = background.output_async().await;
        let took = started.elapsed();
        let status = match &result {
            Err(ave::cmd::Error::Timeout { status, .. }) => *status,
            Err(_) => {
                return result
                    .map(|_| Done { summary: String::new(), data: Value::Null })
                    .context("sleep 30");
            }
            Ok(out) => bail!("`sleep 30` ended by itself ({}) despite its timeout", out.status),
        };
        let exception = AveException::from(result.expect_err("matched as a timeout"));
        let left = ave::cmd::session_members(session);
        ensure!(left.is_empty(), "processes of session {session} survived the timeout: {left:?}");
        ensure!(!Path::new(&format!("/proc/{session}")).exists(), "pid {session} is still there");
        self.pty_sessions.retain(|s| *s != session);
        self.detail(format_args!(
            "ave::cmd: `sh -c 'sleep 30 & sleep 30'` (pid {session}) with a {} timeout -> {}: \
             {:?} after {} ({}); nothing of its session is left",
            duration(PTY_TIMEOUT),
            exception.type_name(),
            exception.message(),
            duration(took),
            status
        ));
        Ok(Done {
            summary: format!(
                "echo {}, run_external {}, sleep 30 timed out after {} and its session is gone",
                duration(hello.duration),
                duration(external_time),
                duration(took)
            ),
            data: json!({
                "echo_ms": millis(hello.duration),
                "echo_output": text,
                "run_external_ms": millis(external_time),
                "timeout_pid": session.as_u32(),
                "timeout_ms": millis(PTY_TIMEOUT),
                "timed_out_after_ms": millis(took),
                "timeout_exception": exception.type_name(),
                "session_left": left.len(),
            }),
        })
    }
}
