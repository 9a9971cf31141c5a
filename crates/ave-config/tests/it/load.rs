//! `load` and `load_authkeys` on real files: the original's config tests t04-t07.

use std::{fs, os::unix::fs::PermissionsExt};

use ave_config::{Error, create_default, key_file_exposure, load, load_authkeys};

use crate::{TempDir, config_dir, current_user_name};

fn with_authkeys(tag: &str, contents: &str) -> (TempDir, Error) {
    let home = TempDir::new(tag);
    fs::create_dir_all(config_dir(&home)).unwrap();
    fs::write(config_dir(&home).join("authkeys.json"), contents).unwrap();
    let err = load_authkeys(home.path()).unwrap_err();
    (home, err)
}

#[test]
fn t04_an_empty_file_is_not_valid_json() {
    let (home, err) = with_authkeys("t04", "");
    let path = config_dir(&home).join("authkeys.json");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid config file {}: not valid JSON encoding: No JSON object could be decoded \
             (the file is empty)",
            path.display()
        )
    );
    let (_home, err) = with_authkeys("t04b", "{\"admin\": \"1\",}");
    assert!(err.to_string().contains("not valid JSON encoding: trailing comma"), "{err}");
}

#[test]
fn t05_a_list_is_not_a_dictionary() {
    let (home, err) = with_authkeys("t05", r#"["admin", "share"]"#);
    assert_eq!(
        err.to_string(),
        format!(
            "invalid config file {}: contents is not a dictionary: <type 'list'>",
            config_dir(&home).join("authkeys.json").display()
        )
    );
}

#[test]
fn t06_a_number_is_not_a_string() {
    let (_home, err) = with_authkeys("t06", r#"{"admin":3}"#);
    assert!(err.to_string().contains(r#"value of "admin" is not a string: <type 'int'>"#), "{err}");
}

#[test]
fn t07_a_missing_file_says_how_to_create_it() {
    let home = TempDir::new("config-t07");
    fs::create_dir_all(config_dir(&home)).unwrap();
    let err = load_authkeys(home.path()).unwrap_err();
    let user = current_user_name();
    let path = config_dir(&home).join("authkeys.json");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "no such configuration file: {}\n\nrun \"ave-config --bootstrap={user}\" to create \
             one with default values",
            path.display()
        )),
        "{text}"
    );
    assert!(text.contains(&format!("ave config bootstrap --user {user}")), "{text}");
    assert!(matches!(err, Error::Missing { .. }));
}

#[test]
fn an_open_lab_keeps_null_accounts() {
    let home = TempDir::new("config-open");
    fs::create_dir_all(config_dir(&home)).unwrap();
    fs::write(config_dir(&home).join("authkeys.json"), r#"{"admin": null, "share": "abc"}"#)
        .unwrap();
    let keys = load_authkeys(home.path()).unwrap();
    assert!(keys.contains("admin"));
    assert_eq!((keys.admin(), keys.share()), (None, Some("abc")));
}

#[test]
fn exposed_key_files_are_detected() {
    let home = TempDir::new("config-exposed");
    create_default(home.path()).unwrap();
    let path = config_dir(&home).join("authkeys.json");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(key_file_exposure(&path).unwrap(), Some(0o644));
    // Still loads (with a logged warning): refusing would break existing installations.
    assert_eq!(load_authkeys(home.path()).unwrap().len(), 2);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(key_file_exposure(&path).unwrap(), None);
}

/// Runs `f` with a subscriber that collects the log output as text.
fn logs_of(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};

    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || Sink(Arc::clone(&writer)))
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
}

#[test]
fn loading_exposed_keys_logs_a_warning() {
    let home = TempDir::new("config-warn");
    create_default(home.path()).unwrap();
    let path = config_dir(&home).join("authkeys.json");
    let quiet = logs_of(|| {
        load_authkeys(home.path()).unwrap();
    });
    assert!(!quiet.contains("WARN"), "{quiet}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let logged = logs_of(|| {
        load_authkeys(home.path()).unwrap();
    });
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("authkeys.json is readable by others"), "{logged}");
    assert!(logged.contains("mode=0640"), "{logged}");
}

#[test]
fn any_file_loads_as_an_object_and_a_directory_is_a_read_error() {
    let home = TempDir::new("config-generic");
    let path = home.path().join("x.json");
    fs::write(&path, "{\"a\": [1, 2], \"b\": {\"c\": null}}\n").unwrap();
    let object = load(&path).unwrap();
    assert_eq!(object["a"], serde_json::json!([1, 2]));
    let err = load(home.path()).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert!(crate::chain(&err).starts_with(&format!("could not read {}: ", home.path().display())));
}
