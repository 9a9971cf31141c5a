//! `cargo xtask tidy`: project rules that no compiler checks.
//!
//! - every Rust file of the workspace starts with a `//!` doc comment and has at most
//!   [`MAX_LINES`] lines (a longer one is split into a module folder);
//! - every member manifest inherits the workspace's version, edition and publish setting
//!   and its lints;
//! - the layer rule: a crate depends only on crates of a strictly lower layer, and the CLI
//!   only on the facade; `ave-test-support` is only ever a dev-dependency;
//! - the module-layer rule (`tidy/modules.rs`): inside `ave-network`, a top-level module
//!   only uses modules of a strictly lower layer;
//! - unsafe code appears only in a crate's private `sys` module;
//! - no test is ignored and none expects a panic;
//! - no trailing whitespace in Rust, Markdown or TOML files;
//! - the recorded vectors in `tests/data/vectors` are identical to
//!   `../shared/spec/vectors` when that folder exists;
//! - ARCHITECTURE.md has a heading for every crate, and every `docs/*.md` page is
//!   published by the facade.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::Result;

mod modules;

/// The most lines a Rust file may have, tests included: beyond it, a file holds more than
/// a reader follows in one go, and it is split along a seam into a module folder.
const MAX_LINES: usize = 800;

/// The layer of every internal crate (design.md's crate map).
const LAYERS: &[(&str, u8)] = &[
    ("ave-exceptions", 0),
    ("ave-profile", 0),
    ("ave-test-support", 0),
    ("ave-config", 1),
    ("ave-persona", 1),
    ("ave-cmd", 1),
    ("ave-network", 2),
    ("ave-tripe", 2),
    ("ave", 3),
    ("ave-cli", 4),
    ("ave-python", 4),
];

pub(crate) fn run(root: &Path) -> Result {
    let mut problems = Vec::new();
    let files = workspace_files(root);
    check_rust_files(root, &files, &mut problems);
    check_text_files(root, &files, &mut problems);
    check_manifests(root, &mut problems);
    modules::check(root, &mut problems);
    check_vectors(root, &mut problems);
    check_docs(root, &mut problems);
    if problems.is_empty() {
        println!("tidy: {} files checked, all rules hold", files.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        Err(format!("{} tidy problem(s)", problems.len()))
    }
}

/// Every file under the folders the project owns (not `target/`, not hidden folders).
fn workspace_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["crates", "tests", "xtask", "docs"] {
        walk(&root.join(top), &mut out);
    }
    for file in ["README.md", "ARCHITECTURE.md", "CONTRIBUTING.md", "Cargo.toml"] {
        let path = root.join(file);
        if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// Whether a path is inside a `sys` module (`sys.rs` or a `sys/` folder).
fn is_sys_module(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "sys.rs")
        || path.components().any(|c| c.as_os_str() == "sys")
}

fn check_rust_files(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    // Built with concat! so this file does not trip its own checks.
    let ignore_attr = concat!("#[", "ignore");
    let should_panic_attr = concat!("#[", "should_panic");
    let unsafe_markers =
        [concat!("unsafe", " {"), concat!("unsafe", " fn"), concat!("unsafe", " impl")];
    let allow_unsafe = concat!("allow(", "unsafe_code)");
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let name = rel(root, path);
        let Ok(text) = fs::read_to_string(path) else {
            problems.push(format!("{name}: not UTF-8"));
            continue;
        };
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            problems.push(format!("{name}: does not start with a `//!` doc comment"));
        }
        if let Some(problem) = too_long(&name, &text) {
            problems.push(problem);
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(ignore_attr) || code.contains(should_panic_attr) {
                problems.push(format!("{name}:{}: ignored or should_panic test", i + 1));
            }
            if !is_sys_module(path) {
                if unsafe_markers.iter().any(|m| code.contains(m)) {
                    problems.push(format!("{name}:{}: unsafe code outside a `sys` module", i + 1));
                }
                if code.contains(allow_unsafe) {
                    problems.push(format!(
                        "{name}:{}: unsafe code allowed outside a `sys` module",
                        i + 1
                    ));
                }
            }
        }
    }
}

