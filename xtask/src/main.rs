//! Project automation, following the cargo-xtask convention
//! (<https://github.com/matklad/cargo-xtask>): `cargo xtask <task>` runs this binary
//! through the alias in `.cargo/config.toml`.
//!
//! Tasks:
//!
//! - `ci`: everything CI checks, in order, stopping at the first failure: `fmt --check`,
//!   `tidy`, `lint`, `test`, `examples`, `fuzz replay`, `docs`, `python`, `dist` (the package from the debug
//!   binary, listed, unpacked and run).
//! - `fmt [--check]`: rustfmt over the workspace.
//! - `lint`: clippy on all targets with warnings as errors.
//! - `test [ARGS...]`: the tests (nextest when installed, else `cargo test`), then the
//!   doctests, which nextest does not run.
//! - `docs [--open]`: the docs site, i.e. rustdoc of the facade with the Markdown of
//!   `docs/` included, after a doc check of every crate, warnings as errors (see `docs.rs`);
//!   prints where it is.
//! - `bench [FILTER]`: every benchmark the crates define (`harness = false` bench targets),
//!   in release mode, then one table of their results against the peers they ran beside;
//!   fails when a result misses its target.
//! - `examples`: runs every example program of the crates (each ends by itself).
//! - `fuzz TARGET [--secs N] | --list | replay`: the fuzz targets of `fuzz/` (see
//!   `fuzz.rs`); `replay` runs every target's corpus on stable.
//! - `stress [ARGS...]`: the original's stress scenario, at full size (bounded in time).
//! - `tidy`: project rules that no compiler checks (see `tidy.rs`).
//! - `python [PYTEST ARGS...]`: the Python package built with pip into a virtual
//!   environment and its pytest suite (see `python.rs`).
//! - `dist [--debug] [--out DIR] | --check`: the Debian package (see `dist.rs`).
//!
//! `cargo xtask <task> --help` explains a task instead of running it.

// A command-line tool prints to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod dist;
mod docs;
mod examples;
mod fuzz;
mod python;
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
    // `cargo xtask <task> --help` explains the task instead of running it (an argument
    // after `--` belongs to the task). `stress` has flags of its own: its program prints
    // their help.
    if task != "stress" && wants_help(rest) {
        match task_help(task) {
            Some(help) => println!("cargo xtask {help}"),
            None => print_help(),
        }
        return Ok(());
    }
    match task {
        "ci" => ci(),
        "fmt" => fmt(rest.iter().any(|a| a == "--check")),
        "lint" => lint(),
        "test" => test(rest),
        "docs" => docs::run(rest.iter().any(|a| a == "--open")),
        "bench" => bench::run(&root, rest),
        "stress" => stress(rest),
        "examples" => examples::run(&root),
        "dist" => dist::run(rest),
        "fuzz" => fuzz::run(&root, rest),
        "tidy" => tidy::run(&root),
        "python" => python::run(&root, &target_dir(), rest),
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
         ci              fmt --check, tidy, lint, test, examples, fuzz replay, docs, python, dist\n  \
         fmt [--check]   format the workspace\n  \
         lint            clippy on all targets, warnings as errors\n  \
         test [ARGS]     tests (nextest if installed) and doctests\n  \
         docs [--open]   build the docs site\n  \
         bench [FILTER]  run the benchmarks and print one table\n  \
         examples        run every example program of the crates\n  \
         fuzz TARGET [--secs N] | --list | replay\n                  \
         run a fuzz target (nightly) or replay every corpus\n  \
         stress [ARGS]   the original's stress scenario at full size\n  \
         tidy            project rules no compiler checks\n  \
         python [ARGS]   build the Python package and run its pytest suite\n  \
         dist [--debug]  build the Debian package"
    );
}

/// Whether the arguments of a task ask for help: `-h` or `--help` before any `--`.
fn wants_help(rest: &[String]) -> bool {
    rest.iter().take_while(|a| *a != "--").any(|a| a == "-h" || a == "--help")
}

