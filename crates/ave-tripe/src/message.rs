//! One line from the server, classified by its code (spec/tripe-admin.md section 3).

use crate::{
    error::Failure,
    event::{Event, Note, Warning},
    words::{next_word, split_words},
};

/// A line from the server, parsed.
///
/// Lines are bytes on the wire: a trailing CR is dropped, bytes that are not UTF-8 become
/// U+FFFD, and nothing here panics or fails. A line whose code is known but whose words
/// are missing (`BGOK` without a tag, say) is [`ServerMessage::Malformed`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// `OK`: the foreground command succeeded.
    Ok,
    /// `INFO tokens...`: a line of the foreground command's output.
    Info(Vec<String>),
    /// `FAIL token args...`: the foreground command failed.
    Fail(Failure),
    /// `BGDETACH tag`: the foreground command now runs in the background as `tag`.
    BgDetach(String),
    /// `BGINFO tag tokens...`.
    BgInfo(String, Vec<String>),
    /// `BGOK tag`.
    BgOk(String),
    /// `BGFAIL tag token args...`.
    BgFail(String, Failure),
    /// `WARN`, `NOTE` or `TRACE`, or a line with an unknown code.
    Event(Event),
    /// `SVCJOB`, `SVCCANCEL` or `SVCCLAIM`, for a service provider.
    Service(ServiceMessage),
    /// A known code with too few words; the decoded line is kept.
    Malformed(String),
}

impl ServerMessage {
    /// Parses one line, without its newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use ave_tripe::{Failure, ServerMessage};
    ///
    /// assert_eq!(
    ///     ServerMessage::parse(b"BGFAIL J00001 unknown-peer 'bob smith'\r"),
    ///     ServerMessage::BgFail(
    ///         "J00001".into(),
    ///         Failure { token: "unknown-peer".into(), args: vec!["bob smith".into()] },
    ///     ),
    /// );
    /// ```
    pub fn parse(line: &[u8]) -> ServerMessage {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        let Some((code, rest)) = next_word(&text) else {
            return ServerMessage::Malformed(text.into_owned());
        };
        let code = code.to_ascii_uppercase();
        if code == "TRACE" {
            return ServerMessage::Event(Event::Trace(rest.to_owned()));
        }
        let mut args = split_words(rest);
        let malformed = || ServerMessage::Malformed(text.to_string());
        let tag = |args: &mut Vec<String>| (!args.is_empty()).then(|| args.remove(0));
        match code.as_str() {
            "OK" => ServerMessage::Ok,
            "INFO" => ServerMessage::Info(args),
            "FAIL" => ServerMessage::Fail(Failure::from_words(args)),
            "BGDETACH" => tag(&mut args).map_or_else(malformed, ServerMessage::BgDetach),
            "BGINFO" => match tag(&mut args) {
                Some(tag) => ServerMessage::BgInfo(tag, args),
                None => malformed(),
            },
            "BGOK" => tag(&mut args).map_or_else(malformed, ServerMessage::BgOk),
            "BGFAIL" => match tag(&mut args) {
                Some(tag) => ServerMessage::BgFail(tag, Failure::from_words(args)),
                None => malformed(),
            },
            "WARN" => ServerMessage::Event(Event::Warn(Warning::from_words(args))),
            "NOTE" => ServerMessage::Event(Event::Note(Note::from_words(args))),
            "SVCJOB" if args.len() >= 2 => {
                let jobid = args.remove(0);
                let service = args.remove(0);
                let command = if args.is_empty() { String::new() } else { args.remove(0) };
                ServerMessage::Service(ServiceMessage::Job { jobid, service, command, args })
            }
            "SVCCANCEL" if !args.is_empty() => {
                ServerMessage::Service(ServiceMessage::Cancel { jobid: args.remove(0) })
            }
            "SVCCLAIM" if args.len() >= 2 => {
                let service = args.remove(0);
                let version = args.remove(0);
                ServerMessage::Service(ServiceMessage::Claimed { service, version })
            }
            "SVCJOB" | "SVCCANCEL" | "SVCCLAIM" => malformed(),
            _ => ServerMessage::Event(Event::Unknown { code, args }),
        }
    }
}

