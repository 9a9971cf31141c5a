//! User lookups agree with the system's own tool, `getent passwd`.

use std::{path::Path, process::Command};

use ave_persona::{Error, current_user, lookup_user};

/// Every entry of the user database, as `getent` prints it.
fn getent() -> Vec<Vec<String>> {
    let out = Command::new("getent").arg("passwd").output().expect("getent is installed");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect()
}

#[test]
fn every_user_of_the_database_is_found_with_its_fields() {
    let entries = getent();
    assert!(entries.iter().any(|e| e[0] == "root"));
    for e in entries {
        let user = lookup_user(&e[0]).unwrap();
        assert_eq!(user.name, e[0]);
        assert_eq!(user.uid.to_string(), e[2], "{}", e[0]);
        assert_eq!(user.gid.to_string(), e[3], "{}", e[0]);
        assert_eq!(user.home, Path::new(&e[5]), "{}", e[0]);
        assert_eq!(user.shell, Path::new(&e[6]), "{}", e[0]);
    }
}

#[test]
fn the_current_user_is_the_effective_one() {
    let out = Command::new("id").arg("-un").output().unwrap();
    let name = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(current_user().unwrap().name, name);
}

#[test]
fn unknown_names_are_errors_with_the_name() {
    for name in ["no-such-user-ave-it", "", "x:y"] {
        match lookup_user(name) {
            Err(Error::NoSuchUser { name: n }) => assert_eq!(n, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}
