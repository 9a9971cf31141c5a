//! What the typed commands send: the options of `ADD`, `PING` and `EPING`, the selector
//! letters of `TRACE` and `WATCH` and their check, and the helpers that turn them into
//! command words.

use std::time::Duration;

use crate::error::Error;

/// Options of `ADD` (spec/tripe-admin.md section 4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    /// `-tunnel DRIVER`: the tunnel driver (see [`Client::tunnels`](crate::Client::tunnels)).
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
    pub(crate) fn words(&self) -> Vec<String> {
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

/// Renders a duration as a time spec: whole seconds, rounded up.
pub(crate) fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.to_string()
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
pub(crate) fn joined_spec(specs: &[&str]) -> Option<String> {
    let joined = specs.concat();
    (!joined.is_empty()).then_some(joined)
}

pub(crate) fn words_of<I, S>(head: &[&str], tail: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    head.iter()
        .map(|w| (*w).to_owned())
        .chain(tail.into_iter().map(|w| w.as_ref().to_owned()))
        .collect()
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
    fn durations_render_as_whole_seconds() {
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_secs(5)), "5");
    }
}
