//! `cargo xtask dist`: the Debian package of the `ave` command line, built with
//! `dpkg-deb` from a staging tree:
//!
//! - `/usr/bin/ave`;
//! - man pages for `ave` and each subcommand (`ave man`, which renders clap's definition),
//!   gzipped, in `/usr/share/man/man1`;
//! - completions for bash, zsh and fish (`ave completions SHELL`);
//! - the systemd units of `contrib/systemd` in `/lib/systemd/system`;
//! - the README and the licence in `/usr/share/doc/ave`.
//!
//! `cargo xtask dist` builds the release binary; `--debug` packages the debug binary
//! instead (what CI checks: the same package, without minutes of optimisation);
//! (compressed with gzip -1 rather than xz, which takes minutes on a 30 MB debug binary);
//! `--out DIR` chooses where the `.deb` goes (default: `<target>/dist`). The version is the
//! workspace's, with the git revision when there is one (`0.0.0+git1a2b3c4d5e6f`).
//!
//! `cargo xtask dist --check` (a step of `cargo xtask ci`) builds the package from the debug binary, lists it
//! with `dpkg-deb -c`, unpacks it with `dpkg-deb -x` into a scratch root and runs the
//! unpacked `ave --version` and `ave serve --help`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{Result, cargo, project_root, target_dir};

/// The files every package must hold (as `dpkg-deb -c` lists them, without the leading `.`).
const REQUIRED: &[&str] = &[
    "/usr/bin/ave",
    "/usr/share/man/man1/ave.1.gz",
    "/usr/share/man/man1/ave-serve.1.gz",
    "/usr/share/man/man1/ave-run.1.gz",
    "/usr/share/man/man1/ave-call.1.gz",
    "/usr/share/bash-completion/completions/ave",
    "/usr/share/zsh/vendor-completions/_ave",
    "/usr/share/fish/vendor_completions.d/ave.fish",
    "/lib/systemd/system/ave-serve@.service",
    "/lib/systemd/system/ave-serve@.socket",
    "/usr/share/doc/ave/README.md",
    "/usr/share/doc/ave/copyright",
];

/// `cargo xtask dist [--debug] [--out DIR]`.
pub(crate) fn run(args: &[String]) -> Result {
    let mut release = true;
    let mut out = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => return check(),
            "--debug" => release = false,
            "--release" => release = true,
            "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a folder")?)),
            other => return Err(format!("dist: unknown argument `{other}`")),
        }
    }
    let out = out.unwrap_or_else(|| target_dir().join("dist"));
    let deb = build(release, &out)?;
    println!("\npackage: {}", deb.display());
    Ok(())
}

