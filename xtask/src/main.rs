//! Project automation, following the cargo-xtask convention
//! (<https://github.com/matklad/cargo-xtask>): `cargo xtask <task>` runs this binary
//! through the alias in `.cargo/config.toml`.
//!
//! Tasks:
//!
//! - `ci`: everything CI checks, in order, stopping at the first failure: `fmt --check`,
//!   `tidy`, `lint`, `test`, `docs`.
//! - `fmt [--check]`: rustfmt over the workspace.
//! - `lint`: clippy on all targets with warnings as errors.
//! - `test [ARGS...]`: the tests (nextest when installed, else `cargo test`), then the
//!   doctests, which nextest does not run.
//! - `docs [--open]`: the docs site, i.e. rustdoc of the workspace with the Markdown of
//!   `docs/` included in the facade, warnings as errors; prints where it is.
//! - `bench [FILTER]`: every benchmark the crates define (`harness = false` bench targets),
//!   in release mode, then one table of their results against the peers they ran beside.
//! - `stress [ARGS...]`: the original's stress scenario, at full size (bounded in time).
//! - `tidy`: project rules that no compiler checks (see `tidy.rs`).

// A command-line tool prints to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod tidy;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

/// An xtask failure: a message for the user.
type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result {
    let root = project_root();
    env::set_current_dir(&root).map_err(|e| format!("cannot enter {}: {e}", root.display()))?;
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            print_help();
            return Ok(());
        }
    };
    match task {
        "ci" => ci(),
        "fmt" => fmt(rest.iter().any(|a| a == "--check")),
        "lint" => lint(),
        "test" => test(rest),
        "docs" => docs(rest.iter().any(|a| a == "--open")),
        "bench" => bench::run(&root, rest),
        "stress" => stress(rest),
        "tidy" => tidy::run(&root),
        "help" | "-h" | "--help" => {
            print_help();
            Ok(())
        }
        other => Err(format!("unknown task `{other}`; try `cargo xtask help`")),
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         ci              fmt --check, tidy, lint, test, docs\n  \
         fmt [--check]   format the workspace\n  \
         lint            clippy on all targets, warnings as errors\n  \
         test [ARGS]     tests (nextest if installed) and doctests\n  \
         docs [--open]   build the docs site\n  \
         bench [FILTER]  run the benchmarks and print one table\n  \
         stress [ARGS]   the original's stress scenario at full size\n  \
         tidy            project rules no compiler checks"
    );
}

/// One step of `ci`: its name and what it runs.
type Step = (&'static str, fn() -> Result);

fn ci() -> Result {
    let steps: [Step; 5] = [
        ("fmt", || fmt(true)),
        ("tidy", || tidy::run(&project_root())),
        ("lint", lint),
        ("test", || test(&[])),
        ("docs", || docs(false)),
    ];
    let mut summary = Vec::new();
    for (name, step) in steps {
        println!("\n==> xtask ci: {name}");
        let started = Instant::now();
        let result = step();
        let took = started.elapsed().as_secs_f64();
        summary.push((name, result.is_ok(), took));
        if let Err(e) = result {
            print_summary(&summary);
            return Err(format!("ci step `{name}` failed: {e}"));
        }
    }
    print_summary(&summary);
    Ok(())
}

fn print_summary(summary: &[(&str, bool, f64)]) {
    println!("\nxtask ci summary:");
    for (name, ok, took) in summary {
        println!("  {:<6} {:<4} {took:>7.1}s", name, if *ok { "ok" } else { "FAIL" });
    }
}

fn fmt(check: bool) -> Result {
    let mut args = vec!["fmt", "--all"];
    if check {
        args.extend(["--", "--check"]);
    }
    cargo(&args, &[])
}

fn lint() -> Result {
    cargo(
        &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        &[],
    )
}

fn test(extra: &[String]) -> Result {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    if has_nextest() {
        let mut args = vec!["nextest", "run", "--workspace", "--all-features", "--profile", "ci"];
        args.extend(&extra);
        cargo(&args, &[])?;
    } else {
        println!("(cargo-nextest not found; using cargo test)");
        let mut args = vec!["test", "--workspace", "--all-features"];
        args.extend(&extra);
        cargo(&args, &[])?;
    }
    cargo(&["test", "--workspace", "--all-features", "--doc"], &[])
}

fn docs(open: bool) -> Result {
    let mut args = vec!["doc", "--workspace", "--no-deps", "--all-features"];
    if open {
        args.push("--open");
    }
    cargo(&args, &[("RUSTDOCFLAGS", "-D warnings")])?;
    let index = target_dir().join("doc/ave/index.html");
    println!("\ndocs site: {}", index.display());
    Ok(())
}

fn stress(extra: &[String]) -> Result {
    let mut args = vec!["run", "--release", "--quiet", "-p", "tests", "--bin", "stress", "--"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args, &[])
}

fn has_nextest() -> bool {
    Command::new(cargo_path())
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs cargo with the arguments, echoing the command first, and fails on a non-zero exit.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result {
    let env_text: String = envs.iter().map(|(k, v)| format!("{k}=\"{v}\" ")).collect();
    println!("$ {env_text}cargo {}", args.join(" "));
    let status = Command::new(cargo_path())
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn cargo_path() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The workspace root: the parent of this crate's folder.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from)
}
