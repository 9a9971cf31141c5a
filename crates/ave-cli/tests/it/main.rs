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

/// What a finished `ave` said: its exit code (-1 for a signal), stdout and stderr.
fn outcome(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ave call` with `first` then `args`, and what it said.
fn ave_call(first: &[&str], args: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = ["call"].iter().chain(first).chain(args).copied().collect();
    outcome(&ave(&all))
}
