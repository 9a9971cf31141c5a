//! Typed methods for every admin command of spec/tripe-admin.md section 4.
//!
//! Each method sends one command and shapes its reply: nothing for commands that answer
//! with OK alone, a value for one-line answers, maps for key-value answers (STATS,
//! SERVINFO, ALGS, PEERINFO, SVCQUERY) and typed entries for lists. ADD, PING, EPING and
//! SVCSUBMIT always run as background jobs, as tripe.py runs them, so that a slow peer
//! never holds up the other commands on the connection.
//!
//! This file holds the methods; what they send (options, selectors) is in `args.rs`, what
//! they get back (the answers' shapes and their parsers) in `answers.rs`.

mod answers;
mod args;

pub use crate::commands::{
    answers::{
        Address, HelpEntry, KeyValues, PingResult, ServerVersion, ServiceEntry, TraceEntry,
        parse_bool,
    },
    args::{AddOptions, PingOptions, TRACE_LETTERS, WATCH_LETTERS, check_selectors},
};
use crate::{
    client::{Client, Reply},
    commands::{
        answers::{joined, key_values, ping_result, trace_entries},
        args::{joined_spec, seconds, words_of},
    },
    error::Error,
};

/// Typed admin commands. Every method sends one command; see the crate documentation for
/// the queueing rules.
///
/// # Errors
///
/// Every method fails with [`Error::Failed`] when the server answers FAIL (its token and
/// arguments), with a connection error when the connection goes away, with
/// [`Error::Unexpected`] when the answer does not have the documented shape, and with the
/// [`format_command`](crate::format_command) errors for words that cannot be sent.
impl Client {
    // --- Peer management (section 4.1) ---

    /// `ADD [options] -- PEER ADDR...`, as a background job: adds a peer.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors (`peer-exists`, `unknown-tunnel`, ...).
    pub async fn add<S: AsRef<str>>(
        &self,
        peer: &str,
        addr: &[S],
        options: &AddOptions,
    ) -> Result<(), Error> {
        let mut words = vec!["ADD".to_owned()];
        words.extend(options.words());
        words.push("--".to_owned());
        words.push(peer.to_owned());
        words.extend(addr.iter().map(|a| a.as_ref().to_owned()));
        self.command_background(words)?.ok().await
    }