/// The CI step: the package from the debug binary, listed, unpacked and run.
pub(crate) fn check() -> Result {
    let out = target_dir().join("dist-check");
    let deb = build(false, &out)?;
    let listing = output(Command::new("dpkg-deb").arg("-c").arg(&deb))?;
    println!("$ dpkg-deb -c {}\n{listing}", deb.display());
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.'))
        .collect();
    for required in REQUIRED {
        if !paths.contains(required) {
            return Err(format!("the package lacks {required}"));
        }
    }
    let root = out.join("root");
    let _ = fs::remove_dir_all(&root);
    run_command(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let ave = root.join("usr/bin/ave");
    let version = output(Command::new(&ave).arg("--version"))?;
    print!("$ {} --version\n{version}", ave.display());
    if !version.starts_with("ave ") {
        return Err(format!("unexpected `ave --version`: {version:?}"));
    }
    let help = output(Command::new(&ave).args(["serve", "--help"]))?;
    println!("$ {} serve --help\n{help}", ave.display());
    if !help.contains("--replace") {
        return Err("`ave serve --help` of the unpacked binary lacks --replace".to_owned());
    }
    fs::remove_dir_all(&root).map_err(|e| format!("remove {}: {e}", root.display()))?;
    Ok(())
}

/// Builds the binary and the package in `out`; returns the package's path.
fn build(release: bool, out: &Path) -> Result<PathBuf> {
    let root = project_root();
    let mut args = vec!["build", "-p", "ave-cli", "--bin", "ave"];
    if release {
        args.push("--release");
    }
    cargo(&args, &[])?;
    let binary = target_dir().join(if release { "release" } else { "debug" }).join("ave");
    let version = package_version(&root);
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?.trim().to_owned();
    let name = format!("ave_{version}_{arch}");
    let stage = out.join(&name);
    let _ = fs::remove_dir_all(&stage);
    let dir = |rel: &str| -> Result<PathBuf> {
        let d = stage.join(rel);
        fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        Ok(d)
    };
    let copy = |from: &Path, to: &Path, mode: u32| -> Result {
        fs::copy(from, to)
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
        set_mode(to, mode)
    };

    copy(&binary, &dir("usr/bin")?.join("ave"), 0o755)?;
    // Man pages, from the binary just built.
    let man = dir("usr/share/man/man1")?;
    run_command(Command::new(&binary).arg("man").arg("--dir").arg(&man).stdout(Stdio::null()))?;
    for page in fs::read_dir(&man).map_err(|e| e.to_string())?.flatten() {
        run_command(Command::new("gzip").args(["-9", "-n", "-f"]).arg(page.path()))?;
    }
    // Completions.
    for (shell, folder, file) in [
        ("bash", "usr/share/bash-completion/completions", "ave"),
        ("zsh", "usr/share/zsh/vendor-completions", "_ave"),
        ("fish", "usr/share/fish/vendor_completions.d", "ave.fish"),
    ] {
        let script = output(Command::new(&binary).args(["completions", shell]))?;
        let path = dir(folder)?.join(file);
        fs::write(&path, script).map_err(|e| format!("write {}: {e}", path.display()))?;
        set_mode(&path, 0o644)?;
    }
    // Units, README, licence.
    let units = dir("lib/systemd/system")?;
    for unit in ["ave-serve@.service", "ave-serve@.socket"] {
        copy(&root.join("contrib/systemd").join(unit), &units.join(unit), 0o644)?;
    }
    let doc = dir("usr/share/doc/ave")?;
    copy(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    let licence = fs::read_to_string(root.join("LICENSE")).map_err(|e| format!("LICENSE: {e}"))?;
    let copyright = format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: ave\n\nFiles: *\nLicense: Apache-2.0\n\n{licence}"
    );
    fs::write(doc.join("copyright"), copyright).map_err(|e| e.to_string())?;
    set_mode(&doc.join("copyright"), 0o644)?;

    let size_kib = tree_size(&stage) / 1024 + 1;
    let control = format!(
        "Package: ave\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: The ave developers <ave@example.invalid>\n\
         Installed-Size: {size_kib}\n\
         Depends: libc6\n\
         Section: admin\n\
         Priority: optional\n\
         Description: AVE lab automation suite: the ave command line\n \
         Run commands through a pty with a timeout, call and serve AVE services, restart\n \
         them without dropping their clients, bootstrap configuration and drive a TrIPE\n \
         server. Includes systemd units for ave serve (ave-serve@.service, .socket).\n"
    );
    let debian = dir("DEBIAN")?;
    fs::write(debian.join("control"), control).map_err(|e| e.to_string())?;
    let deb = out.join(format!("{name}.deb"));
    let mut dpkg = Command::new("dpkg-deb");
    if !release {
        // xz of a 30 MB debug binary takes minutes on a busy 2-core machine; gzip -1 a second.
        dpkg.args(["-Zgzip", "-z1"]);
    }
    run_command(dpkg.args(["--root-owner-group", "--build"]).arg(&stage).arg(&deb))?;
    fs::remove_dir_all(&stage).map_err(|e| format!("remove {}: {e}", stage.display()))?;
    Ok(deb)
}

/// `0.0.0+git<revision>` from a git checkout, else the workspace version alone.
fn package_version(root: &Path) -> String {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let base = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or("0.0.0")
        .to_owned();
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|r| !r.is_empty());
    match revision {
        Some(rev) => format!("{base}+git{rev}"),
        None => base,
    }
}

fn set_mode(path: &Path, mode: u32) -> Result {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Runs a command, failing on a non-zero exit.
fn run_command(command: &mut Command) -> Result {
    let status = command.status().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} failed ({status})")) }
}

/// Runs a command and returns its stdout, failing on a non-zero exit.
fn output(command: &mut Command) -> Result<String> {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if out.status.success() {
        String::from_utf8(out.stdout).map_err(|e| format!("{command:?}: {e}"))
    } else {
        Err(format!("{command:?} failed ({})", out.status))
    }
}
