//! `ave config`: create and inspect AVE configuration files.

use std::{path::PathBuf, process::ExitCode};

/// The `ave config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write the default configuration files that do not exist yet.
    Init {
        /// The home directory to write `.ave/config` under (default: yours).
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
    },
    /// Show the configuration files and whether they load.
    Show {
        /// The home directory to read `.ave/config` from (default: yours).
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
    },
    /// Create `/etc/ave/user`, naming the user AVE services run as.
    Etc {
        /// Where to write the file.
        #[arg(long, value_name = "PATH")]
        path: Option<PathBuf>,
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Become the user and write their default configuration files (as root).
    Bootstrap {
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: String,
    },
}

pub(crate) fn main(command: Command) -> anyhow::Result<ExitCode> {
    let _ = command;
    anyhow::bail!("`ave config` is not implemented yet (ave-config issue)")
}
