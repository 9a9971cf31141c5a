//! The `ave` command line: run commands through a pty, serve and call AVE services,
//! bootstrap configuration, drive a TrIPE server, and a demo of it all.
//!
//! The CLI is thin: each subcommand module parses its arguments with clap and calls into
//! the library crates through the facade `ave`. No subcommand starts an async runtime
//! before it needs one, so commands that fork do so while the process has one thread.

// A command line prints to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod call;
mod config;
mod demo;
mod duration;
mod run;
mod serve;
mod tripe;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// AVE: the common subsystems of the lab automation suite, from the command line.
#[derive(Debug, Parser)]
#[command(name = "ave", version, about, propagate_version = true)]
struct Cli {
    /// More log output on stderr (repeatable: -v info, -vv debug, -vvv trace). `RUST_LOG`
    /// overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command in a new session on a new pty, streaming its merged output.
    Run(run::Args),
    /// Run the diagnostic AVE service.
    Serve(serve::Args),
    /// Make one RPC to any AVE service and print the result as JSON.
    Call(call::Args),
    /// Create and inspect AVE configuration files.
    #[command(subcommand)]
    Config(config::Command),
    /// Send one administration command to a TrIPE server, or watch its broadcasts.
    Tripe(tripe::Args),
    /// Show the whole suite working end to end on a temporary home.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Call(args) => call::main(args),
        Command::Config(command) => config::main(command),
        Command::Tripe(args) => tripe::main(args),
        Command::Demo(args) => demo::main(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ave: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes as one line, `outer: inner: innermost`, for messages that are
/// not printed through anyhow's `{:#}`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Logs go to stderr: `RUST_LOG` if set, otherwise a level from the `-v` count.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
