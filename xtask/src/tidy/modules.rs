//! The module-layer rule: inside a crate with a layer table, a top-level module only uses
//! modules of a strictly lower layer, so imports point one way and a cycle can only live
//! inside one module's folder.
//!
//! Every `crate::` path of a file counts (imports and inline paths; comments do not). A
//! file belongs to the top-level module whose file (`src/x.rs`) or folder (`src/x/`) holds
//! it; `src/lib.rs` is above every module. A path that names no module of the table (an
//! item re-exported at the crate root) is refused too: inside the crate, items are reached
//! through the module that owns them.

use std::{fs, path::Path};

/// The layer of every top-level module of `ave-network`, from the wire format up
/// (ARCHITECTURE.md's code map lists them in this order). `client` and `control` share no
/// layer with anything they use: the client never imports the server, nor the reverse.
const NETWORK: &[(&str, u8)] = &[
    ("error", 0),
    ("sync", 0),
    ("sys", 0),
    ("wire", 1),
    ("connection", 2),
    ("client", 3),
    ("process", 3),
    ("fdtx", 3),
    ("control", 4),
    ("handover", 5),
    ("diagnostic", 5),
    ("systemd", 5),
];

/// The crates whose modules are layered, with their tables.
const CRATES: &[(&str, &[(&str, u8)])] = &[("crates/ave-network", NETWORK)];

/// Items the crate root defines or re-exports that a module may still name as
/// `crate::Item` (the crate's error type, used everywhere).
const ROOT_ITEMS: &[(&str, &str)] = &[("Error", "error")];

/// Checks every crate with a layer table.
pub(crate) fn check(root: &Path, problems: &mut Vec<String>) {
    for (krate, table) in CRATES {
        let src = root.join(krate).join("src");
        let mut files = Vec::new();
        super::walk(&src, &mut files);
        files.sort();
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
            let Ok(relative) = path.strip_prefix(&src) else { continue };
            let Some(module) = top_module(relative) else { continue };
            let Ok(text) = fs::read_to_string(path) else { continue };
            let name = super::rel(root, path);
            for problem in check_source(table, &module, &text) {
                problems.push(format!("{name}:{problem}"));
            }
        }
    }
}

/// The top-level module a file under `src/` belongs to; `None` for `lib.rs`.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" || first == "main.rs" {
        return None;
    }
    Some(first.strip_suffix(".rs").unwrap_or(first).to_owned())
}

/// The problems of one file of `module`, each `<line>: <message>`.
fn check_source(table: &[(&str, u8)], module: &str, text: &str) -> Vec<String> {
    let layer_of = |m: &str| table.iter().find(|(n, _)| *n == m).map(|(_, l)| *l);
    let Some(own) = layer_of(module) else {
        return vec![format!("1: module `{module}` has no layer in xtask/src/tidy/modules.rs")];
    };
    let mut problems = Vec::new();
    for (line, target) in crate_paths(text) {
        if target == module {
            continue;
        }
        let target_module = ROOT_ITEMS
            .iter()
            .find(|(item, _)| *item == target)
            .map_or(target.as_str(), |(_, m)| *m);
        match layer_of(target_module) {
            Some(layer) if layer < own => {}
            Some(layer) => problems.push(format!(
                "{line}: `{module}` (layer {own}) uses `crate::{target}` (layer {layer}): a \
                 module only uses modules of a lower layer (module-layer rule, \
                 xtask/src/tidy/modules.rs)"
            )),
            None => problems.push(format!(
                "{line}: `{module}` uses `crate::{target}`, which is no module of the layer \
                 table: reach items through the module that owns them (module-layer rule, \
                 xtask/src/tidy/modules.rs)"
            )),
        }
    }
    problems
}

/// The first segment after every `crate::` outside comments, with its line (1-based); a
/// `crate::{a::x, B}` group gives each of its top-level items.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    // Comments out, line structure kept.
    let code: String =
        text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::") {
        let start = at + found;
        at = start + "crate::".len();
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if preceded {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        if bytes.get(at) == Some(&b'{') {
            let mut depth = 0usize;
            let mut item_start = true;
            let mut i = at;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => {
                        depth += 1;
                        if depth == 1 {
                            item_start = true;
                        }
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => item_start = true,
                    c if item_start && depth == 1 && (c.is_ascii_alphabetic() || c == b'_') => {
                        let ident = identifier(&code[i..]);
                        let item_line = code[..i].matches('\n').count() + 1;
                        out.push((item_line, ident.to_owned()));
                        item_start = false;
                        i += ident.len();
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
            at = i;
        } else {
            let ident = identifier(&code[at..]);
            if !ident.is_empty() {
                out.push((line, ident.to_owned()));
            }
        }
    }
    out
}

fn identifier(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_in_groups_and_inline() {
        let text = "use crate::{\n    Error,\n    wire::{frame, json},\n};\n\
                    // crate::control in a comment\nlet x = crate::process::Pid::this();\n";
        let paths = crate_paths(text);
        assert_eq!(
            paths,
            [(2, "Error".to_owned()), (3, "wire".to_owned()), (6, "process".to_owned())]
        );
    }

    #[test]
    fn an_upward_import_names_the_rule() {
        let problems = check_source(NETWORK, "process", "use crate::control::ControlHandle;\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("1: `process` (layer 3) uses `crate::control` (layer 4)"));
        assert!(problems[0].contains("module-layer rule"));
    }

    #[test]
    fn siblings_of_one_layer_are_refused() {
        // The client never imports the server's side, nor processes.
        let problems = check_source(NETWORK, "client", "use crate::process::Pid;\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn root_items_and_downward_paths_pass() {
        let text = "use crate::{Error, connection::Address, wire::json};\n";
        assert!(check_source(NETWORK, "control", text).is_empty());
        assert!(check_source(NETWORK, "control", "use crate::control::session;\n").is_empty());
        let root = check_source(NETWORK, "control", "use crate::Control;\n");
        assert!(root[0].contains("no module of the layer table"), "{root:?}");
    }

    #[test]
    fn files_belong_to_their_top_module() {
        assert_eq!(top_module(Path::new("control/session.rs")).as_deref(), Some("control"));
        assert_eq!(top_module(Path::new("wire.rs")).as_deref(), Some("wire"));
        assert_eq!(top_module(Path::new("lib.rs")), None);
    }
}
