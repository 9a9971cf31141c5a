//! `ave config init|show|etc|bootstrap`, run as a user types them, on temporary homes.
//!
//! Tests that run `ave` as another user need root (CI is root) and print why they skip
//! otherwise. Nothing here touches the real `/etc/ave/user` or any real home: `etc` gets a
//! temporary `--path`, and the successful `bootstrap` runs in a private mount namespace
//! whose `/etc/passwd` has an extra user with a temporary home.

// Tests say on stdout why they skip.
#![allow(clippy::print_stdout)]

use std::{
    fs,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use ave_test_support::TempDir;

use crate::ave;

const FILES: [&str; 8] = [
    "broker.json",
    "usbrel64.json",
    "authkeys.json",
    "jenkins.json",
    "workspace.json",
    "gerrit.json",
    "panotti.json",
    "handset.json",
];

/// The configuration folder of a home.
fn config_dir(home: &TempDir) -> PathBuf {
    home.join(".ave/config")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(out: &Output) -> Vec<String> {
    text(&out.stdout).lines().map(str::to_owned).collect()
}

fn created(dir: &Path, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("Created {}", dir.join(n).display())).collect()
}

fn kept(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("ave config: kept {} (it exists)", dir.join(n).display()))
        .collect()
}

fn err_lines(out: &Output) -> Vec<String> {
    text(&out.stderr).lines().map(str::to_owned).collect()
}

fn is_root() -> bool {
    ave::persona::current_user().is_ok_and(|u| u.uid == 0)
}

macro_rules! skip_unless_root {
    ($why:literal) => {
        if !is_root() {
            println!(concat!("skipped: needs root to ", $why));
            return;
        }
    };
}