    /// `KILL PEER`: forgets a peer.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn kill(&self, peer: &str) -> Result<(), Error> {
        self.command(["KILL", peer])?.ok().await
    }

    /// `LIST`: the peers' names.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn list(&self) -> Result<Vec<String>, Error> {
        Ok(self.command(["LIST"])?.collect().await?.into_iter().map(joined).collect())
    }

    /// `ADDR PEER`: the peer's address.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn addr(&self, peer: &str) -> Result<Address, Error> {
        Ok(Address { words: self.command(["ADDR", peer])?.single().await? })
    }

    /// `IFNAME PEER`: the peer's tunnel interface.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn ifname(&self, peer: &str) -> Result<String, Error> {
        Ok(joined(self.command(["IFNAME", peer])?.single().await?))
    }

    /// `SETIFNAME PEER NEW`: records that the peer's interface was renamed.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn setifname(&self, peer: &str, new: &str) -> Result<(), Error> {
        self.command(["SETIFNAME", peer, new])?.ok().await
    }

    /// `PEERINFO PEER`: the peer's settings (`tunnel`, `key`, `keepalive`, `corked`, ...).
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn peerinfo(&self, peer: &str) -> Result<KeyValues, Error> {
        key_values("PEERINFO", self.command(["PEERINFO", peer])?.collect().await?)
    }

    /// `STATS PEER`: the peer's counters.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn stats(&self, peer: &str) -> Result<KeyValues, Error> {
        key_values("STATS", self.command(["STATS", peer])?.collect().await?)
    }

    /// `FORCEKX PEER`: starts a key exchange now.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn forcekx(&self, peer: &str) -> Result<(), Error> {
        self.command(["FORCEKX", peer])?.ok().await
    }

    /// `PING [-timeout TIME] -- PEER`, as a background job: a transport-level ping.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn ping(&self, peer: &str, options: &PingOptions) -> Result<PingResult, Error> {
        self.pinglike("PING", peer, options).await
    }

    /// `EPING [-timeout TIME] -- PEER`, as a background job: an encrypted ping, which also
    /// proves the keys work.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors (`ping-send-failed` without keys).
    pub async fn eping(&self, peer: &str, options: &PingOptions) -> Result<PingResult, Error> {
        self.pinglike("EPING", peer, options).await
    }

    async fn pinglike(
        &self,
        keyword: &str,
        peer: &str,
        options: &PingOptions,
    ) -> Result<PingResult, Error> {
        let mut words = vec![keyword.to_owned()];
        if let Some(timeout) = options.timeout {
            words.extend(["-timeout".to_owned(), seconds(timeout)]);
        }
        words.extend(["--".to_owned(), peer.to_owned()]);
        ping_result(keyword, self.command_background(words)?.single().await?)
    }

    /// `GREET PEER CHALLENGE`: sends a greeting packet.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn greet(&self, peer: &str, challenge: &str) -> Result<(), Error> {
        self.command(["GREET", peer, challenge])?.ok().await
    }

    /// `GETCHAL`: a fresh challenge (base64).
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn getchal(&self) -> Result<String, Error> {
        Ok(joined(self.command(["GETCHAL"])?.single().await?))
    }

    /// `CHECKCHAL CHALLENGE`: OK if the server issued the challenge.
    ///
    /// # Errors
    ///
    /// `invalid-challenge` or `bad-base64` failures, and the [`Client`] methods' errors.
    pub async fn checkchal(&self, challenge: &str) -> Result<(), Error> {
        self.command(["CHECKCHAL", challenge])?.ok().await
    }

    // --- Server information and control (section 4.2) ---

    /// `HELP`: every command with its usage words.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn help(&self) -> Result<Vec<HelpEntry>, Error> {
        let lines = self.command(["HELP"])?.collect().await?;
        Ok(lines
            .into_iter()
            .filter(|words| !words.is_empty())
            .map(|mut words| HelpEntry { command: words.remove(0), usage: words })
            .collect())
    }

    /// `VERSION`: the server's implementation and version.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn version(&self) -> Result<ServerVersion, Error> {
        let mut words = self.command(["VERSION"])?.single().await?;
        if words.len() < 2 {
            return Err(Error::unexpected("VERSION", format!("{words:?}")));
        }
        let name = words.remove(0);
        Ok(ServerVersion { name, version: words.join(" ") })
    }

    /// `SERVINFO`: facts about the server (`implementation`, `version`, `daemon`).
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn servinfo(&self) -> Result<KeyValues, Error> {
        key_values("SERVINFO", self.command(["SERVINFO"])?.collect().await?)
    }

    /// `ALGS [PEER]`: the crypto algorithms, the server's or one peer's.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn algs(&self, peer: Option<&str>) -> Result<KeyValues, Error> {
        key_values("ALGS", self.command(words_of(&["ALGS"], peer))?.collect().await?)
    }

    /// `PORT [FAMILY]`: the UDP port.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn port(&self, family: Option<&str>) -> Result<u16, Error> {
        let words = self.command(words_of(&["PORT"], family))?.single().await?;
        match words.as_slice() {
            [port] => port.parse().map_err(|_| Error::unexpected("PORT", format!("port {port}"))),
            _ => Err(Error::unexpected("PORT", format!("{words:?}"))),
        }
    }

    /// `TUNNELS`: the compiled-in tunnel drivers.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn tunnels(&self) -> Result<Vec<String>, Error> {
        Ok(self.command(["TUNNELS"])?.collect().await?.into_iter().map(joined).collect())
    }

    /// `DAEMON`: the server detaches from its terminal.
    ///
    /// # Errors
    ///
    /// `already-daemon` and the [`Client`] methods' errors.
    pub async fn daemon(&self) -> Result<(), Error> {
        self.command(["DAEMON"])?.ok().await
    }

    /// `RELOAD`: the server reloads its keyrings.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn reload(&self) -> Result<(), Error> {
        self.command(["RELOAD"])?.ok().await
    }

    /// `QUIT`: the server shuts down.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn quit(&self) -> Result<(), Error> {
        self.command(["QUIT"])?.ok().await
    }

    /// `TRACE [SPEC...]`: with specs (`+x-p`, `-A`, ..., as tripe.py's `trace(*args)`)
    /// changes the server's debug tracing; with none lists the selectors.
    ///
    /// Each spec is checked before anything is sent: signs `+`/`-` and the selector
    /// letters of [`TRACE_LETTERS`] only. The server reads one spec word, applied left to
    /// right, so the specs are sent joined into one (`["-A", "+x"]` goes as `-A+x`). (A server with newer letters is reached with
    /// [`Client::command`].)
    ///
    /// # Errors
    ///
    /// [`Error::BadSelector`] for a letter that is not a selector; `bad-trace-option` and
    /// the [`Client`] methods' errors.
    pub async fn trace(&self, specs: &[&str]) -> Result<Vec<TraceEntry>, Error> {
        check_selectors("TRACE", TRACE_LETTERS, specs)?;
        let words = words_of(&["TRACE"], joined_spec(specs));
        trace_entries("TRACE", self.command(words)?.collect().await?)
    }

    /// `WATCH [SPEC...]`: with specs (`-A+wn`, ..., as tripe.py's `watch(*args)`) chooses
    /// the broadcasts this connection receives (`w` WARN, `n` NOTE, `t` TRACE, `A` all);
    /// with none lists them.
    ///
    /// Each spec is checked before anything is sent: signs `+`/`-` and the letters of
    /// [`WATCH_LETTERS`] only. The specs are sent joined into one word, as for
    /// [`Client::trace`].
    ///
    /// # Errors
    ///
    /// [`Error::BadSelector`] for a letter that is not a selector; `bad-watch-option` and
    /// the [`Client`] methods' errors.
    pub async fn watch(&self, specs: &[&str]) -> Result<Vec<TraceEntry>, Error> {
        check_selectors("WATCH", WATCH_LETTERS, specs)?;
        let words = words_of(&["WATCH"], joined_spec(specs));
        trace_entries("WATCH", self.command(words)?.collect().await?)
    }

    /// `NOTIFY TOKENS...`: broadcasts `NOTE USER TOKENS...`.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn notify<I, S>(&self, tokens: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.command(words_of(&["NOTIFY"], tokens))?.ok().await
    }

    /// `WARN TOKENS...`: broadcasts `WARN USER TOKENS...`.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn warn<I, S>(&self, tokens: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.command(words_of(&["WARN"], tokens))?.ok().await
    }

    // --- Jobs (section 4.3) ---

    /// `BGCANCEL TAG`: cancels one of this connection's background jobs; its reply ends
    /// with [`Error::Cancelled`].
    ///
    /// # Errors
    ///
    /// `unknown-tag` and the [`Client`] methods' errors.
    pub async fn bgcancel(&self, tag: &str) -> Result<(), Error> {
        self.command(["BGCANCEL", tag])?.ok().await
    }

    /// `JOBS`: the tags of this connection's outstanding background jobs.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn jobs(&self) -> Result<Vec<String>, Error> {
        Ok(self.command(["JOBS"])?.collect().await?.into_iter().map(joined).collect())
    }

    // --- Services (section 4.4) ---

    /// `SVCCLAIM SERVICE VERSION`: becomes the service's provider. Usually done through
    /// [`ServiceProvider`](crate::ServiceProvider), which also answers the jobs.
    ///
    /// # Errors
    ///
    /// `service-exists` and the [`Client`] methods' errors.
    pub async fn svcclaim(&self, service: &str, version: &str) -> Result<(), Error> {
        self.command(["SVCCLAIM", service, version])?.ok().await
    }

    /// `SVCRELEASE SERVICE`: stops providing the service.
    ///
    /// # Errors
    ///
    /// `unknown-service`, `not-service-provider` and the [`Client`] methods' errors.
    pub async fn svcrelease(&self, service: &str) -> Result<(), Error> {
        self.command(["SVCRELEASE", service])?.ok().await
    }

    /// `SVCENSURE SERVICE [VERSION]`: OK if the service is provided (at least at VERSION).
    ///
    /// # Errors
    ///
    /// `unknown-service`, `service-too-old` and the [`Client`] methods' errors.
    pub async fn svcensure(&self, service: &str, version: Option<&str>) -> Result<(), Error> {
        self.command(words_of(&["SVCENSURE", service], version))?.ok().await
    }

    /// `SVCQUERY SERVICE`: the service's `name` and `version`.
    ///
    /// # Errors
    ///
    /// `unknown-service` and the [`Client`] methods' errors.
    pub async fn svcquery(&self, service: &str) -> Result<KeyValues, Error> {
        key_values("SVCQUERY", self.command(["SVCQUERY", service])?.collect().await?)
    }

    /// `SVCLIST`: every service with its version.
    ///
    /// # Errors
    ///
    /// See the [`Client`] methods' errors.
    pub async fn svclist(&self) -> Result<Vec<ServiceEntry>, Error> {
        let lines = self.command(["SVCLIST"])?.collect().await?;
        lines
            .into_iter()
            .map(|words| match <[String; 2]>::try_from(words) {
                Ok([name, version]) => Ok(ServiceEntry { name, version }),
                Err(words) => Err(Error::unexpected("SVCLIST", format!("{words:?}"))),
            })
            .collect()
    }

    /// `SVCSUBMIT [-version VERSION] -- SERVICE ARGS...`, as a background job: a job for a
    /// service's provider. The reply yields the provider's INFO lines and ends with its
    /// OK or failure.
    ///
    /// # Errors
    ///
    /// The [`format_command`](crate::format_command) errors and [`Error::Closed`]; the
    /// server's and the provider's failures come through the reply.
    pub fn svcsubmit<I, S>(
        &self,
        service: &str,
        version: Option<&str>,
        args: I,
    ) -> Result<Reply, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut words = vec!["SVCSUBMIT".to_owned()];
        if let Some(version) = version {
            words.extend(["-version".to_owned(), version.to_owned()]);
        }
        words.extend(["--".to_owned(), service.to_owned()]);
        words.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.command_background(words)
    }

    /// `SVCINFO JOBID TOKENS...`: an INFO line for a job's submitter.
    ///
    /// # Errors
    ///
    /// `unknown-jobid` and the [`Client`] methods' errors.
    pub async fn svcinfo<I, S>(&self, jobid: &str, tokens: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.command(words_of(&["SVCINFO", jobid], tokens))?.ok().await
    }

    /// `SVCOK JOBID`: the job succeeded.
    ///
    /// # Errors
    ///
    /// `unknown-jobid` and the [`Client`] methods' errors.
    pub async fn svcok(&self, jobid: &str) -> Result<(), Error> {
        self.command(["SVCOK", jobid])?.ok().await
    }

    /// `SVCFAIL JOBID TOKENS...`: the job failed with these tokens.
    ///
    /// # Errors
    ///
    /// `unknown-jobid` and the [`Client`] methods' errors.
    pub async fn svcfail<I, S>(&self, jobid: &str, tokens: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.command(words_of(&["SVCFAIL", jobid], tokens))?.ok().await
    }
}
