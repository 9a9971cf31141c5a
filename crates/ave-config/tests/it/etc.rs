//! `create_etc` and `load_etc_at` on temporary paths (never the real `/etc/ave/user`):
//! the original's config test t11 and the errors of section 8.4.

use std::{fs, path::Path};

use ave_config::{Error, create_etc, load_etc_at};
use serde_json::{Value, json};

use crate::{TempDir, chain};

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn t11_writes_name_home_and_uid() {
    let dir = TempDir::new("config-t11");
    let path = dir.path().join("etc/ave/user");
    let done = create_etc(&path, "root").unwrap();
    assert!(done.created);
    assert_eq!(read_json(&path), json!({"name": "root", "home": "/root", "uid": 0}));
    assert!(fs::read_to_string(&path).unwrap().ends_with("}\n"));
    let loaded = load_etc_at(&path).unwrap();
    assert_eq!(loaded, done.user);
    assert_eq!(
        (loaded.name.as_str(), loaded.home.as_path(), loaded.uid),
        ("root", Path::new("/root"), 0)
    );
}

#[test]
fn the_same_user_again_leaves_the_file_alone() {
    let dir = TempDir::new("config-same");
    let path = dir.path().join("user");
    fs::write(&path, r#"{"name": "root", "home": "/srv/ave", "uid": 0, "note": "mine"}"#).unwrap();
    let done = create_etc(&path, "root").unwrap();
    assert!(!done.created);
    assert_eq!(done.user.home, Path::new("/srv/ave"));
    assert_eq!(done.user.other["note"], json!("mine"));
    assert_eq!(read_json(&path)["note"], json!("mine"));
}

#[test]
fn another_user_is_a_conflict_not_silently_ignored() {
    let dir = TempDir::new("config-conflict");
    let path = dir.path().join("user");
    create_etc(&path, "root").unwrap();
    let before = fs::read(&path).unwrap();
    let err = create_etc(&path, "nobody").unwrap_err();
    assert!(matches!(err, Error::EtcConflict { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} already names the user \"root\", not \"nobody\"; remove the file first to change it",
            path.display()
        )
    );
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn an_empty_file_is_replaced_and_a_broken_one_kept() {
    let dir = TempDir::new("config-broken");
    let empty = dir.path().join("empty");
    fs::write(&empty, "").unwrap();
    assert!(create_etc(&empty, "root").unwrap().created);
    assert_eq!(read_json(&empty)["name"], json!("root"));

    let broken = dir.path().join("broken");
    fs::write(&broken, "{not json").unwrap();
    let err = create_etc(&broken, "root").unwrap_err();
    let text = chain(&err);
    assert!(
        text.starts_with(&format!("could not load {}: invalid config file", broken.display())),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&broken).unwrap(), "{not json");
}

#[test]
fn unknown_users_are_refused_and_nothing_is_written() {
    let dir = TempDir::new("config-unknown");
    let path = dir.path().join("user");
    let err = create_etc(&path, "no-such-user-ave-config").unwrap_err();
    assert_eq!(err.to_string(), "no such user: no-such-user-ave-config");
    assert!(!path.exists());
}

#[test]
fn load_errors_are_wrapped_with_the_path() {
    let dir = TempDir::new("config-load");
    let missing = dir.path().join("missing");
    let err = load_etc_at(&missing).unwrap_err();
    assert_eq!(chain(&err), format!("could not load {0}: {0} does not exist", missing.display()));

    let cases = [
        (r#"{"home": "/x", "uid": 1}"#, "\"name\" is missing"),
        (r#"{"name": 5}"#, "value of \"name\" is not a string: <type 'int'>"),
        (r#"{"name": "root", "home": []}"#, "value of \"home\" is not a string: <type 'list'>"),
        (r#"{"name": "root", "uid": "x"}"#, "value of \"uid\" is not a user id: \"x\""),
        (r#"[1]"#, "contents is not a dictionary: <type 'list'>"),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("user");
        fs::write(&path, text).unwrap();
        let err = load_etc_at(&path).unwrap_err();
        let got = chain(&err);
        assert!(got.starts_with(&format!("could not load {}: ", path.display())), "{got}");
        assert!(got.ends_with(expected), "{text}: {got}");
    }

    let path = dir.path().join("ghost");
    fs::write(&path, r#"{"name": "no-such-user-ave-config"}"#).unwrap();
    assert!(
        chain(&load_etc_at(&path).unwrap_err()).ends_with("no such user: no-such-user-ave-config")
    );
}

#[test]
fn older_files_get_home_and_uid_from_the_user_database() {
    let dir = TempDir::new("config-old");
    let path = dir.path().join("user");
    fs::write(&path, r#"{"name": "root"}"#).unwrap();
    let user = load_etc_at(&path).unwrap();
    assert_eq!((user.home.as_path(), user.uid), (Path::new("/root"), 0));
    fs::write(&path, r#"{"name": "root", "uid": "0", "home": "/elsewhere"}"#).unwrap();
    let user = load_etc_at(&path).unwrap();
    assert_eq!((user.home.as_path(), user.uid), (Path::new("/elsewhere"), 0));
}
