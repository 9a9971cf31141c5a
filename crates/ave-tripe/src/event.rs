//! Broadcasts: `WARN`, `NOTE` and `TRACE` lines, typed (spec/tripe-admin.md section 7).
//!
//! Known categories become variants with named fields; anything else is kept whole, so
//! that a newer server's broadcasts reach the caller unchanged. Every event turns back
//! into the words the server sent ([`Event::to_words`]), which is how `ave tripe --watch`
//! prints them.

use std::fmt;

use crate::words::join_words;

/// One asynchronous line from the server that belongs to no command.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A `WARN` line (watch letter `w`).
    Warn(Warning),
    /// A `NOTE` line (watch letter `n`).
    Note(Note),
    /// A `TRACE` line (watch letter `t`): free text, not split into words.
    Trace(String),
    /// A line with a code this client does not know, kept as words.
    Unknown {
        /// The line's first word.
        code: String,
        /// The other words.
        args: Vec<String>,
    },
    /// This subscriber fell behind and `count` events were dropped for it (the
    /// subscription's buffer is bounded; see
    /// [`ClientBuilder::event_capacity`](crate::ClientBuilder::event_capacity)).
    Missed {
        /// How many events were lost.
        count: u64,
    },
}

impl Event {
    /// The line as words, starting with its code (`WARN`, `NOTE`, ...); a trace is the code
    /// and its text as one word. [`Event::Missed`] is not a server line and gives
    /// `MISSED count`.
    pub fn to_words(&self) -> Vec<String> {
        match self {
            Event::Warn(w) => prefixed("WARN", w.to_words()),
            Event::Note(n) => prefixed("NOTE", n.to_words()),
            Event::Trace(text) => vec!["TRACE".to_owned(), text.clone()],
            Event::Unknown { code, args } => prefixed(code, args.clone()),
            Event::Missed { count } => vec!["MISSED".to_owned(), count.to_string()],
        }
    }
}

impl fmt::Display for Event {
    /// The line as the server would send it: words quoted, a trace's text as it came.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Trace(text) if text.is_empty() => f.write_str("TRACE"),
            Event::Trace(text) => write!(f, "TRACE {text}"),
            other => f.write_str(&join_words(other.to_words())),
        }
    }
}

fn prefixed(code: &str, mut words: Vec<String>) -> Vec<String> {
    words.insert(0, code.to_owned());
    words
}

/// A `WARN` broadcast: a category and its category-specific words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The first word, classified.
    pub category: WarnCategory,
    /// The words after the category. For [`WarnCategory::Kx`] and [`WarnCategory::Peer`]
    /// the first of them is the peer (or `-`).
    pub args: Vec<String>,
}

impl Warning {
    /// Builds a warning from the words after `WARN`.
    pub fn from_words(mut words: Vec<String>) -> Warning {
        let category = if words.is_empty() {
            WarnCategory::Other(String::new())
        } else {
            WarnCategory::from_word(words.remove(0))
        };
        Warning { category, args: words }
    }

    /// The words after `WARN`.
    pub fn to_words(&self) -> Vec<String> {
        prefixed(self.category.as_str(), self.args.clone())
    }

    /// The peer a `KX` or `PEER` warning is about (`None` for `-` and other categories).
    pub fn peer(&self) -> Option<&str> {
        match self.category {
            WarnCategory::Kx | WarnCategory::Peer => {
                self.args.first().map(String::as_str).filter(|p| *p != "-")
            }
            _ => None,
        }
    }
}

/// The category of a warning (spec/tripe-admin.md section 7.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarnCategory {
    /// `ABORT`: the server is giving up.
    Abort,
    /// `ADMIN`: admin socket problems.
    Admin,
    /// `CHAL`: bad challenges or greetings.
    Chal,
    /// `KEYMGMT`: keyring problems.
    Keymgmt,
    /// `KX PEER ...`: key-exchange problems.
    Kx,
    /// `PEER PEER|- ...`: packet-level problems.
    Peer,
    /// `PRIVSEP`: privilege-separation helper problems.
    Privsep,
    /// `SERVER`: signals, quitting, select errors.
    Server,
    /// `SYMM`: symmetric-crypto problems.
    Symm,
    /// `TUN`: tunnel driver errors.
    Tun,
    /// `USER`: from the `WARN` command.
    User,
    /// Any other category, as sent.
    Other(String),
}

