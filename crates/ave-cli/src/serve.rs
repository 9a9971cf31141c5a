//! `ave serve`: the diagnostic AVE service.

use std::{net::IpAddr, path::PathBuf, process::ExitCode};

/// Arguments of `ave serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    port: u16,
    /// Write the port number to this file once connections are accepted.
    #[arg(long, value_name = "PATH")]
    port_file: Option<PathBuf>,
    /// The primary authentication key.
    #[arg(long, value_name = "KEY")]
    authkey: Option<String>,
    /// An alternate key for an account, such as `admin=secret` (repeatable).
    #[arg(long = "alt-key", value_name = "NAME=KEY")]
    alt_keys: Vec<String>,
    /// Add the keys of `<home>/.ave/config/authkeys.json` as alternate keys.
    #[arg(long)]
    authkeys: bool,
    /// The AVE home directory (config, hickup dumps, the handover socket).
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Call the service's idle hook after this many quiet seconds.
    #[arg(long, value_name = "SECS")]
    interval: Option<f64>,
    /// Which handshake digests to accept.
    #[arg(long, default_value = "any", value_parser = ["md5", "sha256", "any"])]
    digest: String,
    /// Take over the listener and every live connection of the instance serving the same
    /// home; it exits and no client notices.
    #[arg(long)]
    replace: bool,
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`ave serve` is not implemented yet (ave-network issue)")
}
