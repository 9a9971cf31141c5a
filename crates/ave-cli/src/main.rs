//! The `ave` command line: run commands through a pty, serve and call AVE services,
//! bootstrap configuration, drive a TrIPE server, and a demo of it all.
//!
//! The CLI is thin: each subcommand module parses its arguments with clap and calls into
//! the library crates through the facade `ave`. No subcommand starts an async runtime
//! before it needs one, so commands that fork do so while the process has one thread.

// A command line prints to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod address;
mod call;
mod config;
mod demo;
mod duration;
mod install;
mod logging;
mod methods;
mod run;
mod secrets;
mod serve;
mod sys;
mod systemd;
mod tripe;

use std::process::ExitCode;

// An error and its causes as one line, `outer: inner: innermost`, for messages that are
// not printed through anyhow's `{:#}`: the shared helper, under the name the subcommands use.
use ave::exceptions::error_chain as chain;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// AVE: the common subsystems of the lab automation suite, from the command line.
#[derive(Debug, Parser)]
#[command(name = "ave", version = VERSION, about, propagate_version = true)]
struct Cli {
    /// More log output on stderr (repeatable: -v info, -vv debug, -vvv trace). `RUST_LOG`
    /// overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour the log output: `auto` (when stderr is a terminal and `NO_COLOR` is unset),
    /// `always` or `never`.
    #[arg(long, global = true, value_enum, default_value = "auto", value_name = "WHEN")]
    color: logging::Color,
    /// Log lines as `text` (`ave <command>: ...`, `<N>`-prefixed under journald) or `json`
    /// (one object a line).
    #[arg(long, global = true, value_enum, default_value = "text", value_name = "FORMAT")]
    log_format: logging::Format,

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
    /// Write the completion script for a shell on stdout.
    Completions(install::CompletionsArgs),
    /// Write the man pages into a folder (for packaging).
    #[command(hide = true)]
    Man(install::ManArgs),
}

impl Command {
    /// The subcommand's name, which starts each of its messages: `ave <name>: `.
    fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Serve(_) => "serve",
            Command::Call(_) => "call",
            Command::Config(_) => "config",
            Command::Tripe(_) => "tripe",
            Command::Demo(_) => "demo",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }
}

/// The version, with the git revision it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("AVE_VERSION_REVISION"), ")");

fn main() -> ExitCode {
    // First, while this process has one thread: the key in the environment is taken out
    // of it, so that no child process inherits it.
    secrets::take_env_authkey();
    // `ave serve --help` lists the methods of the service it serves, from the service.
    let command = Cli::command().mut_subcommand("serve", serve::with_method_help);
    let cli = match command.try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => return parse_error(&e),
    };
    let name = cli.command.name();
    let options =
        logging::Options { verbose: cli.verbose, color: cli.color, format: cli.log_format };
    logging::init(name, options);
    let result = match cli.command {
        Command::Run(args) => run::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Call(args) => call::main(args),
        Command::Config(command) => config::main(command),
        Command::Tripe(args) => tripe::main(args),
        Command::Demo(args) => demo::main(args),
        Command::Completions(args) => Ok(install::completions(args, Cli::command())),
        Command::Man(args) => install::man(args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ave {name}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints clap's help, version or usage error; a usage error's first line starts with
/// `ave <command>: ` like every other message. Exit 0 for help and version, 2 otherwise.
fn parse_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = e.render().to_string();
    let cli = Cli::command();
    let command = std::env::args().skip(1).find(|a| cli.find_subcommand(a).is_some());
    let prefix = match command {
        Some(command) => format!("ave {command}: "),
        None => "ave: ".to_owned(),
    };
    eprint!("{prefix}{text}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
