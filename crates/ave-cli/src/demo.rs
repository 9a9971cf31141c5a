//! `ave demo`: the whole suite, end to end, on a temporary home.

use std::process::ExitCode;

/// Arguments of `ave demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`ave demo` is not implemented yet (product issue)")
}
