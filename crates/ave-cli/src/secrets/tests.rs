//! Unit tests of key files.

use std::os::unix::fs::PermissionsExt as _;

use ave_test_support::TempDir;

use crate::secrets::*;

fn key_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn key_files_are_private_and_hold_one_line() {
    let tmp = TempDir::new("cli-secrets");
    let dir = tmp.path();
    let good = key_file(dir, "good", "s3cret\n", 0o600);
    assert_eq!(read_key_file(&good).unwrap(), "s3cret");
    let bare = key_file(dir, "bare", "s3cret", 0o400);
    assert_eq!(read_key_file(&bare).unwrap(), "s3cret");
    let open = key_file(dir, "open", "s3cret\n", 0o644);
    let message = read_key_file(&open).unwrap_err().to_string();
    assert!(message.contains("mode 0644") && message.contains("chmod 600"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let group = key_file(dir, "group", "s3cret\n", 0o640);
    assert!(matches!(read_key_file(&group), Err(KeyError::Exposed { mode: 0o640, .. })));
    let empty = key_file(dir, "empty", "\n", 0o600);
    assert!(matches!(read_key_file(&empty), Err(KeyError::Empty { .. })));
    assert!(matches!(read_key_file(&dir.join("absent")), Err(KeyError::Read { .. })));
}

#[test]
fn named_values_never_echo_the_value() {
    assert_eq!(split_named("--alt-key", "NAME=KEY", "admin=k=v"), Ok(("admin", "k=v")));
    assert_eq!(split_named("--alt-key", "NAME=KEY", "admin="), Ok(("admin", "")));
    let message = split_named("--alt-key", "NAME=KEY", "topsecret").unwrap_err();
    assert!(!message.contains("topsecret"), "{message}");
    assert!(split_named("--alt-key", "NAME=KEY", "=x").is_err());
}
