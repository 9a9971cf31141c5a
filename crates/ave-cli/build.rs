//! Build script of `ave`: records the git revision for `ave --version`.
//!
//! From a git checkout the version reads `0.0.0 (git 1a2b3c4d5e6f)`; `AVE_GIT_REVISION`
//! in the build environment overrides it (for builds from a source tarball that knows its
//! revision); without either it reads `0.0.0 (git revision unknown)`, and the build goes on.

use std::{path::PathBuf, process::Command};

fn main() {
    println!("cargo::rerun-if-env-changed=AVE_GIT_REVISION");
    let revision = std::env::var("AVE_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .map_or_else(|| "git revision unknown".to_owned(), |r| format!("git {}", r.trim()));
    println!("cargo::rustc-env=AVE_VERSION_REVISION={revision}");
}

/// The abbreviated commit of HEAD, or `None` when there is no git or no repository.
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself (another branch), the branch's ref, packed refs.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo::rerun-if-changed={}", absolute(&p).display());
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &reference]) {
            println!("cargo::rerun-if-changed={}", absolute(&p).display());
        }
    }
    Some(revision)
}

/// Runs git in the package's folder; its trimmed stdout on success.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let output = Command::new("git").args(args).current_dir(&dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// git prints `--git-path` relative to the folder it ran in.
fn absolute(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        return path;
    }
    std::env::var_os("CARGO_MANIFEST_DIR").map_or(path.clone(), |d| PathBuf::from(d).join(path))
}
