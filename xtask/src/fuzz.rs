//! `cargo xtask fuzz`: the fuzz targets of `fuzz/`.
//!
//! - `fuzz --list`: the targets.
//! - `fuzz TARGET [--secs N]`: runs libFuzzer on one target for N seconds (default 60),
//!   starting from and adding to its corpus `fuzz/corpus/TARGET`; crashes go to
//!   `fuzz/artifacts/TARGET`. Needs a nightly toolchain and cargo-fuzz, and says so
//!   plainly when either is missing.
//! - `fuzz replay`: replays every target's checked-in corpus on stable, as an ordinary
//!   test; `cargo xtask ci` runs it.

use std::{fs, path::Path, process::Command};

use crate::{Result, cargo};

/// What to do when the real fuzzer cannot run.
const HOW_TO_GET_IT: &str = "install a nightly toolchain (`rustup toolchain install nightly`) and \
     cargo-fuzz (`cargo install cargo-fuzz`); meanwhile `cargo xtask fuzz replay` (part of \
     `cargo xtask ci`) replays the checked-in corpus on stable";

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let targets = targets(root)?;
    let mut target = None;
    let mut secs: u64 = 60;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--list" => {
                for name in &targets {
                    println!("{name}");
                }
                return Ok(());
            }
            "replay" => return replay(),
            "--secs" => {
                let value = rest.next().ok_or("--secs needs a number of seconds")?;
                secs = value.parse().map_err(|_| format!("--secs {value}: not a number"))?;
            }
            name if target.is_none() && !name.starts_with('-') => target = Some(name.to_owned()),
            other => return Err(format!("fuzz: unexpected argument `{other}`")),
        }
    }
    let Some(target) = target else {
        return Err(format!(
            "usage: cargo xtask fuzz TARGET [--secs N] | --list | replay (targets: {})",
            targets.join(", ")
        ));
    };
    if !targets.contains(&target) {
        return Err(format!("no fuzz target `{target}` (targets: {})", targets.join(", ")));
    }
    if !works(&["+nightly", "--version"]) {
        return Err(format!("cannot run the fuzzer: no nightly toolchain; {HOW_TO_GET_IT}"));
    }
    if !works(&["+nightly", "fuzz", "--version"]) {
        return Err(format!("cannot run the fuzzer: cargo-fuzz is not installed; {HOW_TO_GET_IT}"));
    }
    let corpus = format!("fuzz/corpus/{target}");
    let max_time = format!("-max_total_time={secs}");
    rustup_cargo(&[
        "+nightly",
        "fuzz",
        "run",
        "--fuzz-dir",
        "fuzz",
        "--features",
        "fuzzer",
        &target,
        &corpus,
        "--",
        &max_time,
        "-print_final_stats=1",
    ])?;
    println!(
        "fuzz: `{target}` ran {secs} s (executions: `stat::number_of_executed_units` above); \
         new inputs are in {corpus}, crashes would be in fuzz/artifacts/{target}"
    );
    Ok(())
}

/// Replays every target's corpus on stable (the `fuzz/` package's tests).
pub(crate) fn replay() -> Result {
    cargo(&["test", "--manifest-path", "fuzz/Cargo.toml", "--quiet"], &[])
}

/// The targets: the files of `fuzz/fuzz_targets`.
fn targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("fuzz").join("fuzz_targets");
    let entries = fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "rs").then_some(name)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Whether `cargo ARGS` runs and succeeds.
fn works(args: &[&str]) -> bool {
    Command::new("cargo").args(args).output().is_ok_and(|out| out.status.success())
}

/// Runs the `cargo` on `PATH` (rustup's, which understands `+nightly`), echoing the
/// command, and fails on a non-zero exit.
fn rustup_cargo(args: &[&str]) -> Result {
    println!("$ cargo {}", args.join(" "));
    let status =
        Command::new("cargo").args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}
