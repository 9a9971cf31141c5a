//! `ave run`: run a command on a fresh pty.

use std::{path::PathBuf, process::ExitCode};

/// Arguments of `ave run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// End the command's whole session after this many seconds (exit 124).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Working directory of the command.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Also write every chunk of output to this file as it arrives.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Trace the runner's poll events and reads on stderr.
    #[arg(long)]
    debug: bool,
    /// Print one JSON object at the end instead of streaming the output.
    #[arg(long)]
    json: bool,
    /// The command and its arguments (no shell).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    cmd: Vec<String>,
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`ave run` is not implemented yet (ave-cmd issue)")
}