/// The problem with a file over [`MAX_LINES`] lines, if it is one.
fn too_long(name: &str, text: &str) -> Option<String> {
    let lines = text.lines().count();
    (lines > MAX_LINES).then(|| {
        format!(
            "{name}: {lines} lines, above the limit of {MAX_LINES}: split it into a module \
             folder along a seam (see ARCHITECTURE.md)"
        )
    })
}

fn check_text_files(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    for path in files {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "rs" | "md" | "toml" | "py")
            || path.components().any(|c| c.as_os_str() == "vectors")
        {
            continue;
        }
        let Ok(text) = fs::read_to_string(path) else { continue };
        for (i, line) in text.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                problems.push(format!("{}:{}: trailing whitespace", rel(root, path), i + 1));
            }
        }
    }
}

/// The member manifests: every `crates/*/Cargo.toml`, `tests/` and `xtask/`.
fn member_manifests(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .map(|rd| {
            rd.flatten().map(|e| e.path().join("Cargo.toml")).filter(|p| p.is_file()).collect()
        })
        .unwrap_or_default();
    out.push(root.join("tests/Cargo.toml"));
    out.push(root.join("xtask/Cargo.toml"));
    out.sort();
    out
}

/// The internal crates named in the `[dependencies]` table of a manifest (not dev or
/// build dependencies).
fn internal_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let key = line.split(['=', '.']).next().unwrap_or("").trim();
        if LAYERS.iter().any(|(name, _)| *name == key) {
            out.push(key.to_owned());
        }
    }
    out
}

fn package_name(manifest: &str) -> Option<String> {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = "))
        .map(|v| v.trim().trim_matches('"').to_owned())
}

fn check_manifests(root: &Path, problems: &mut Vec<String>) {
    for path in member_manifests(root) {
        let name = rel(root, &path);
        let Ok(text) = fs::read_to_string(&path) else {
            problems.push(format!("{name}: cannot read"));
            continue;
        };
        for needed in
            ["version.workspace = true", "edition.workspace = true", "publish.workspace = true"]
        {
            if !text.contains(needed) {
                problems.push(format!("{name}: missing `{needed}`"));
            }
        }
        if !text.contains("[lints]\nworkspace = true") {
            problems.push(format!("{name}: missing `[lints] workspace = true`"));
        }
        let Some(package) = package_name(&text) else {
            problems.push(format!("{name}: no package name"));
            continue;
        };
        if path.parent().and_then(Path::parent).is_some_and(|p| p.ends_with("crates")) {
            let folder =
                path.parent().and_then(Path::file_name).map(|f| f.to_string_lossy().into_owned());
            if folder.as_deref() != Some(package.as_str()) {
                problems.push(format!("{name}: folder name differs from package name `{package}`"));
            }
        }
        let Some(&(_, layer)) = LAYERS.iter().find(|(n, _)| *n == package) else {
            if path.starts_with(root.join("crates")) {
                problems.push(format!("{name}: crate `{package}` has no layer in tidy.rs"));
            }
            continue;
        };
        for dep in internal_dependencies(&text) {
            let dep_layer = LAYERS.iter().find(|(n, _)| *n == dep).map_or(u8::MAX, |(_, l)| *l);
            if dep_layer >= layer {
                problems.push(format!(
                    "{name}: `{package}` (layer {layer}) depends on `{dep}` (layer {dep_layer})"
                ));
            }
            if dep == "ave-test-support" {
                problems.push(format!(
                    "{name}: `ave-test-support` is dev-only: use it under [dev-dependencies]"
                ));
            }
            if package == "ave-cli" && dep != "ave" {
                problems.push(format!("{name}: the CLI must use the facade, not `{dep}`"));
            }
        }
    }
}

