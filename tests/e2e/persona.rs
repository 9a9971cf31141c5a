//! Dropping privileges and looking users up, through fixture programs: a drop cannot be
//! undone, so it never happens in this harness.
//!
//! The drops need root; CI runs as root. Elsewhere those tests print why they skip.

// Tests say on stdout why they skip.
#![allow(clippy::print_stdout)]

use std::{collections::BTreeSet, path::Path, process::Command};

use ave_test_support::TempDir;
use serde_json::Value;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! skip_unless_root {
    () => {
        if !is_root() {
            println!("skipped: changing the identity of a process needs root");
            return;
        }
    };
}

/// Runs a fixture and parses its one line of JSON.
fn run(fixture: &str, args: &[&str]) -> Value {
    let out = Command::new(fixture).args(args).output().expect("start fixture");
    assert!(
        out.status.success(),
        "{fixture} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

fn drop_fixture(args: &[&str]) -> Value {
    run(env!("CARGO_BIN_EXE_persona_drop"), args)
}

/// All four ids of a `/proc/self/status` `Uid:`/`Gid:` line (real, effective, saved, fs).
fn all_four(id: u32) -> String {
    format!("{id} {id} {id} {id}")
}

fn group_set(line: &Value) -> BTreeSet<u32> {
    line.as_str().unwrap().split_whitespace().map(|g| g.parse().unwrap()).collect()
}

#[test]
fn becoming_nobody_switches_every_id_and_drops_roots_groups() {
    skip_unless_root!();
    let nobody = ave::persona::lookup_user("nobody").unwrap();
    let report = drop_fixture(&["--extra-groups", "0,4,27", "nobody"]);

    // The fixture did hold root's extra groups before the drop...
    assert_eq!(group_set(&report["groups_before"]), BTreeSet::from([0, 4, 27]));
    // ...and afterwards holds exactly nobody's groups, and nobody's ids everywhere.
    assert_eq!(report["result"]["ok"], nobody.home.to_str().unwrap(), "{report}");
    let status = &report["status"];
    assert_eq!(status["Uid"], all_four(nobody.uid), "{report}");
    assert_eq!(status["Gid"], all_four(nobody.gid), "{report}");
    let name = std::ffi::CString::new("nobody").unwrap();
    let expected: BTreeSet<u32> =
        nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(nobody.gid))
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
    assert_eq!(group_set(&status["Groups"]), expected, "{report}");
    assert!(!group_set(&status["Groups"]).contains(&0));
    for cap in ["CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status[cap], "0000000000000000", "{cap}: {report}");
    }
    assert_eq!(report["env"]["HOME"], nobody.home.to_str().unwrap());
    assert_eq!(report["env"]["USER"], "nobody");
    assert_eq!(report["env"]["LOGNAME"], "nobody");
}

#[test]
fn root_that_only_stepped_aside_drops_root_for_good() {
    skip_unless_root!();
    let nobody = ave::persona::lookup_user("nobody").unwrap();
    let report = drop_fixture(&["--extra-groups", "0,4", "--seteuid", "nobody", "nobody"]);
    // Before: effective uid nobody, but real and saved uid still root (it could go back).
    assert_eq!(report["uid_before"], format!("0 {0} 0 {0}", nobody.uid), "{report}");
    // The original saw "already nobody" here and kept root within reach; now every id and
    // group is nobody's.
    assert_eq!(report["result"]["ok"], nobody.home.to_str().unwrap(), "{report}");
    assert_eq!(report["status"]["Uid"], all_four(nobody.uid), "{report}");
    assert_eq!(report["status"]["Gid"], all_four(nobody.gid), "{report}");
    assert!(!group_set(&report["status"]["Groups"]).contains(&0), "{report}");
    assert!(!group_set(&report["status"]["Groups"]).contains(&4), "{report}");
}

#[test]
fn a_user_who_is_not_root_cannot_become_another() {
    skip_unless_root!();
    let nobody = ave::persona::lookup_user("nobody").unwrap();
    let daemon = ave::persona::lookup_user("daemon").unwrap();
    let report = drop_fixture(&["--first", "nobody", "daemon"]);
    assert_eq!(report["first"]["ok"], nobody.home.to_str().unwrap(), "{report}");
    assert_eq!(
        report["result"]["err"],
        format!(
            "only root can execute with modified privileges: running as uid {}, cannot become \
             \"daemon\" (uid {})",
            nobody.uid, daemon.uid
        ),
        "{report}"
    );
    // Nothing moved.
    assert_eq!(report["status"]["Uid"], all_four(nobody.uid));
    assert_eq!(report["status"]["Gid"], all_four(nobody.gid));
}

#[test]
fn becoming_the_user_one_already_is_returns_the_home() {
    skip_unless_root!();
    let nobody = ave::persona::lookup_user("nobody").unwrap();
    let report = drop_fixture(&["--first", "nobody", "nobody"]);
    // The original returned None here; the home is what callers need.
    assert_eq!(report["result"]["ok"], nobody.home.to_str().unwrap(), "{report}");
    assert_eq!(report["status"]["Uid"], all_four(nobody.uid));
}

#[test]
fn becoming_oneself_needs_no_privileges_and_sets_the_environment() {
    // Whoever runs the tests: no switch, but HOME, USER and LOGNAME are set.
    let me = ave::persona::current_user().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_persona_drop"))
        .arg(&me.name)
        .env("HOME", "/somewhere/else")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"]["ok"], me.home.to_str().unwrap(), "{report}");
    assert_eq!(report["env"]["HOME"], me.home.to_str().unwrap());
    assert_eq!(report["env"]["USER"], me.name.as_str());
    assert_eq!(report["env"]["LOGNAME"], me.name.as_str());
    assert_eq!(report["status"]["Uid"], all_four(me.uid));
}

#[test]
fn an_unknown_user_is_refused_before_anything_changes() {
    let report = drop_fixture(&["no-such-user-ave-e2e"]);
    assert_eq!(report["result"]["err"], "no such user: no-such-user-ave-e2e");
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(report["status"]["Uid"], all_four(uid));
}

// The original's config tests t08-t10: lookups leave every descriptor as it was.

fn fds_fixture(args: &[&str]) -> String {
    let report = run(env!("CARGO_BIN_EXE_persona_fds"), args);
    let before = report["before"].as_object().unwrap();
    assert!(before.len() >= 33, "the fixture opened its 30 descriptors: {before:?}");
    assert_eq!(report["before"], report["after"], "descriptors changed during {args:?}");
    report["result"].as_str().unwrap().to_owned()
}

#[test]
fn t08_load_etc_filling_in_the_home_leaves_descriptors_alone() {
    let dir = TempDir::new("e2e-fds-etc");
    let path = dir.join("user");
    std::fs::write(&path, r#"{"name": "root"}"#).unwrap();
    let result = fds_fixture(&["load-etc", path.to_str().unwrap()]);
    assert_eq!(result, "ok root 0 /root");
}

#[test]
fn t09_a_missing_config_file_leaves_descriptors_alone() {
    let result = fds_fixture(&["load-missing", "does_not_exist.json"]);
    assert!(result.starts_with("err no such configuration file: does_not_exist.json"), "{result}");
    let me = ave::persona::current_user().unwrap();
    assert!(result.contains(&format!("--bootstrap={}", me.name)), "{result}");
}

#[test]
fn t10_create_etc_leaves_descriptors_alone() {
    let dir = TempDir::new("e2e-fds-create");
    // The folder the file goes in does not exist yet: create_etc makes it.
    let path = dir.join("etc/user");
    let result = fds_fixture(&["create-etc", path.to_str().unwrap(), "root"]);
    assert_eq!(result, "ok root true");
    assert!(Path::new(&path).exists());
}

#[test]
fn lookups_leave_descriptors_alone() {
    let nobody = ave::persona::lookup_user("nobody").unwrap();
    let result = fds_fixture(&["lookup", "nobody"]);
    assert_eq!(result, format!("ok {} {} {}", nobody.uid, nobody.gid, nobody.home.display()));
    assert_eq!(
        fds_fixture(&["lookup", "no-such-user-ave-e2e"]),
        "err no such user: no-such-user-ave-e2e"
    );
}
