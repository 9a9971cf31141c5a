//! Log output on stderr: for a person at a terminal, for journald, or for a log shipper.
//!
//! Every line starts `ave <command>: ` (text format). What goes out:
//!
//! - the *lifecycle* of a command (`listening on`, `took over N connections from pid P`,
//!   `draining`, `stopped: ...`): events with the target [`LIFECYCLE`], shown at the
//!   default level, as plain `ave serve: listening on 127.0.0.1:4000` lines;
//! - warnings and errors of every crate, always;
//! - more with `-v` (info), `-vv` (debug), `-vvv` (trace), or exactly what `RUST_LOG` asks
//!   (the lifecycle stays on unless `RUST_LOG` names its target).
//!
//! Colour (the level word only) is used when `--color always`, or with `--color auto`
//! (the default) when stderr is a terminal, `NO_COLOR` is unset or empty and `TERM` is not
//! `dumb`. When stderr is the journal (`JOURNAL_STREAM` names the device and inode of
//! stderr), lines carry a syslog priority prefix (`<3>` error, `<4>` warning, `<6>` info,
//! `<7>` debug and trace), which journald turns into the entry's priority, and never colour.
//! `--log-format json` writes one JSON object a line instead:
//! `{"time", "level", "target", "command", "message", "fields"}`.

use std::{fmt, io::IsTerminal as _};

use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime as _, SystemTime},
    },
    registry::LookupSpan,
};

/// The target of lifecycle events: what an operator follows at the default level.
pub(crate) const LIFECYCLE: &str = "ave::lifecycle";

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Color {
    /// When stderr is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always, even into a pipe.
    Always,
    /// Never.
    Never,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// `ave <command>: message key=value`, for people and journald.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// The logging flags of the command line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// The `-v` count.
    pub(crate) verbose: u8,
    /// `--color`.
    pub(crate) color: Color,
    /// `--log-format`.
    pub(crate) format: Format,
}

/// What the environment says about stderr, read once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stderr {
    terminal: bool,
    journal: bool,
    no_color: bool,
    dumb: bool,
}

impl Stderr {
    fn probe() -> Stderr {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Stderr {
            terminal: std::io::stderr().is_terminal(),
            journal: var("JOURNAL_STREAM").is_some_and(|v| is_journal_stream(&v)),
            no_color: var("NO_COLOR").is_some(),
            dumb: var("TERM").is_some_and(|t| t == "dumb"),
        }
    }
}

/// Installs the global subscriber: logs on stderr for the command `command` (such as
/// `serve`), formatted as `options` and the environment say.
pub(crate) fn init(command: &str, options: Options) {
    let stderr = Stderr::probe();
    let style = Style {
        command: format!("ave {command}"),
        color: use_color(options.color, stderr),
        priority: stderr.journal,
        format: options.format,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter(options.verbose, std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        .event_format(style)
        .init();
}

/// The filter: `RUST_LOG` if set, else a level from the `-v` count; the lifecycle is on
/// unless `RUST_LOG` says otherwise about it.
fn filter(verbose: u8, rust_log: Option<&str>) -> EnvFilter {
    let base = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let spec = match rust_log.filter(|s| !s.trim().is_empty()) {
        Some(env) if env.contains(LIFECYCLE) => env.to_owned(),
        Some(env) => format!("{env},{LIFECYCLE}=info"),
        None => format!("{base},{LIFECYCLE}=info"),
    };
    EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        // A bad RUST_LOG must not silence the lifecycle or stop the command.
        eprintln!("ave: RUST_LOG ignored: {e}");
        EnvFilter::new(format!("{base},{LIFECYCLE}=info"))
    })
}

/// Whether to colour, from the flag and what stderr is.
fn use_color(choice: Color, stderr: Stderr) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => stderr.terminal && !stderr.no_color && !stderr.dumb && !stderr.journal,
    }
}

/// Whether `JOURNAL_STREAM` (`<device>:<inode>`) names the file stderr is open on.
fn is_journal_stream(value: &std::ffi::OsStr) -> bool {
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(stat) => stat.st_dev == dev && stat.st_ino == ino,
        Err(_) => false,
    }
}