/// The help of one task: its usage line and what it does.
fn task_help(task: &str) -> Option<&'static str> {
    Some(match task {
        "ci" => {
            "ci\n\neverything CI checks, in order, stopping at the first failure: fmt --check, \
                 tidy, lint, test, examples, fuzz replay, docs, python, dist (the package checked)"
        }
        "fmt" => "fmt [--check]\n\nrustfmt over the workspace; --check only reports",
        "lint" => "lint\n\nclippy on all targets and features, warnings as errors",
        "test" => {
            "test [ARGS...]\n\nthe tests (cargo-nextest when installed, else cargo test; \
                   ARGS go to it), then the doctests"
        }
        "docs" => {
            "docs [--open]\n\nthe docs site in target/doc: rustdoc of the facade `ave` only \
                   (every crate's API inlined under ave::..., the guides of docs/), after a doc \
                   check of every crate of the workspace (kept in target/doc-all, not \
                   published); warnings as errors in both"
        }
        "bench" => {
            "bench [FILTER]\n\nevery bench target in release mode, then one table of \
                    ratios against the peers run beside them; exits non-zero when a row misses \
                    its target"
        }
        "stress" => {
            "stress [ARGS...]\n\nthe original's stress scenario at full size (bounded in \
                     time)"
        }
        "examples" => {
            "examples\n\nruns every example of the crates (crates/*/examples), each of which \
                       ends by itself; fails at the first that does not exit 0"
        }
        "fuzz" => {
            "fuzz TARGET [--secs N] | --list | replay\n\nruns libFuzzer on one target of fuzz/ \
                   for N seconds (default 60; needs nightly and cargo-fuzz, and says so), lists \
                   the targets, or replays every target's checked-in corpus on stable"
        }
        "tidy" => "tidy\n\nproject rules that no compiler checks (see xtask/src/tidy.rs)",
        "python" => {
            "python [PYTEST ARGS...]\n\nthe Python package (crates/ave-python) installed with \
                     pip into a virtual environment under the target directory, then its pytest \
                     suite (AVE_PYTHON_PROFILE=release for an optimized build); `python bench \
                     [ARGS...]` runs the package's throughput benchmark in release instead"
        }
        "dist" => {
            "dist [--debug] [--out DIR] | --check\n\nthe Debian package: ave, man pages, \
                   completions, systemd units, README and licence (release binary unless \
                   --debug); --check builds it from the debug binary, lists, unpacks and runs it"
        }
        _ => return None,
    })
}

/// One step of `ci`: its name and what it runs.
type Step = (&'static str, fn() -> Result);

fn ci() -> Result {
    let steps: [Step; 9] = [
        ("fmt", || fmt(true)),
        ("tidy", || tidy::run(&project_root())),
        ("lint", lint),
        ("test", || test(&[])),
        ("examples", || examples::run(&project_root())),
        ("fuzz", fuzz::replay),
        ("docs", || docs::run(false)),
        ("python", || python::run(&project_root(), &target_dir(), &[])),
        ("dist", dist::check),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn help_is_asked_before_the_double_dash_only() {
        assert!(wants_help(&strings(&["--help"])));
        assert!(wants_help(&strings(&["rtt", "-h"])));
        assert!(!wants_help(&strings(&["rtt"])));
        assert!(!wants_help(&strings(&["--", "--help"])));
    }

    /// The README is read on a clean clone: every file it names is in the repository.
    #[test]
    fn the_readme_names_only_files_of_the_repository() {
        let root = project_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let dirs = ["crates/", "docs/", "tests/", "xtask/", ".ci/", "contrib/", "fuzz/"];
        let mut named = 0;
        for word in readme.split(|c: char| c.is_whitespace() || "`()[],;:\"'".contains(c)) {
            let word = word.trim_end_matches('.');
            if word.ends_with(".md") || dirs.iter().any(|d| word.starts_with(d)) {
                named += 1;
                assert!(
                    root.join(word).exists(),
                    "README.md names {word}, which is not in the repository"
                );
            }
        }
        assert!(named > 0, "the README names no file: the check checks nothing");
    }

    #[test]
    fn every_listed_task_has_its_help() {
        for task in ["ci", "fmt", "lint", "test", "docs", "bench", "stress", "tidy"] {
            let help = task_help(task).unwrap_or_else(|| panic!("{task} has no help"));
            assert!(help.starts_with(task), "{help}");
        }
        assert!(task_help("no-such-task").is_none());
    }
}
