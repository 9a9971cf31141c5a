//! Typed methods for every admin command of spec/tripe-admin.md section 4.
//!
//! Each method sends one command and shapes its reply: nothing for commands that answer
//! with OK alone, a value for one-line answers, maps for key-value answers (STATS,
//! SERVINFO, ALGS, PEERINFO, SVCQUERY) and typed entries for lists. ADD, PING, EPING and
//! SVCSUBMIT always run as background jobs, as tripe.py runs them, so that a slow peer
//! never holds up the other commands on the connection.

use std::{collections::BTreeMap, fmt, time::Duration};

use crate::{
    client::{Client, Reply},
    error::Error,
};

/// The merged `key=value` words of a key-value reply.
pub type KeyValues = BTreeMap<String, String>;

/// A boolean of key-value output: `t` is true and `nil` false; anything else is `None`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "t" => Some(true),
        "nil" => Some(false),
        _ => None,
    }
}

/// Options of `ADD` (spec/tripe-admin.md section 4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// `-tunnel DRIVER`: the tunnel driver (see [`Client::tunnels`]).
    pub tunnel: Option<String>,
    /// `-keepalive TIME`: send a no-op after this long without traffic (whole seconds,
    /// rounded up).
    pub keepalive: Option<Duration>,
    /// `-key TAG`: the peer's public key tag (default: the peer's name).
    pub key: Option<String>,
    /// `-priv TAG`: the local private key to use.
    pub private_key: Option<String>,
    /// `-cork`: wait for the peer to start the key exchange.
    pub cork: bool,
    /// `-mobile`: the peer's address may change.
    pub mobile: bool,
    /// `-knock STRING`: the knock string.
    pub knock: Option<String>,
    /// `-ephemeral`: the association does not persist; a BYE from the peer kills it.
    pub ephemeral: bool,
}

impl AddOptions {
    fn words(&self) -> Vec<String> {
        let mut words = Vec::new();
        let mut valued = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                words.push(name.to_owned());
                words.push(value);
            }
        };
        valued("-tunnel", self.tunnel.clone());
        valued("-keepalive", self.keepalive.map(seconds));
        valued("-key", self.key.clone());
        valued("-priv", self.private_key.clone());
        for (flag, set) in [("-cork", self.cork), ("-mobile", self.mobile)] {
            if set {
                words.push(flag.to_owned());
            }
        }
        if let Some(knock) = &self.knock {
            words.extend(["-knock".to_owned(), knock.clone()]);
        }
        if self.ephemeral {
            words.push("-ephemeral".to_owned());
        }
        words
    }
}

/// Options of `PING` and `EPING`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingOptions {
    /// `-timeout TIME`: how long to wait for the answer (server default 5 s; whole
    /// seconds, rounded up).
    pub timeout: Option<Duration>,
}

/// The outcome of `PING` or `EPING`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PingResult {
    /// `ping-ok MILLIS`: the round-trip time.
    Ok {
        /// The round-trip time.
        rtt: Duration,
    },
    /// `ping-timeout`: no answer in time.
    Timeout,
    /// `ping-peer-died`: the peer was killed while waiting.
    PeerDied,
    /// Any other answer, as words.
    Other(Vec<String>),
}

/// One selector of `TRACE` or `WATCH` (tripe.py's `_tracelike`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// The selector letter.
    pub selector: char,
    /// `+` when enabled, empty when disabled (later servers may add more).
    pub status: String,
    /// What the selector covers.
    pub description: String,
}

impl TraceEntry {
    /// Whether the selector is enabled.
    pub fn enabled(&self) -> bool {
        self.status.contains('+')
    }
}

/// The answer to `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// The implementation's name (`tripe` is Straylight/Edgeware's).
    pub name: String,
    /// Its version.
    pub version: String,
}

/// One service of `SVCLIST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service name.
    pub name: String,
    /// The provider's version.
    pub version: String,
}

/// One command of `HELP`: its name and usage words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpEntry {
    /// The command.
    pub command: String,
    /// Its usage words.
    pub usage: Vec<String>,
}

/// A network address as the server writes it: a family token, then its words
/// (`INET 192.0.2.1 4070`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// All the words, family first.
    pub words: Vec<String>,
}

impl Address {
    /// The family token (`INET`, `INET6`, ...).
    pub fn family(&self) -> Option<&str> {
        self.words.first().map(String::as_str)
    }

    /// The host, for the `INET` and `INET6` families.
    pub fn host(&self) -> Option<&str> {
        self.inet().and_then(|w| w.first()).map(String::as_str)
    }

    /// The port, for the `INET` and `INET6` families.
    pub fn port(&self) -> Option<u16> {
        self.inet().and_then(|w| w.get(1)).and_then(|p| p.parse().ok())
    }

    fn inet(&self) -> Option<&[String]> {
        matches!(self.family(), Some("INET" | "INET6")).then(|| &self.words[1..])
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::words::join_words(&self.words))
    }
}

/// Renders a duration as a time spec: whole seconds, rounded up.
fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.to_string()
}

fn joined(words: Vec<String>) -> String {
    words.join(" ")
}

/// Merges the `key=value` words of every line, as tripe.py's `_keyvals` does.
fn key_values(command: &str, lines: Vec<Vec<String>>) -> Result<KeyValues, Error> {
    let mut map = KeyValues::new();
    for word in lines.into_iter().flatten() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(Error::unexpected(command, format!("`{word}` is not key=value")));
        };
        map.insert(key.to_owned(), value.to_owned());
    }
    Ok(map)
}