impl WarnCategory {
    fn from_word(word: String) -> WarnCategory {
        match word.as_str() {
            "ABORT" => WarnCategory::Abort,
            "ADMIN" => WarnCategory::Admin,
            "CHAL" => WarnCategory::Chal,
            "KEYMGMT" => WarnCategory::Keymgmt,
            "KX" => WarnCategory::Kx,
            "PEER" => WarnCategory::Peer,
            "PRIVSEP" => WarnCategory::Privsep,
            "SERVER" => WarnCategory::Server,
            "SYMM" => WarnCategory::Symm,
            "TUN" => WarnCategory::Tun,
            "USER" => WarnCategory::User,
            _ => WarnCategory::Other(word),
        }
    }

    /// The category word.
    pub fn as_str(&self) -> &str {
        match self {
            WarnCategory::Abort => "ABORT",
            WarnCategory::Admin => "ADMIN",
            WarnCategory::Chal => "CHAL",
            WarnCategory::Keymgmt => "KEYMGMT",
            WarnCategory::Kx => "KX",
            WarnCategory::Peer => "PEER",
            WarnCategory::Privsep => "PRIVSEP",
            WarnCategory::Server => "SERVER",
            WarnCategory::Symm => "SYMM",
            WarnCategory::Tun => "TUN",
            WarnCategory::User => "USER",
            WarnCategory::Other(word) => word,
        }
    }
}

/// A `NOTE` broadcast (spec/tripe-admin.md section 7.1).
///
/// A known code whose words do not have the expected shape is kept as [`Note::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// `ADD PEER IFNAME ADDR...`: a peer was added.
    Add {
        /// The peer.
        peer: String,
        /// Its tunnel interface.
        ifname: String,
        /// Its address words.
        addr: Vec<String>,
    },
    /// `KILL PEER`: a peer was removed.
    Kill {
        /// The peer.
        peer: String,
    },
    /// `KXSTART PEER`: key exchange started.
    KxStart {
        /// The peer.
        peer: String,
    },
    /// `KXDONE PEER`: key exchange finished.
    KxDone {
        /// The peer.
        peer: String,
    },
    /// `NEWADDR PEER ADDR...`: a mobile peer's address changed.
    NewAddr {
        /// The peer.
        peer: String,
        /// Its new address words.
        addr: Vec<String>,
    },
    /// `NEWIFNAME PEER OLD NEW`: a tunnel interface was renamed.
    NewIfname {
        /// The peer.
        peer: String,
        /// The old interface name.
        old: String,
        /// The new interface name.
        new: String,
    },
    /// `GREET CHALLENGE ADDR...`: a valid greeting arrived.
    Greet {
        /// The challenge.
        challenge: String,
        /// The sender's address words.
        addr: Vec<String>,
    },
    /// `KNOCK PEER ADDR...`: a peer knocked.
    Knock {
        /// The peer.
        peer: String,
        /// Its address words.
        addr: Vec<String>,
    },
    /// `DAEMON`: the server became a daemon.
    Daemon,
    /// `SVCCLAIM SERVICE VERSION`: a service was claimed.
    SvcClaim {
        /// The service.
        service: String,
        /// Its version.
        version: String,
    },
    /// `SVCRELEASE SERVICE`: a service was released.
    SvcRelease {
        /// The service.
        service: String,
    },
    /// `USER TOKENS...`: from the `NOTIFY` command.
    User(Vec<String>),
    /// Any other note, or a known one of another shape.
    Other {
        /// The note's first word.
        code: String,
        /// The other words.
        args: Vec<String>,
    },
}

