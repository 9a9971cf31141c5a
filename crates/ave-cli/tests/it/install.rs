//! What the package installs: `--version` with the git revision, completions, man pages.

use crate::{ave, serve::TempDir};

#[test]
fn version_names_the_git_revision() {
    let out = ave(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned());
    match revision {
        // Built from this checkout: its HEAD (the build script reruns when HEAD moves).
        Some(rev) if std::env::var_os("AVE_GIT_REVISION").is_none() => {
            assert_eq!(text, format!("ave {} (git {rev})\n", env!("CARGO_PKG_VERSION")));
        }
        _ => assert!(text.starts_with("ave 0.0.0 (git "), "{text:?}"),
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in
        [("bash", "complete -F _ave"), ("zsh", "#compdef ave"), ("fish", "complete -c ave")]
    {
        let out = ave(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("serve") && script.contains("replace"), "{shell}");
    }
    assert_eq!(ave(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn bash_accepts_the_completion_script() {
    let out = ave(&["completions", "bash"]);
    let dir = TempDir::new("completions");
    let path = dir.path().join("ave.bash");
    std::fs::write(&path, out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && complete -p ave")
        .arg("bash")
        .arg(&path)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8(check.stdout).unwrap().contains("_ave"));
}

#[test]
fn man_pages_for_ave_and_each_subcommand() {
    let dir = TempDir::new("man");
    let out = ave(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    for page in ["ave", "ave-run", "ave-serve", "ave-call", "ave-config", "ave-config-init"] {
        let text = std::fs::read_to_string(dir.path().join(format!("{page}.1"))).expect(page);
        assert!(text.contains(&format!(".TH {page} 1")), "{page}: {text}");
    }
    let serve = std::fs::read_to_string(dir.path().join("ave-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-replace"));
    // The hidden packaging command has no page.
    assert!(!dir.path().join("ave-man.1").exists());
}
