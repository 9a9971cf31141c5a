//! `ave tripe`: one administration command to a TrIPE server (like `tripectl`), or its
//! broadcasts.
//!
//! Exit codes (design.md, and `ave tripe --help`): 0 when the server said OK, 1 when it
//! said FAIL (the FAIL tokens on stderr), 2 for a usage error (a command that cannot be
//! sent, a `--watch` letter that is not a selector), 3 when the socket cannot be reached or
//! the connection drops. Lines are printed as they arrive; memory stays flat however long
//! the output (the library's replies are bounded).

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use ave::tripe::{self, Client, Error, Event};

use crate::chain;

/// The exit codes, for `ave tripe --help`.
const EXIT_CODES: &str = "\
Exit status:
  0  the server said OK (with --watch: the server closed the connection)
  1  the server said FAIL; its tokens are on stderr
  2  usage error (a command that cannot be sent, a --watch letter that is not w, n, t or A)
  3  the admin socket cannot be reached, or the connection dropped";

/// Arguments of `ave tripe`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct Args {
    /// The admin socket (default: `$TRIPESOCK`, or `tripesock` in the TrIPE directory when
    /// one is chosen, else `/var/run/tripesock`; a relative path is taken inside the TrIPE
    /// directory).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The TrIPE directory (default: `$TRIPEDIR`, or `/etc/tripe`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print broadcasts until the server closes. MASK chooses them: letters `w` (WARN),
    /// `n` (NOTE), `t` (TRACE), `A` (all; the default), or a WATCH spec starting with
    /// `+` or `-`. Other letters are refused.
    #[arg(long, value_name = "MASK", num_args = 0..=1, default_missing_value = "", conflicts_with = "command")]
    watch: Option<String>,
    /// Print one JSON object per reply line instead of text: `{"code": "INFO", "words":
    /// [...]}` for each INFO line, then `{"code": "OK"}` or `{"code": "FAIL", "words":
    /// [...]}` (also on stdout); with --watch, one object per broadcast (`{"code":
    /// "TRACE", "text": ...}` for a trace).
    #[arg(long)]
    json: bool,
    /// The admin command and its arguments (each argument is one word; it is quoted for
    /// the server as needed).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "watch"
    )]
    command: Vec<String>,
}

/// The command was sent and failed.
const FAILED: u8 = 1;
/// A usage error: the command cannot be sent, or a bad `--watch` letter.
const USAGE: u8 = 2;
/// The socket cannot be reached, or the connection dropped.
const UNREACHABLE: u8 = 3;

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let watch = match args.watch.as_deref().map(watch_spec) {
        Some(Ok(spec)) => Some(spec),
        Some(Err(error)) => return Ok(report(&error)),
        None => None,
    };
    let path = tripe::resolve_socket(args.socket.as_deref(), args.dir.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = match Client::connect(&path).await {
            Ok(client) => client,
            Err(error) => return Ok(report(&error)),
        };
        match watch {
            Some(spec) => watch_events(&client, &spec, args.json).await,
            None => command(&client, &args.command, args.json).await,
        }
    })
}

/// Sends one command; prints its INFO lines as they arrive.
async fn command(client: &Client, words: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let mut reply = match client.command(words) {
        Ok(reply) => reply,
        Err(error) => return Ok(report(&error)),
    };
    let mut stdout = io::stdout().lock();
    let mut printing = true;
    loop {
        let (line, end) = match reply.next_info().await {
            Ok(Some(words)) => (reply_line(json, "INFO", &words), None),
            Ok(None) => (json.then(|| json_line("OK", &[])), Some(ExitCode::SUCCESS)),
            Err(Error::Failed(failure)) if json => {
                (Some(json_line("FAIL", &failure.words())), Some(ExitCode::from(FAILED)))
            }
            Err(error) => return Ok(report(&error)),
        };
        // A closed stdout (`| head`) stops the printing, not the command.
        if let Some(line) = line {
            if printing && writeln!(stdout, "{line}").is_err() {
                printing = false;
            }
        }
        if let Some(code) = end {
            return Ok(code);
        }
    }
}

/// An INFO line as text (words re-quoted) or as a JSON object.
fn reply_line(json: bool, code: &str, words: &[String]) -> Option<String> {
    Some(if json { json_line(code, words) } else { tripe::join_words(words) })
}

/// `{"code": CODE, "words": [...]}`, or `{"code": CODE}` without words.
fn json_line(code: &str, words: &[String]) -> String {
    let value = if words.is_empty() && code != "INFO" {
        serde_json::json!({ "code": code })
    } else {
        serde_json::json!({ "code": code, "words": words })
    };
    value.to_string()
}

/// Prints broadcasts, one line each, until the server closes the connection.
async fn watch_events(client: &Client, spec: &str, json: bool) -> anyhow::Result<ExitCode> {
    let mut events = client.events();
    if let Err(error) = client.watch(&[spec]).await {
        return Ok(report(&error));
    }
    let mut stdout = io::stdout().lock();
    while let Some(event) = events.recv().await {
        let line = match event {
            Event::Missed { count } => {
                eprintln!("ave tripe: warning: missed {count} broadcasts (output too slow)");
                continue;
            }
            Event::Trace(text) if json => {
                serde_json::json!({ "code": "TRACE", "text": text }).to_string()
            }
            event if json => {
                let mut words = event.to_words();
                let code = if words.is_empty() { String::new() } else { words.remove(0) };
                json_line(&code, &words)
            }
            event => event.to_string(),
        };
        if writeln!(stdout, "{line}").is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The WATCH argument for a mask: all broadcasts by default; plain letters replace the
/// mask; a spec with a sign goes as it is. Letters are checked.
fn watch_spec(mask: &str) -> Result<String, Error> {
    tripe::check_selectors("WATCH", tripe::WATCH_LETTERS, &[mask])?;
    Ok(if mask.is_empty() {
        "+A".to_owned()
    } else if mask.starts_with(['+', '-']) {
        mask.to_owned()
    } else {
        format!("-A+{mask}")
    })
}

/// Prints an error and returns its exit code.
fn report(error: &Error) -> ExitCode {
    if let Some(failure) = error.failure() {
        eprintln!("ave tripe: FAIL {failure}");
        return ExitCode::from(FAILED);
    }
    let code = match error {
        Error::EmptyCommand
        | Error::Unsendable { .. }
        | Error::CommandTooLong { .. }
        | Error::BadSelector { .. } => USAGE,
        error if error.is_connection_error() => UNREACHABLE,
        _ => FAILED,
    };
    eprintln!("ave tripe: error: {}", chain(error));
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_specs() {
        assert_eq!(watch_spec("").unwrap(), "+A");
        assert_eq!(watch_spec("wn").unwrap(), "-A+wn");
        assert_eq!(watch_spec("+t").unwrap(), "+t");
        assert_eq!(watch_spec("-A+w").unwrap(), "-A+w");
        assert!(matches!(watch_spec("wq"), Err(Error::BadSelector { letter: 'q', .. })));
        assert!(matches!(watch_spec("+n x"), Err(Error::BadSelector { letter: ' ', .. })));
    }

    #[test]
    fn json_lines() {
        assert_eq!(json_line("OK", &[]), r#"{"code":"OK"}"#);
        assert_eq!(json_line("INFO", &[]), r#"{"code":"INFO","words":[]}"#);
        assert_eq!(
            json_line("FAIL", &["unknown-peer".into(), "b c".into()]),
            r#"{"code":"FAIL","words":["unknown-peer","b c"]}"#
        );
    }
}