impl Note {
    /// Builds a note from the words after `NOTE`.
    pub fn from_words(mut words: Vec<String>) -> Note {
        if words.is_empty() {
            return Note::Other { code: String::new(), args: Vec::new() };
        }
        let code = words.remove(0);
        let mut args = words;
        let n = args.len();
        let take = |args: &mut Vec<String>| args.remove(0);
        match (code.as_str(), n) {
            ("ADD", 2..) => {
                let peer = take(&mut args);
                let ifname = take(&mut args);
                Note::Add { peer, ifname, addr: args }
            }
            ("KILL", 1) => Note::Kill { peer: take(&mut args) },
            ("KXSTART", 1) => Note::KxStart { peer: take(&mut args) },
            ("KXDONE", 1) => Note::KxDone { peer: take(&mut args) },
            ("NEWADDR", 1..) => {
                let peer = take(&mut args);
                Note::NewAddr { peer, addr: args }
            }
            ("NEWIFNAME", 3) => {
                let peer = take(&mut args);
                let old = take(&mut args);
                let new = take(&mut args);
                Note::NewIfname { peer, old, new }
            }
            ("GREET", 1..) => {
                let challenge = take(&mut args);
                Note::Greet { challenge, addr: args }
            }
            ("KNOCK", 1..) => {
                let peer = take(&mut args);
                Note::Knock { peer, addr: args }
            }
            ("DAEMON", 0) => Note::Daemon,
            ("SVCCLAIM", 2) => {
                let service = take(&mut args);
                let version = take(&mut args);
                Note::SvcClaim { service, version }
            }
            ("SVCRELEASE", 1) => Note::SvcRelease { service: take(&mut args) },
            ("USER", _) => Note::User(args),
            _ => Note::Other { code, args },
        }
    }

    /// The words after `NOTE`.
    pub fn to_words(&self) -> Vec<String> {
        let (head, tail): (Vec<&str>, &[String]) = match self {
            Note::Add { peer, ifname, addr } => (vec!["ADD", peer, ifname], addr),
            Note::Kill { peer } => (vec!["KILL", peer], &[]),
            Note::KxStart { peer } => (vec!["KXSTART", peer], &[]),
            Note::KxDone { peer } => (vec!["KXDONE", peer], &[]),
            Note::NewAddr { peer, addr } => (vec!["NEWADDR", peer], addr),
            Note::NewIfname { peer, old, new } => (vec!["NEWIFNAME", peer, old, new], &[]),
            Note::Greet { challenge, addr } => (vec!["GREET", challenge], addr),
            Note::Knock { peer, addr } => (vec!["KNOCK", peer], addr),
            Note::Daemon => (vec!["DAEMON"], &[]),
            Note::SvcClaim { service, version } => (vec!["SVCCLAIM", service, version], &[]),
            Note::SvcRelease { service } => (vec!["SVCRELEASE", service], &[]),
            Note::User(args) => (vec!["USER"], args),
            Note::Other { code, args } => (vec![code.as_str()], args),
        };
        head.into_iter().map(str::to_owned).chain(tail.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        crate::words::split_words(line)
    }

    #[test]
    fn notes_are_typed_and_round_trip() {
        let cases = [
            ("ADD alice tun0 INET 10.0.0.1 4070", true),
            ("KILL alice", true),
            ("KXSTART alice", true),
            ("KXDONE alice", true),
            ("NEWADDR alice INET 10.0.0.2 4070", true),
            ("NEWIFNAME alice tun0 vpn-alice", true),
            ("GREET Zm9v INET 10.0.0.3 4070", true),
            ("KNOCK alice INET 10.0.0.3 4070", true),
            ("DAEMON", true),
            ("SVCCLAIM connect 1.0.0", true),
            ("SVCRELEASE connect", true),
            ("USER svc-quit connect admin-request", true),
            ("KILL", false),
            ("KILL alice bob", false),
            ("SOMETHING-NEW x y", false),
        ];
        for (line, known) in cases {
            let note = Note::from_words(words(line));
            assert_eq!(!matches!(note, Note::Other { .. }), known, "{line}: {note:?}");
            assert_eq!(note.to_words(), words(line), "{line}");
        }
        assert_eq!(
            Note::from_words(words("NEWIFNAME alice tun0 vpn0")),
            Note::NewIfname { peer: "alice".into(), old: "tun0".into(), new: "vpn0".into() }
        );
    }

    #[test]
    fn warnings_keep_their_category() {
        let w = Warning::from_words(words("KX alice decrypt-failed reply"));
        assert_eq!(w.category, WarnCategory::Kx);
        assert_eq!(w.peer(), Some("alice"));
        assert_eq!(Warning::from_words(words("PEER - unexpected-ping 0x12")).peer(), None);
        let odd = Warning::from_words(words("NEWCAT a b"));
        assert_eq!(odd.category, WarnCategory::Other("NEWCAT".into()));
        assert_eq!(odd.to_words(), words("NEWCAT a b"));
        assert_eq!(
            Event::Warn(Warning::from_words(words("USER hello \"big world\""))).to_string(),
            "WARN USER hello \"big world\""
        );
        assert_eq!(Event::Trace("  raw 'text".into()).to_string(), "TRACE   raw 'text");
    }
}