/// The syslog priority journald reads from a `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The event formatter of both formats.
#[derive(Debug)]
struct Style {
    command: String,
    color: bool,
    priority: bool,
    format: Format,
}

impl<S, N> FormatEvent<S, N> for Style
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        match self.format {
            Format::Json => {
                let mut time = String::new();
                SystemTime.format_time(&mut Writer::new(&mut time))?;
                let line = serde_json::json!({
                    "time": time,
                    "level": meta.level().as_str().to_ascii_lowercase(),
                    "target": meta.target(),
                    "command": self.command,
                    "message": fields.message,
                    "fields": serde_json::Value::Object(fields.json),
                });
                writeln!(writer, "{line}")
            }
            Format::Text => {
                if self.priority {
                    write!(writer, "<{}>", priority(*meta.level()))?;
                }
                write!(writer, "{}: ", self.command)?;
                let lifecycle = meta.target() == LIFECYCLE && *meta.level() == Level::INFO;
                if !lifecycle {
                    let (word, code) = match *meta.level() {
                        Level::ERROR => ("error", "31"),
                        Level::WARN => ("warning", "33"),
                        Level::INFO => ("info", "32"),
                        Level::DEBUG => ("debug", "34"),
                        Level::TRACE => ("trace", "35"),
                    };
                    if self.color {
                        write!(writer, "\x1b[{code}m{word}\x1b[0m: ")?;
                    } else {
                        write!(writer, "{word}: ")?;
                    }
                    if *meta.level() >= Level::DEBUG {
                        write!(writer, "{}: ", meta.target())?;
                    }
                }
                write!(writer, "{}", fields.message)?;
                for (name, value) in &fields.text {
                    write!(writer, " {name}={value}")?;
                }
                writeln!(writer)
            }
        }
    }
}

/// An event's message and other fields, for both formats.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    text: Vec<(&'static str, String)>,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn add(&mut self, field: &Field, text: String, json: serde_json::Value) {
        if field.name() == "message" {
            self.message = text;
        } else {
            self.text.push((field.name(), text));
            self.json.insert(field.name().to_owned(), json);
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.add(field, text.clone(), serde_json::Value::String(text));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let text = if field.name() == "message" { value.to_owned() } else { format!("{value:?}") };
        self.add(field, text, serde_json::Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.to_string(), serde_json::Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.to_string(), serde_json::Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, value.to_string(), serde_json::Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.to_string(), serde_json::Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMINAL: Stderr =
        Stderr { terminal: true, journal: false, no_color: false, dumb: false };

    #[test]
    fn colour_only_on_a_terminal_unless_forced() {
        assert!(use_color(Color::Auto, TERMINAL));
        assert!(!use_color(Color::Auto, Stderr { terminal: false, ..TERMINAL }));
        assert!(!use_color(Color::Auto, Stderr { no_color: true, ..TERMINAL }));
        assert!(!use_color(Color::Auto, Stderr { dumb: true, ..TERMINAL }));
        assert!(!use_color(Color::Auto, Stderr { journal: true, ..TERMINAL }));
        assert!(use_color(Color::Always, Stderr { terminal: false, no_color: true, ..TERMINAL }));
        assert!(!use_color(Color::Never, TERMINAL));
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(!is_journal_stream("".as_ref()));
        assert!(!is_journal_stream("12".as_ref()));
        assert!(!is_journal_stream("x:y".as_ref()));
        let stat = nix::sys::stat::fstat(std::io::stderr()).expect("fstat stderr");
        let own = format!("{}:{}", stat.st_dev, stat.st_ino);
        assert!(is_journal_stream(own.as_ref()));
        let other = format!("{}:{}", stat.st_dev, stat.st_ino + 1);
        assert!(!is_journal_stream(other.as_ref()));
    }

    #[test]
    fn priorities_are_syslogs() {
        assert_eq!(
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(priority),
            [3, 4, 6, 7, 7]
        );
    }
}