fn check_vectors(root: &Path, problems: &mut Vec<String>) {
    let ours = root.join("tests/data/vectors");
    let shared = root.join("../shared/spec/vectors");
    // A clean clone has no shared copy next to it: nothing to compare, nothing to say.
    let Ok(entries) = fs::read_dir(&shared) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let original = fs::read(entry.path()).unwrap_or_default();
        match fs::read(ours.join(&file)) {
            Ok(copy) if copy == original => {}
            Ok(_) => problems.push(format!(
                "tests/data/vectors/{}: differs from the shared copy",
                file.to_string_lossy()
            )),
            Err(_) => {
                problems.push(format!("tests/data/vectors/{}: missing", file.to_string_lossy()))
            }
        }
    }
}

fn check_docs(root: &Path, problems: &mut Vec<String>) {
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    for (krate, _) in LAYERS {
        if !architecture.lines().any(|l| l.starts_with('#') && l.contains(&format!("`{krate}`"))) {
            problems.push(format!("ARCHITECTURE.md: no heading for `{krate}`"));
        }
    }
    let facade = fs::read_to_string(root.join("crates/ave/src/lib.rs")).unwrap_or_default();
    let Ok(entries) = fs::read_dir(root.join("docs")) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".md") && !facade.contains(&format!("docs/{file}\")")) {
            problems.push(format!("docs/{file}: not published by the facade's guide module"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_parsing() {
        let manifest = "[package]\nname = \"ave-cmd\"\n[dependencies]\nave-exceptions.workspace = true\n\
                        serde.workspace = true\nave-profile = { workspace = true }\n\
                        [dev-dependencies]\nave-network.workspace = true\n";
        assert_eq!(internal_dependencies(manifest), ["ave-exceptions", "ave-profile"]);
        assert_eq!(package_name(manifest).as_deref(), Some("ave-cmd"));
    }

    /// ave-test-support under [dependencies] breaks a rule; as a dev-dependency it does not.
    #[test]
    fn the_test_support_is_dev_only() {
        let root = std::env::temp_dir().join(format!("xtask-tidy-devonly-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("crates/ave-cmd")).unwrap();
        let manifest = |table: &str| {
            format!(
                "[package]\nname = \"ave-cmd\"\nversion.workspace = true\n\
                 edition.workspace = true\npublish.workspace = true\n\
                 [{table}]\nave-test-support.workspace = true\n[lints]\nworkspace = true\n"
            )
        };
        let problems = |table: &str| {
            fs::write(root.join("crates/ave-cmd/Cargo.toml"), manifest(table)).unwrap();
            let mut problems = Vec::new();
            check_manifests(&root, &mut problems);
            problems.retain(|p| p.starts_with("crates/"));
            problems
        };
        let normal = problems("dependencies");
        let dev = problems("dev-dependencies");
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            normal,
            ["crates/ave-cmd/Cargo.toml: `ave-test-support` is dev-only: use it under \
              [dev-dependencies]"]
        );
        assert_eq!(dev, Vec::<String>::new());
    }

    #[test]
    fn sys_modules() {
        assert!(is_sys_module(Path::new("crates/ave-cmd/src/sys.rs")));
        assert!(is_sys_module(Path::new("crates/ave-network/src/sys/fdtx.rs")));
        assert!(!is_sys_module(Path::new("crates/ave-cmd/src/run.rs")));
    }

    #[test]
    fn long_files() {
        let ok = "//! doc\n".repeat(MAX_LINES);
        assert_eq!(too_long("a.rs", &ok), None);
        let long = ok + "fn f() {}\n";
        let problem = too_long("a.rs", &long).unwrap();
        assert!(problem.starts_with("a.rs: 801 lines, above the limit of 800"), "{problem}");
    }

    /// The tidy rules hold for the workspace itself, so plain `cargo test` enforces them.
    #[test]
    fn workspace_is_tidy() {
        let root = crate::project_root();
        run(&root).unwrap();
    }
}
