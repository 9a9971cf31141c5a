//! Global flags: `--help`, `--version`, and usage errors.

use crate::ave;

#[test]
fn help_lists_every_subcommand() {
    let out = ave(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["run", "serve", "call", "config", "tripe", "demo"] {
        assert!(text.contains(sub), "--help lacks {sub}:\n{text}");
    }
}

#[test]
fn version_is_printed() {
    let out = ave(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("ave "));
}

#[test]
fn usage_errors_exit_2() {
    let out = ave(&["no-such-subcommand"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
}
