//! Step 3: calls with the admin key: a ping, an authenticated call, an exception with its
//! trace, a one-way call.

use crate::demo::*;

impl Demo {
    pub(super) async fn call(&mut self) -> anyhow::Result<Done> {
        let address = Address::new("127.0.0.1", self.port);
        let first =
            RemoteControl::new(address.clone(), Some(&self.admin)).with_timeout(Some(CALL_TIMEOUT));
        let (connected, connect_time) = timed(first.connect(Some(CALL_TIMEOUT))).await;
        connected.context("connect")?;
        ensure!(
            first.authenticated() == Some(true),
            "the admin key of authkeys.json did not authenticate"
        );
        // One connection from here to the end: the client never makes another.
        let conn = first.into_connection().await?;
        let local = conn.local_addr()?;
        self.local_addr = Some(local);
        let client = RemoteControl::from_connection(conn, address).with_timeout(Some(CALL_TIMEOUT));
        self.detail(format_args!(
            "connected from {local} and authenticated with the admin key in {}",
            duration(connect_time)
        ));

        let (pong, ping_time) = timed(client.call("sync_ping", ())).await;
        let pong = pong.context("sync_ping")?;
        ensure!(pong == "pong", "sync_ping answered {pong}");
        self.detail(format_args!("sync_ping() -> {pong} in {}", duration(ping_time)));

        let (identity, whoami_time) = timed(client.call("whoami", ())).await;
        let identity = identity.context("whoami")?;
        ensure!(identity == self.admin.as_str(), "whoami answered {identity}, not the admin key");
        self.detail(format_args!(
            "whoami() -> the admin key of authkeys.json, in {}",
            duration(whoami_time)
        ));

        let details = json!({
            "type": "Offline",
            "message": "the demo handset went away",
            "serial": "DEMO-0001",
        });
        let (raised, raise_time) = timed(client.call("raise_ave_exception", (details, 2))).await;
        let exception: AveException = match raised {
            Err(ave::network::Error::Remote(e)) => e,
            Err(e) => return Err(e).context("raise_ave_exception"),
            Ok(value) => bail!("raise_ave_exception returned {value} instead of raising"),
        };
        ensure!(exception.kind() == Kind::Offline, "the exception came back as {exception:?}");
        ensure!(
            exception.field("serial") == Some(&json!("DEMO-0001")),
            "the exception lost its serial: {exception:?}"
        );
        let frames = exception.trace().unwrap_or_default().len();
        self.detail(format_args!(
            "raise_ave_exception(Offline, depth=2) -> {}: {:?} (serial {} kept) in {}, with \
             its server-side trace:",
            exception.type_name(),
            exception.message(),
            json!("DEMO-0001"),
            duration(raise_time)
        ));
        for line in exception.format_trace().lines() {
            self.detail(format_args!("  {line}"));
        }

        let (sent, async_time) = timed(client.call_one_way("async_ping", ())).await;
        sent.context("async_ping")?;
        let (pongs, pongs_time) = timed(client.call("pongs", ())).await;
        let pongs = pongs.context("pongs")?;
        ensure!(pongs == 1, "the server counted {pongs} async pings, not 1");
        self.detail(format_args!(
            "async_ping() sent one-way in {} (no answer, by design); the server counted 1 \
             (asked on the same connection: {})",
            duration(async_time),
            duration(pongs_time)
        ));
        self.client = Some(client);
        Ok(Done {
            summary: format!(
                "sync_ping {}, whoami {}, {} raised with {frames} trace frames in {}, \
                 one-way async_ping {}",
                duration(ping_time),
                duration(whoami_time),
                exception.type_name(),
                duration(raise_time),
                duration(async_time)
            ),
            data: json!({
                "connect_ms": millis(connect_time),
                "sync_ping_ms": millis(ping_time),
                "whoami_ms": millis(whoami_time),
                "exception": { "type": exception.type_name(), "message": exception.message(), "trace_frames": frames },
                "raise_ms": millis(raise_time),
                "async_ping_ms": millis(async_time),
                "pongs": pongs,
            }),
        })
    }
}
