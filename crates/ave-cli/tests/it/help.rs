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

#[test]
fn every_subcommand_lists_its_exit_codes() {
    for command in [
        &["call"][..],
        &["serve"],
        &["demo"],
        &["config", "init"],
        &["config", "show"],
        &["config", "etc"],
        &["config", "bootstrap"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = ave(&args);
        assert!(out.status.success(), "{command:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Exit status:\n  0  "), "{command:?} --help:\n{text}");
    }
    let text = String::from_utf8(ave(&["call", "--help"]).stdout).unwrap();
    for code in ["  1  ", "  2  ", "  3  "] {
        assert!(text.contains(code), "ave call --help lacks exit {code}:\n{text}");
    }
}