/// Runs `ave` as `nobody`, from a copy every user can execute (the build folder may be
/// under a home that is private to root). The copy is removed when the run ends.
fn ave_as_nobody(args: &[&str]) -> Output {
    let dir = TempDir::with_mode("bin", 0o755);
    let exe = dir.path().join("ave");
    fs::copy(env!("CARGO_BIN_EXE_ave"), &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = ave::persona::lookup_user("nobody").unwrap();
    Command::new(&exe).args(args).uid(nobody.uid).gid(nobody.gid).current_dir("/").output().unwrap()
}

#[test]
fn init_creates_the_eight_files_then_skips_them() {
    let home = TempDir::with_mode("init", 0o755);
    let out = ave(&["config", "init", "--home", home.to_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lines(&out), created(&config_dir(&home), &FILES));
    let keys = config_dir(&home).join("authkeys.json");
    assert_eq!(fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    let before = fs::read(&keys).unwrap();

    let out = ave(&["config", "init", "--home", home.to_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(err_lines(&out), kept(&config_dir(&home), &FILES));
    assert_eq!(fs::read(&keys).unwrap(), before);
}

#[test]
fn init_refuses_a_home_that_does_not_exist() {
    let scratch = TempDir::with_mode("nohome", 0o755);
    let typo = scratch.path().join("hmoe/user");
    let out = ave(&["config", "init", "--home", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "ave config: error: could not bootstrap: --home {}: no such directory\n",
            typo.display()
        )
    );
    assert!(!scratch.path().join("hmoe").exists());
}

#[test]
fn hints_name_commands_that_exist() {
    let home = TempDir::with_mode("hint", 0o755);
    let expected = format!(
        "no such configuration file: {} (\"ave config init --home {}\" creates it with default \
         values)",
        config_dir(&home).join("authkeys.json").display(),
        home.to_str()
    );
    let out = ave(&["call", "--key-name", "admin", "--home", home.to_str(), "127.0.0.1:1", "m"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), format!("ave call: error: --key-name: {expected}\n"));
    let out = ave(&["serve", "--authkeys", "--home", home.to_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), format!("ave serve: error: --authkeys: {expected}\n"));
    assert!(!text(&out.stderr).contains("ave-config"));
}

#[test]
fn init_reports_skipped_files_first() {
    // The original's config test t02, through the command line.
    let home = TempDir::with_mode("t02", 0o755);
    fs::create_dir_all(config_dir(&home)).unwrap();
    fs::write(config_dir(&home).join("broker.json"), "").unwrap();
    fs::write(config_dir(&home).join("workspace.json"), "").unwrap();
    let out = ave(&["config", "init", "--home", home.to_str()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(err_lines(&out), kept(&config_dir(&home), &["broker.json", "workspace.json"]));
    let expected = created(
        &config_dir(&home),
        &[
            "usbrel64.json",
            "authkeys.json",
            "jenkins.json",
            "gerrit.json",
            "panotti.json",
            "handset.json",
        ],
    );
    assert_eq!(lines(&out), expected);
    assert_eq!(fs::read(config_dir(&home).join("broker.json")).unwrap(), b"");
}

#[test]
fn init_failure_exits_3_with_the_reason() {
    let home = TempDir::with_mode("initfail", 0o755);
    fs::write(home.path().join(".ave"), "a file where a folder should be").unwrap();
    let out = ave(&["config", "init", "--home", home.to_str()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "ave config: error: could not bootstrap: could not create {}: ",
            config_dir(&home).display()
        )),
        "{err}"
    );
}

#[test]
fn show_reports_each_file_and_why_it_does_not_load() {
    let home = TempDir::with_mode("show", 0o755);
    ave(&["config", "init", "--home", home.to_str()]);
    let keys = config_dir(&home).join("authkeys.json");

    let out = ave(&["config", "show", "--home", home.to_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for name in FILES {
        assert!(
            stdout.contains(&format!("{}: ok", config_dir(&home).join(name).display())),
            "{name}: {stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("{}: ok (accounts: admin, share)", keys.display())),
        "{stdout}"
    );
    assert!(stdout.contains(":4000)"), "{stdout}");
    assert!(!stdout.contains("WARNING"), "{stdout}");
    // The keys themselves are never shown.
    let key_text = fs::read_to_string(&keys).unwrap();
    let admin: serde_json::Value = serde_json::from_str(&key_text).unwrap();
    assert!(!stdout.contains(admin["admin"].as_str().unwrap()));

    fs::set_permissions(&keys, fs::Permissions::from_mode(0o644)).unwrap();
    let stdout = text(&ave(&["config", "show", "--home", home.to_str()]).stdout);
    assert!(
        stdout.contains(&format!(
            "{0}: WARNING: readable by others (mode 0644); run \"chmod 600 {0}\"",
            keys.display()
        )),
        "{stdout}"
    );

    // Acceptance scenario 42's bad files, and the missing one.
    let cases = [
        ("", "not valid JSON encoding"),
        (r#"["admin","share"]"#, "contents is not a dictionary: <type 'list'>"),
        (r#"{"admin":3}"#, r#"value of "admin" is not a string: <type 'int'>"#),
    ];
    for (contents, expected) in cases {
        fs::write(&keys, contents).unwrap();
        let out = ave(&["config", "show", "--home", home.to_str()]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains(&format!("{}: INVALID: ", keys.display())), "{stdout}");
        assert!(stdout.contains(expected), "{contents}: {stdout}");
    }
    fs::remove_file(&keys).unwrap();
    let out = ave(&["config", "show", "--home", home.to_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains(&format!("{}: missing", keys.display())), "{stdout}");
    assert!(
        stdout.contains(&format!("run \"ave config init --home {}\"", home.to_str())),
        "{stdout}"
    );
}

#[test]
fn show_lists_other_json_files_too() {
    let home = TempDir::with_mode("extra", 0o755);
    ave(&["config", "init", "--home", home.to_str()]);
    fs::write(config_dir(&home).join("adb_server.json"), r#"{"demote": false}"#).unwrap();
    fs::write(config_dir(&home).join("relay.json"), "{").unwrap();
    let out = ave(&["config", "show", "--home", home.to_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("{}: ok", config_dir(&home).join("adb_server.json").display()))
    );
    assert!(
        stdout.contains(&format!("{}: INVALID: ", config_dir(&home).join("relay.json").display()))
    );
}

#[test]
fn etc_writes_name_home_and_uid_and_keeps_an_existing_user() {
    let dir = TempDir::with_mode("etc", 0o755);
    let path = dir.path().join("ave/user");
    let p = path.to_str().unwrap();
    let out = ave(&["config", "etc", "--path", p, "--user", "root"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lines(&out), [format!("Created {p} (user \"root\", home /root, uid 0)")]);
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written, serde_json::json!({"name": "root", "home": "/root", "uid": 0}));

    let out = ave(&["config", "etc", "--path", p, "--user", "root"]);
    assert_eq!(lines(&out), [format!("{p} already names the user \"root\", unchanged")]);

    let out = ave(&["config", "etc", "--path", p]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(lines(&out), [format!("{p} names the user \"root\" (home /root, uid 0)")]);

    let out = ave(&["config", "etc", "--path", p, "--user", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "ave config: error: {p} already names the user \"root\", not \"nobody\"; remove the file first to \
             change it"
        )
    );
    assert_eq!(
        written,
        serde_json::from_str::<serde_json::Value>(&fs::read_to_string(&path).unwrap()).unwrap()
    );

    let out = ave(&[
        "config",
        "etc",
        "--path",
        dir.path().join("other").to_str().unwrap(),
        "--user",
        "no-such-user-ave-cli",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "ave config: error: no such user: no-such-user-ave-cli"
    );
}

fn ave_with_stdin(args: &[&str], input: &str) -> Output {
    ave_with_stdin_via(Command::new(env!("CARGO_BIN_EXE_ave")).args(args), input)
}

fn ave_with_stdin_via(command: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A program that does not read its input may be gone before it is written.
    let written = child.stdin.take().unwrap().write_all(input.as_bytes());
    assert!(
        written.as_ref().map_or_else(|e| e.kind() == std::io::ErrorKind::BrokenPipe, |()| true),
        "write the input: {written:?}"
    );
    child.wait_with_output().unwrap()
}

#[test]
fn etc_asks_only_a_terminal_for_the_user() {
    let dir = TempDir::with_mode("prompt", 0o755);
    let path = dir.path().join("user");
    let p = path.to_str().unwrap();
    // stdin is a pipe: no question, a usage error.
    let out = ave_with_stdin(&["config", "etc", "--path", p], "root\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "ave config: error: {p} does not name a user yet; give one with --user NAME \
             (nothing was asked: stdin is not a terminal)\n"
        )
    );
    assert!(out.stdout.is_empty());
    assert!(!path.exists());

    // On a terminal (a pty made by util-linux `script`, which forwards its stdin), it asks.
    let probe = Command::new("script").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("skipped: util-linux `script` is not available (needed for a terminal)");
        return;
    }
    let command = format!("{} config etc --path {p}", env!("CARGO_BIN_EXE_ave"));
    let out = ave_with_stdin_via(
        Command::new("script").args(["-q", "-e", "-c", &command, "/dev/null"]),
        "root\n",
    );
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("Type a valid user name and press return: "), "{shown}");
    assert!(shown.contains(&format!("Created {p} (user \"root\", home /root, uid 0)")), "{shown}");
    assert!(path.exists());
}

#[test]
fn etc_at_the_real_path_needs_root() {
    skip_unless_root!("run ave as another user");
    let out = ave_as_nobody(&["config", "etc", "--user", "root"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "ave config: error: must call as root\n");
}

#[test]
fn bootstrap_of_an_unknown_user_exits_3() {
    let out = ave(&["config", "bootstrap", "--user", "no-such-user-ave-cli"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        "ave config: error: could not bootstrap: no such user: no-such-user-ave-cli\n"
    );
}

#[test]
fn bootstrap_refuses_when_not_root() {
    skip_unless_root!("run ave as another user");
    let out = ave_as_nobody(&["config", "bootstrap", "--user", "daemon"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "ave config: error: could not bootstrap: only root can execute with modified \
             privileges"
        ),
        "{err}"
    );
}

#[test]
fn bootstrap_drops_privileges_before_writing() {
    skip_unless_root!("become another user");
    // nobody's home does not exist and nobody cannot create it; root could. The failure
    // proves the files would be written as the user, not as root.
    let out = ave(&["config", "bootstrap", "--user", "nobody"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(
            "ave config: error: could not bootstrap: could not create /nonexistent/.ave/config: "
        ),
        "{err}"
    );
    assert!(err.contains("ermission denied"), "{err}");
    assert!(!Path::new("/nonexistent").exists());
}

/// A user that exists only inside the mount namespace of the test.
const FAKE_USER: &str = "ave-bootstrap-test";
const FAKE_ID: u32 = 64242;

/// Exit code of the namespace script when the fake user is not visible (e.g. a caching
/// name service daemon answers from outside the namespace).
const NOT_VISIBLE: i32 = 97;

#[test]
fn bootstrap_as_root_writes_the_users_files_as_that_user() {
    skip_unless_root!("become another user");
    let probe = Command::new("unshare").args(["--mount", "true"]).stderr(Stdio::null()).status();
    if !probe.is_ok_and(|s| s.success()) {
        println!("skipped: `unshare --mount` is not available here (needed for a temporary user)");
        return;
    }
    let scratch = TempDir::with_mode("bootstrap", 0o755);
    let home = scratch.path().join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(FAKE_ID), Some(FAKE_ID)).unwrap();
    let passwd = scratch.path().join("passwd");
    let group = scratch.path().join("group");
    let mut p = fs::read_to_string("/etc/passwd").unwrap();
    p.push_str(&format!("{FAKE_USER}:x:{FAKE_ID}:{FAKE_ID}::{}:/bin/sh\n", home.display()));
    fs::write(&passwd, p).unwrap();
    let mut g = fs::read_to_string("/etc/group").unwrap();
    g.push_str(&format!("{FAKE_USER}:x:{FAKE_ID}:\n"));
    fs::write(&group, g).unwrap();
    for path in [&passwd, &group] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    let script = format!(
        "mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/group || exit 98\n\
         getent passwd {FAKE_USER} >/dev/null || exit {NOT_VISIBLE}\n\
         shift 2; exec \"$@\""
    );
    let run = || {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh"])
            .arg(&passwd)
            .arg(&group)
            .args([env!("CARGO_BIN_EXE_ave"), "config", "bootstrap", "--user", FAKE_USER])
            .output()
            .unwrap()
    };
    let out = run();
    if out.status.code() == Some(NOT_VISIBLE) {
        println!(
            "skipped: the temporary user is not visible in the namespace (name service cache?)"
        );
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let config = home.join(".ave/config");
    assert_eq!(lines(&out), created(&config, &FILES));
    for name in FILES {
        let meta = fs::metadata(config.join(name)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (FAKE_ID, FAKE_ID), "{name}");
        let mode = meta.permissions().mode() & 0o777;
        if name == "authkeys.json" {
            assert_eq!(mode, 0o600);
        }
    }
    let out = run();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(err_lines(&out), kept(&config, &FILES));
    // The namespace is gone with its processes: the real user database never had the user.
    let real = fs::read_to_string("/etc/passwd").unwrap();
    assert!(!real.contains(FAKE_USER));
}

#[test]
fn show_json_is_one_object() {
    let home = TempDir::with_mode("showjson", 0o755);
    ave(&["config", "init", "--home", home.to_str()]);
    fs::remove_file(config_dir(&home).join("gerrit.json")).unwrap();
    fs::write(config_dir(&home).join("relay.json"), "{").unwrap();
    let out = ave(&["config", "show", "--json", "--home", home.to_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["dir"], config_dir(&home).to_str().unwrap());
    let file = |name: &str| {
        let path = config_dir(&home).join(name);
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("{name} not in {report}"))
            .clone()
    };
    assert_eq!(file("broker.json")["status"], "ok");
    assert!(file("broker.json")["detail"].as_str().unwrap().starts_with("broker at "));
    assert_eq!(file("authkeys.json")["detail"], "accounts: admin, share");
    assert_eq!(file("authkeys.json")["mode_readable_by_others"], serde_json::Value::Null);
    assert_eq!(file("gerrit.json")["status"], "missing");
    assert_eq!(file("relay.json")["status"], "invalid");
    assert!(file("relay.json")["detail"].as_str().unwrap().contains("not valid JSON"));
    assert_eq!(report["etc"]["path"], "/etc/ave/user");
    assert_eq!(report["create_missing_with"], format!("ave config init --home {}", home.to_str()));
}
