//! `cargo xtask docs`: the docs site, and the doc check of every crate.
//!
//! Two rustdoc passes, both with warnings as errors:
//!
//! 1. every crate of the workspace (`cargo doc --workspace --no-deps`), so a broken
//!    intra-doc link or a bad code block fails in any crate, fixtures, xtask and the test
//!    support included. Its output is not published: it is kept in `target/doc-all` between
//!    runs (so the pass stays incremental) and is the place to read a crate's private docs.
//! 2. the published site (`cargo doc -p ave --no-deps`) in `target/doc`: the facade, whose
//!    `#[doc(inline)]` re-exports put every member crate's API under `ave::...`, and its
//!    `guide` module with the Markdown of `docs/`. The site is then checked: the crate list
//!    of the sidebar and search (`crates.js`) names the facade only, and no page links to a
//!    folder the site does not have (another crate's pages, which `--no-deps` does not build).
//!    A root `index.html` sends a visitor of the site's root to the facade.

use std::{
    fs,
    path::{Component, Path, PathBuf},
};

use crate::{Result, cargo, target_dir};

/// The only crate the published site documents.
const SITE_CRATE: &str = "ave";

pub(crate) fn run(open: bool) -> Result {
    let target = target_dir();
    let site = target.join("doc");
    let all = target.join("doc-all");
    let flags = [("RUSTDOCFLAGS", "-D warnings")];

    // Pass 1, every crate, in its own folder: bring back the last run's output first.
    if all.is_dir() {
        remove_dir(&site)?;
        rename(&all, &site)?;
    }
    cargo(&["doc", "--workspace", "--no-deps", "--all-features"], &flags)?;
    remove_dir(&all)?;
    rename(&site, &all)?;

    // Pass 2, the site.
    let mut args = vec!["doc", "-p", SITE_CRATE, "--no-deps", "--all-features"];
    if open {
        args.push("--open");
    }
    cargo(&args, &flags)?;
    fs::write(site.join("index.html"), REDIRECT)
        .map_err(|e| format!("cannot write {}: {e}", site.join("index.html").display()))?;
    check_site(&site)?;
    println!("\ndocs site: {} (the facade and its guides)", site.join("ave/index.html").display());
    println!("every crate's docs (not published): {}", all.display());
    Ok(())
}

/// The site's root page: straight to the facade.
const REDIRECT: &str = "<!DOCTYPE html>\n<meta charset=\"utf-8\">\n<title>ave</title>\n\
    <meta http-equiv=\"refresh\" content=\"0; url=ave/index.html\">\n\
    <a href=\"ave/index.html\">ave</a>\n";

/// The site documents the facade only, and links only to pages it has.
fn check_site(site: &Path) -> Result {
    let crates_js = fs::read_to_string(site.join("crates.js"))
        .map_err(|e| format!("cannot read {}: {e}", site.join("crates.js").display()))?;
    let crates = listed_crates(&crates_js)
        .ok_or_else(|| format!("crates.js: no crate list in {crates_js:?}"))?;
    if crates != [SITE_CRATE] {
        return Err(format!("the docs site lists {crates:?}, not only `{SITE_CRATE}`"));
    }
    let mut pages = Vec::new();
    html_pages(site, &mut pages);
    let mut problems = Vec::new();
    for page in &pages {
        let Ok(text) = fs::read_to_string(page) else { continue };
        let from = page.parent().unwrap_or(site);
        for link in relative_links(&text) {
            match resolve(site, from, link) {
                Some(target) if site.join(&target).exists() => {}
                // A missing page inside a folder the site has is rustdoc's own business (it
                // links an inlined crate's "All Items" relative to the module); a folder
                // the site does not have means a link into a crate that is not published.
                Some(target) if top_folder_exists(site, &target) => {}
                _ => problems.push(format!("{}: links to {link}", rel(site, page))),
            }
        }
    }
    if problems.is_empty() {
        println!(
            "docs site: {} pages, crates listed: {crates:?}, no link leaves the site",
            pages.len()
        );
        Ok(())
    } else {
        for p in problems.iter().take(20) {
            eprintln!("docs site: {p}");
        }
        Err(format!("{} link(s) out of the docs site", problems.len()))
    }
}

