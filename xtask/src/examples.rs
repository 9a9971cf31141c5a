//! `cargo xtask examples`: runs every example program of the workspace's crates
//! (`crates/<crate>/examples/<name>.rs` or `crates/<crate>/examples/<name>/main.rs`), one
//! after the other, and fails at the first that does not exit 0. Examples take no
//! arguments and end by themselves (each in a few seconds), so CI runs them all, except
//! the programs listed in [`NOT_RUN`], which need arguments and are run by their crate's
//! tests instead.

use std::{fs, path::Path};

use crate::{Result, cargo};

/// Examples that are programs needing arguments (crate, example, why): their crates' tests
/// run them.
const NOT_RUN: &[(&str, &str, &str)] = &[(
    "ave-tripe",
    "echo_service",
    "a TrIPE service program: needs --socket; ave-tripe's tests run it against the simulator",
)];

/// Runs the examples, in crate then name order.
pub(crate) fn run(root: &Path) -> Result {
    let examples = find(root)?;
    if examples.is_empty() {
        println!("no examples");
    }
    for (krate, name) in examples {
        if let Some((_, _, why)) = NOT_RUN.iter().find(|(k, n, _)| *k == krate && *n == name) {
            println!("(not running {krate} example {name}: {why})");
            continue;
        }
        cargo(&["run", "--quiet", "-p", &krate, "--example", &name], &[])?;
    }
    Ok(())
}

/// `(crate, example)` pairs, sorted.
fn find(root: &Path) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let crates = root.join("crates");
    let entries = fs::read_dir(&crates).map_err(|e| format!("{}: {e}", crates.display()))?;
    for entry in entries.flatten() {
        let krate = entry.file_name().to_string_lossy().into_owned();
        let Ok(examples) = fs::read_dir(entry.path().join("examples")) else { continue };
        for example in examples.flatten() {
            let path = example.path();
            let name = if path.extension().is_some_and(|e| e == "rs") {
                path.file_stem().map(|s| s.to_string_lossy().into_owned())
            } else if path.join("main.rs").is_file() {
                Some(example.file_name().to_string_lossy().into_owned())
            } else {
                None
            };
            if let Some(name) = name {
                found.push((krate.clone(), name));
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pty_example_is_found() {
        let found = find(&crate::project_root()).unwrap();
        assert!(found.contains(&("ave-cmd".to_owned(), "pty_run".to_owned())), "{found:?}");
    }
}