/// The selector letters of `TRACE` (spec/tripe-admin.md section 4.2): `t` tunnel, `r`
/// peer, `a` admin, `s` keyset, `x` key exchange, `m` key management, `l` challenges, `p`
/// packet contents, `c` crypto details, `A` all.
pub const TRACE_LETTERS: &str = "traxsmlpcA";

/// The selector letters of `WATCH`: `t` TRACE, `n` NOTE, `w` WARN, `A` all.
pub const WATCH_LETTERS: &str = "tnwA";

/// Checks `TRACE`/`WATCH` specs: each is signs (`+`, `-`) and letters of `letters`.
///
/// # Errors
///
/// [`Error::BadSelector`] naming the first character that is neither.
///
/// # Examples
///
/// ```
/// use ave_tripe::{check_selectors, Error, WATCH_LETTERS};
///
/// assert!(check_selectors("WATCH", WATCH_LETTERS, &["-A+wn", "t"]).is_ok());
/// assert!(matches!(
///     check_selectors("WATCH", WATCH_LETTERS, &["+wz"]),
///     Err(Error::BadSelector { letter: 'z', .. })
/// ));
/// ```
pub fn check_selectors(command: &str, letters: &str, specs: &[&str]) -> Result<(), Error> {
    for spec in specs {
        if let Some(letter) =
            spec.chars().find(|c| !matches!(c, '+' | '-') && !letters.contains(*c))
        {
            return Err(Error::BadSelector { command: command.to_ascii_uppercase(), letter });
        }
    }
    Ok(())
}

/// The one spec word for `TRACE`/`WATCH`, if any.
fn joined_spec(specs: &[&str]) -> Option<String> {
    let joined = specs.concat();
    (!joined.is_empty()).then_some(joined)
}

fn trace_entries(command: &str, lines: Vec<Vec<String>>) -> Result<Vec<TraceEntry>, Error> {
    lines
        .into_iter()
        .map(|mut words| {
            let first = if words.is_empty() { String::new() } else { words.remove(0) };
            let mut chars = first.chars();
            let selector =
                chars.next().ok_or_else(|| Error::unexpected(command, "an empty selector"))?;
            Ok(TraceEntry { selector, status: chars.collect(), description: words.join(" ") })
        })
        .collect()
}

fn ping_result(command: &str, words: Vec<String>) -> Result<PingResult, Error> {
    match words.first().map(String::as_str) {
        Some("ping-ok") => {
            let millis = words
                .get(1)
                .and_then(|m| m.parse::<f64>().ok())
                .filter(|m| m.is_finite() && *m >= 0.0)
                .ok_or_else(|| Error::unexpected(command, format!("bad ping time {words:?}")))?;
            // Whole nanoseconds, rounded: `from_secs_f64` would truncate 0.25 ms to 249.999 µs.
            Ok(PingResult::Ok { rtt: Duration::from_nanos((millis * 1e6).round() as u64) })
        }
        Some("ping-timeout") => Ok(PingResult::Timeout),
        Some("ping-peer-died") => Ok(PingResult::PeerDied),
        _ => Ok(PingResult::Other(words)),
    }
}

fn words_of<I, S>(head: &[&str], tail: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    head.iter()
        .map(|w| (*w).to_owned())
        .chain(tail.into_iter().map(|w| w.as_ref().to_owned()))
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: &str) -> Vec<String> {
        crate::words::split_words(line)
    }

    #[test]
    fn add_options_render_in_order() {
        let all = AddOptions {
            tunnel: Some("slip".into()),
            keepalive: Some(Duration::from_millis(1500)),
            key: Some("k".into()),
            private_key: Some("p".into()),
            cork: true,
            mobile: true,
            knock: Some("who's there".into()),
            ephemeral: true,
        };
        assert_eq!(
            all.words(),
            w(
                "-tunnel slip -keepalive 2 -key k -priv p -cork -mobile -knock \"who's there\" -ephemeral"
            )
        );
        assert!(AddOptions::default().words().is_empty());
    }

    #[test]
    fn reply_shapes() {
        let kv = key_values("STATS", vec![w("a=1 b=x=y"), w("c=")]).unwrap();
        assert_eq!(kv["a"], "1");
        assert_eq!(kv["b"], "x=y");
        assert_eq!(kv["c"], "");
        assert!(matches!(key_values("STATS", vec![w("novalue")]), Err(Error::Unexpected { .. })));

        let entries = trace_entries("WATCH", vec![w("n+ notes"), w("w warnings here")]).unwrap();
        assert_eq!(
            entries[0],
            TraceEntry { selector: 'n', status: "+".into(), description: "notes".into() }
        );
        assert!(entries[0].enabled());
        assert!(!entries[1].enabled());
        assert_eq!(entries[1].description, "warnings here");

        assert_eq!(
            ping_result("PING", w("ping-ok 12.5")).unwrap(),
            PingResult::Ok { rtt: Duration::from_micros(12_500) }
        );
        assert_eq!(ping_result("PING", w("ping-timeout")).unwrap(), PingResult::Timeout);
        assert_eq!(ping_result("PING", w("ping-peer-died")).unwrap(), PingResult::PeerDied);
        assert!(ping_result("PING", w("ping-ok nan")).is_err());
        assert_eq!(ping_result("PING", w("other x")).unwrap(), PingResult::Other(w("other x")));
        assert_eq!(parse_bool("t"), Some(true));
        assert_eq!(parse_bool("nil"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_secs(5)), "5");

        let addr = Address { words: w("INET 10.0.0.1 4070") };
        assert_eq!(
            (addr.family(), addr.host(), addr.port()),
            (Some("INET"), Some("10.0.0.1"), Some(4070))
        );
        assert_eq!(Address { words: w("UNIX /x") }.host(), None);
    }
}