/// A line for the provider of a service (spec/tripe-admin.md section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceMessage {
    /// `SVCJOB jobid service command args...`: a new job.
    Job {
        /// The server's job id, opaque.
        jobid: String,
        /// The service, as the submitter spelled it.
        service: String,
        /// The service command (empty if the submitter gave none).
        command: String,
        /// The command's arguments.
        args: Vec<String>,
    },
    /// `SVCCANCEL jobid`: the job was cancelled; send nothing more for it.
    Cancel {
        /// The job id.
        jobid: String,
    },
    /// `SVCCLAIM service version`: another client claimed a later version, so this
    /// connection no longer provides the service.
    Claimed {
        /// The service.
        service: String,
        /// The new provider's version.
        version: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> ServerMessage {
        ServerMessage::parse(line.as_bytes())
    }

    #[test]
    fn every_code() {
        assert_eq!(parse("OK"), ServerMessage::Ok);
        assert_eq!(parse("ok"), ServerMessage::Ok);
        assert_eq!(parse("INFO a 'b c'"), ServerMessage::Info(vec!["a".into(), "b c".into()]));
        assert_eq!(parse("INFO"), ServerMessage::Info(vec![]));
        assert_eq!(
            parse("FAIL tag-exists J1"),
            ServerMessage::Fail(Failure { token: "tag-exists".into(), args: vec!["J1".into()] })
        );
        assert_eq!(parse("BGDETACH J1"), ServerMessage::BgDetach("J1".into()));
        assert_eq!(parse("BGINFO J1 x"), ServerMessage::BgInfo("J1".into(), vec!["x".into()]));
        assert_eq!(parse("BGOK J1"), ServerMessage::BgOk("J1".into()));
        assert!(matches!(parse("BGFAIL J1 ping-send-failed"), ServerMessage::BgFail(t, f)
            if t == "J1" && f.token == "ping-send-failed"));
        assert_eq!(
            parse("TRACE  keyexch: 'raw' text"),
            ServerMessage::Event(Event::Trace("keyexch: 'raw' text".into()))
        );
        assert!(matches!(
            parse("WARN SERVER quit admin-request"),
            ServerMessage::Event(Event::Warn(_))
        ));
        assert!(matches!(
            parse("NOTE KXDONE alice"),
            ServerMessage::Event(Event::Note(Note::KxDone { .. }))
        ));
        assert_eq!(
            parse("SVCJOB j1 Connect info alice"),
            ServerMessage::Service(ServiceMessage::Job {
                jobid: "j1".into(),
                service: "Connect".into(),
                command: "info".into(),
                args: vec!["alice".into()],
            })
        );
        assert_eq!(
            parse("SVCJOB j1 connect"),
            ServerMessage::Service(ServiceMessage::Job {
                jobid: "j1".into(),
                service: "connect".into(),
                command: String::new(),
                args: vec![],
            })
        );
        assert_eq!(
            parse("SVCCANCEL j1"),
            ServerMessage::Service(ServiceMessage::Cancel { jobid: "j1".into() })
        );
        assert_eq!(
            parse("SVCCLAIM connect 2.0"),
            ServerMessage::Service(ServiceMessage::Claimed {
                service: "connect".into(),
                version: "2.0".into()
            })
        );
        assert_eq!(
            parse("NEWTHING 1 2"),
            ServerMessage::Event(Event::Unknown {
                code: "NEWTHING".into(),
                args: vec!["1".into(), "2".into()]
            })
        );
    }

    #[test]
    fn hostile_lines() {
        for line in [
            "",
            "   ",
            "BGOK",
            "BGDETACH",
            "BGINFO",
            "BGFAIL",
            "SVCJOB j1",
            "SVCCANCEL",
            "SVCCLAIM x",
        ] {
            assert!(matches!(parse(line), ServerMessage::Malformed(_)), "{line:?}");
        }
        assert_eq!(
            parse("INFO 'unterminated quote"),
            ServerMessage::Info(vec!["unterminated quote".into()])
        );
        assert_eq!(parse("INFO trailing\\"), ServerMessage::Info(vec!["trailing".into()]));
        assert_eq!(
            ServerMessage::parse(b"INFO \xff\xfe ok\r"),
            ServerMessage::Info(vec!["\u{fffd}\u{fffd}".into(), "ok".into()])
        );
        assert_eq!(ServerMessage::parse(b"INFO a\0b"), ServerMessage::Info(vec!["a\0b".into()]));
    }
}