/// The names in `window.ALL_CRATES = ["a","b"];`.
fn listed_crates(crates_js: &str) -> Option<Vec<String>> {
    let start = crates_js.find("ALL_CRATES")?;
    let rest = &crates_js[start..];
    let open = rest.find('[')?;
    let close = rest[open..].find(']')? + open;
    Some(
        rest[open + 1..close]
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// The `href` values of a page that point at another file of the site (not absolute URLs,
/// not fragments, not the templates of rustdoc's scripts).
fn relative_links(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let Some(end) = rest.find('"') else { break };
        let link = &rest[..end];
        rest = &rest[end..];
        let link = link.split(['#', '?']).next().unwrap_or("");
        let external = link.contains(':') || link.starts_with('/');
        if !link.is_empty() && !external && !link.contains("${") {
            out.push(link);
        }
    }
    out
}

/// `link`, relative to the folder `from` inside `site`, as a path relative to `site`;
/// `None` when it climbs out of the site.
fn resolve(site: &Path, from: &Path, link: &str) -> Option<PathBuf> {
    let mut parts: Vec<_> = from.strip_prefix(site).ok()?.components().collect();
    for component in Path::new(link).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(_) => parts.push(component),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Whether the first folder of `target` (relative to `site`) is in the site.
fn top_folder_exists(site: &Path, target: &Path) -> bool {
    let mut components = target.components();
    let first = components.next();
    components.next().is_some() && first.is_some_and(|c| site.join(c).is_dir())
}

fn html_pages(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            html_pages(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn remove_dir(dir: &Path) -> Result {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result {
    fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_list_is_read_from_crates_js() {
        let js = "window.ALL_CRATES = [\"ave\",\"ave_cmd\"];\n//{\"start\":21}";
        assert_eq!(listed_crates(js).unwrap(), ["ave", "ave_cmd"]);
        assert_eq!(listed_crates("window.ALL_CRATES = [];").unwrap(), Vec::<String>::new());
        assert_eq!(listed_crates("nothing here"), None);
    }

    #[test]
    fn only_links_into_the_site_are_followed() {
        let html = "<a href=\"../ave_network/index.html#x\">a</a><a href=\"https://x.org/\">b</a>\
                    <a href=\"#top\">c</a><link href=\"./static.files/${f}\"><a href=\"/abs\">d</a>\
                    <a href=\"struct.A.html?search=1\">e</a>";
        assert_eq!(relative_links(html), ["../ave_network/index.html", "struct.A.html"]);
    }

    #[test]
    fn links_resolve_against_their_page() {
        let site = Path::new("/site");
        let from = Path::new("/site/ave/network");
        assert_eq!(
            resolve(site, from, "../../ave_cmd/index.html").unwrap(),
            Path::new("ave_cmd/index.html")
        );
        assert_eq!(resolve(site, from, "./a/../b.html").unwrap(), Path::new("ave/network/b.html"));
        assert_eq!(resolve(site, from, "../../../etc/passwd"), None);
    }

    /// A site with a link into a crate it does not publish fails the check; the same site
    /// without it passes.
    #[test]
    fn a_link_to_an_unpublished_crate_fails_the_site() {
        let site = std::env::temp_dir().join(format!("xtask-docs-site-{}", std::process::id()));
        let _ = fs::remove_dir_all(&site);
        fs::create_dir_all(site.join("ave/network")).unwrap();
        fs::write(site.join("crates.js"), "window.ALL_CRATES = [\"ave\"];").unwrap();
        fs::write(site.join("ave/index.html"), "<a href=\"network/index.html\">n</a>").unwrap();
        fs::write(site.join("ave/network/index.html"), "<a href=\"all.html\">all</a>").unwrap();
        let passed = check_site(&site);
        fs::write(
            site.join("ave/network/index.html"),
            "<a href=\"../../ave_network/struct.Control.html\">Control</a>",
        )
        .unwrap();
        let failed = check_site(&site);
        fs::write(site.join("crates.js"), "window.ALL_CRATES = [\"ave\",\"xtask\"];").unwrap();
        let listed = check_site(&site);
        fs::remove_dir_all(&site).unwrap();
        assert_eq!(passed, Ok(()));
        assert_eq!(failed.unwrap_err(), "1 link(s) out of the docs site");
        assert!(listed.unwrap_err().contains("\"xtask\""));
    }
}
