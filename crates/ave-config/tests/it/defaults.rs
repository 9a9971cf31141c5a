//! `create_default`: the original's config tests t01-t03, against the recorded defaults.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use ave_config::{DEFAULT_FILES, create_default, load, load_authkeys, load_broker};
use serde_json::Value;

use crate::{TempDir, config_dir};

fn vector() -> Value {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/vectors/config-defaults.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn host_name() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[test]
fn t01_creates_the_eight_files_in_the_original_order() {
    let home = TempDir::new("config-t01");
    let (created, skipped) = create_default(home.path()).unwrap();
    let vector = vector();
    let order: Vec<PathBuf> = vector["created_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| config_dir(&home).join(n.as_str().unwrap()))
        .collect();
    assert_eq!(created, order);
    assert!(skipped.is_empty());
    assert_eq!(DEFAULT_FILES.len(), 8);

    // Same keys and default values as the original wrote, except the values that depend
    // on the machine (host name) or on chance (keys).
    let host = host_name();
    for (name, recorded) in vector["files"].as_object().unwrap() {
        let path = config_dir(&home).join(name);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "{name} has no final newline");
        let mut ours: Value = serde_json::from_str(&text).unwrap();
        let mut theirs: Value = serde_json::from_str(recorded.as_str().unwrap()).unwrap();
        match name.as_str() {
            "broker.json" => {
                assert_eq!(ours["host"], Value::from(host.clone()));
                theirs["host"] = ours["host"].clone();
            }
            "workspace.json" => {
                assert_eq!(ours["pretty"], Value::from(host.clone()));
                theirs["pretty"] = ours["pretty"].clone();
            }
            "authkeys.json" => {
                for account in ["admin", "share"] {
                    let key = ours[account].as_str().unwrap();
                    assert_eq!(key.len(), 10, "{key}");
                    assert!(key.bytes().all(|b| b.is_ascii_digit()), "{key}");
                    ours[account] = Value::Null;
                    theirs[account] = Value::Null;
                }
            }
            _ => {}
        }
        assert_eq!(ours, theirs, "{name}");
    }
    // Nothing else was left in the directory (no temporary files).
    let mut names: Vec<String> = fs::read_dir(config_dir(&home))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = DEFAULT_FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn t01_file_modes_keep_the_keys_private() {
    let home = TempDir::new("config-modes");
    create_default(home.path()).unwrap();
    for name in DEFAULT_FILES {
        let mode = fs::metadata(config_dir(&home).join(name)).unwrap().permissions().mode() & 0o777;
        if name == "authkeys.json" {
            assert_eq!(mode, 0o600, "{name}");
        } else {
            assert_eq!(mode & 0o600, 0o600, "{name}: {mode:o}");
            assert_eq!(mode & 0o022, 0, "{name} is writable by others: {mode:o}");
        }
    }
    assert_eq!(
        ave_config::key_file_exposure(&config_dir(&home).join("authkeys.json")).unwrap(),
        None
    );
}

#[test]
fn t02_existing_files_are_skipped_and_left_alone() {
    let home = TempDir::new("config-t02");
    fs::create_dir_all(config_dir(&home)).unwrap();
    fs::write(config_dir(&home).join("broker.json"), "").unwrap();
    fs::write(config_dir(&home).join("workspace.json"), "").unwrap();
    let (created, skipped) = create_default(home.path()).unwrap();
    let names = |paths: &[PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(
        names(&created),
        [
            "usbrel64.json",
            "authkeys.json",
            "jenkins.json",
            "gerrit.json",
            "panotti.json",
            "handset.json"
        ]
    );
    assert_eq!(names(&skipped), ["broker.json", "workspace.json"]);
    assert_eq!(fs::read(config_dir(&home).join("broker.json")).unwrap(), b"");
    assert_eq!(fs::read(config_dir(&home).join("workspace.json")).unwrap(), b"");
}

#[test]
fn a_second_run_skips_everything_and_keeps_the_keys() {
    let home = TempDir::new("config-twice");
    create_default(home.path()).unwrap();
    let before = fs::read(config_dir(&home).join("authkeys.json")).unwrap();
    let (created, skipped) = create_default(home.path()).unwrap();
    assert!(created.is_empty());
    assert_eq!(skipped.len(), 8);
    assert_eq!(fs::read(config_dir(&home).join("authkeys.json")).unwrap(), before);
}

#[test]
fn t03_the_created_files_load() {
    let home = TempDir::new("config-t03");
    create_default(home.path()).unwrap();
    let keys = load_authkeys(home.path()).unwrap();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys.admin(), keys.share());
    for account in ["admin", "share"] {
        assert_eq!(keys.get(account).unwrap().len(), 10);
    }
    let broker = load_broker(home.path()).unwrap();
    assert_eq!((broker.host, broker.port), (host_name(), 4000));
    assert_eq!(broker.other["stacks"], serde_json::json!([]));
    for name in DEFAULT_FILES {
        load(&config_dir(&home).join(name)).unwrap();
    }
}

#[test]
fn an_unwritable_home_is_a_clear_error() {
    let home = TempDir::new("config-unwritable");
    // A file where the directory should be: creating it fails whoever runs the test.
    fs::write(home.path().join(".ave"), "").unwrap();
    let err = create_default(home.path()).unwrap_err();
    let text = crate::chain(&err);
    assert!(
        text.starts_with(&format!("could not create {}", config_dir(&home).display())),
        "{text}"
    );
}
