//! `ave tripe`: one administration command to a TrIPE server.

use std::{path::PathBuf, process::ExitCode};

/// Arguments of `ave tripe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The admin socket (default: `$TRIPESOCK`, or `tripesock` in the TrIPE directory).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The TrIPE directory (default: `$TRIPEDIR`, or the built-in default).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print broadcasts (optionally filtered by MASK) until the server closes.
    #[arg(long, value_name = "MASK", num_args = 0..=1, default_missing_value = "")]
    watch: Option<String>,
    /// The admin command and its arguments.
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`ave tripe` is not implemented yet (ave-tripe issue)")
}
