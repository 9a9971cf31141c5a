//! `ave tripe`: one administration command to a TrIPE server (like `tripectl`), or its
//! broadcasts.
//!
//! Exit codes (design.md): 0 when the server said OK, 1 when it said FAIL (the FAIL line
//! on stderr), 2 for a command that cannot be sent, 3 when the socket cannot be reached or
//! the connection drops.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use ave::tripe::{self, Client, Error, Event};

use crate::chain;

/// Arguments of `ave tripe`.
#[derive(Debug, clap::Args)]
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
    /// `+` or `-`.
    #[arg(long, value_name = "MASK", num_args = 0..=1, default_missing_value = "", conflicts_with = "command")]
    watch: Option<String>,
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

/// The command was sent and failed, or could not be sent.
const FAILED: u8 = 1;
/// The command cannot be sent (a usage error).
const UNSENDABLE: u8 = 2;
/// The socket cannot be reached, or the connection dropped.
const UNREACHABLE: u8 = 3;

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let path = tripe::resolve_socket(args.socket.as_deref(), args.dir.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = match Client::connect(&path).await {
            Ok(client) => client,
            Err(error) => return Ok(report(&error)),
        };
        match args.watch {
            Some(mask) => watch(&client, &mask).await,
            None => command(&client, &args.command).await,
        }
    })
}

/// Sends one command; prints its INFO lines as they arrive.
async fn command(client: &Client, words: &[String]) -> anyhow::Result<ExitCode> {
    let mut reply = match client.command(words) {
        Ok(reply) => reply,
        Err(error) => return Ok(report(&error)),
    };
    let mut stdout = io::stdout().lock();
    let mut printing = true;
    loop {
        match reply.next_info().await {
            Ok(Some(words)) => {
                // A closed stdout (`| head`) stops the printing, not the command.
                if printing && writeln!(stdout, "{}", tripe::join_words(&words)).is_err() {
                    printing = false;
                }
            }
            Ok(None) => return Ok(ExitCode::SUCCESS),
            Err(error) => return Ok(report(&error)),
        }
    }
}

/// Prints broadcasts, one line each, until the server closes the connection.
async fn watch(client: &Client, mask: &str) -> anyhow::Result<ExitCode> {
    let mut events = client.events();
    if let Err(error) = client.watch(&[&watch_spec(mask)]).await {
        return Ok(report(&error));
    }
    let mut stdout = io::stdout().lock();
    while let Some(event) = events.recv().await {
        match event {
            Event::Missed { count } => {
                eprintln!("ave: missed {count} broadcasts (output too slow)")
            }
            event => {
                if writeln!(stdout, "{event}").is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The WATCH argument for a mask: all broadcasts by default; plain letters replace the
/// mask; a spec with a sign goes as it is.
fn watch_spec(mask: &str) -> String {
    if mask.is_empty() {
        "+A".to_owned()
    } else if mask.starts_with(['+', '-']) {
        mask.to_owned()
    } else {
        format!("-A+{mask}")
    }
}

/// Prints an error and returns its exit code.
fn report(error: &Error) -> ExitCode {
    if let Some(failure) = error.failure() {
        eprintln!("FAIL {failure}");
        return ExitCode::from(FAILED);
    }
    eprintln!("ave: {}", chain(error));
    let code = match error {
        Error::EmptyCommand | Error::Unsendable { .. } | Error::CommandTooLong { .. } => UNSENDABLE,
        error if error.is_connection_error() => UNREACHABLE,
        _ => FAILED,
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_specs() {
        assert_eq!(watch_spec(""), "+A");
        assert_eq!(watch_spec("wn"), "-A+wn");
        assert_eq!(watch_spec("+t"), "+t");
        assert_eq!(watch_spec("-A+w"), "-A+w");
    }
}
