//! Integration tests of the `ave` binary: real runs of the program as a user types it.

mod call;
mod config;
mod demo;
mod discovery;
mod hardening;
mod help;
mod hickup;
mod install;
mod logs;
mod replace;
mod run;
mod secrets;
mod serve;
mod systemd;
mod tripe;

use std::process::{Command, Output};

/// Runs the `ave` binary built for these tests with the given arguments.
fn ave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ave")).args(args).output().expect("run ave")
}
