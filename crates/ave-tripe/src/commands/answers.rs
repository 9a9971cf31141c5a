//! What the typed commands get back: the shapes of the server's answers (key-value maps,
//! ping outcomes, trace selectors, versions, service and help lists, addresses) and the
//! parsers that check a reply's lines against them.

use std::{collections::BTreeMap, fmt, time::Duration};

use crate::error::Error;

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

pub(crate) fn joined(words: Vec<String>) -> String {
    words.join(" ")
}

/// Merges the `key=value` words of every line, as tripe.py's `_keyvals` does.
pub(crate) fn key_values(command: &str, lines: Vec<Vec<String>>) -> Result<KeyValues, Error> {
    let mut map = KeyValues::new();
    for word in lines.into_iter().flatten() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(Error::unexpected(command, format!("`{word}` is not key=value")));
        };
        map.insert(key.to_owned(), value.to_owned());
    }
    Ok(map)
}

pub(crate) fn trace_entries(
    command: &str,
    lines: Vec<Vec<String>>,
) -> Result<Vec<TraceEntry>, Error> {
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

pub(crate) fn ping_result(command: &str, words: Vec<String>) -> Result<PingResult, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: &str) -> Vec<String> {
        crate::words::split_words(line)
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

        let addr = Address { words: w("INET 10.0.0.1 4070") };
        assert_eq!(
            (addr.family(), addr.host(), addr.port()),
            (Some("INET"), Some("10.0.0.1"), Some(4070))
        );
        assert_eq!(Address { words: w("UNIX /x") }.host(), None);
    }
}
