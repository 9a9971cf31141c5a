//! `ave call`: one RPC to any AVE service.

use std::process::ExitCode;

/// Arguments of `ave call`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key to authenticate with.
    #[arg(long, value_name = "KEY")]
    authkey: Option<String>,
    /// Give up after this many seconds (0: no timeout).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Make a one-way call: send it and do not wait for an answer.
    #[arg(long = "async")]
    async_: bool,
    /// The resource profile to send with the call, as a JSON object.
    #[arg(long, value_name = "JSON")]
    resource: Option<String>,
    /// A keyword argument (repeatable); the value is JSON, or a string if it is not JSON.
    #[arg(long = "kw", value_name = "NAME=JSON")]
    kwargs: Vec<String>,
    /// The service's address.
    #[arg(value_name = "HOST:PORT")]
    address: String,
    /// The method to call.
    #[arg(value_name = "METHOD")]
    method: String,
    /// Positional arguments; each is JSON, or a string if it is not JSON.
    #[arg(value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`ave call` is not implemented yet (ave-network issue)")
}
