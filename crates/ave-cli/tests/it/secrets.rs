//! Keys off the command line: key files, `AVE_AUTHKEY`, `--key-name`; a key is never in
//! `ps`, the logs, an error or a hickup dump.

use std::{
    io::Read,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    ave,
    serve::{Served, TempDir},
};

fn key_file(dir: &Path, name: &str, key: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn call(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ave"))
        .arg("call")
        .args(args)
        .env_remove("AVE_AUTHKEY")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    crate::outcome(&out)
}

#[test]
fn keys_come_from_files_the_environment_and_the_home() {
    let dir = TempDir::new("keys");
    let primary = key_file(dir.path(), "primary.key", "prim4ry", 0o600);
    let admin = key_file(dir.path(), "admin.key", "adm1n", 0o400);
    let served = Served::start(&[
        "--authkey-file",
        primary.to_str().unwrap(),
        "--alt-key-file",
        &format!("admin={}", admin.display()),
    ]);
    let a = served.address();
    let primary_arg = primary.to_str().unwrap();
    assert_eq!(call(&[], &["--authkey-file", primary_arg, &a, "whoami"]).1, "\"prim4ry\"\n");
    assert_eq!(call(&[("AVE_AUTHKEY", "adm1n")], &[&a, "whoami_preauth"]).1, "\"adm1n\"\n");
    // A flag wins over the environment.
    assert_eq!(
        call(&[("AVE_AUTHKEY", "adm1n")], &["--authkey-file", primary_arg, &a, "whoami"]).1,
        "\"prim4ry\"\n"
    );
    // --key-name reads the home's authkeys.json.
    let home = TempDir::new("keys-home");
    let config = home.path().join(".ave/config");
    std::fs::create_dir_all(&config).unwrap();
    key_file(&config, "authkeys.json", r#"{"admin": "adm1n", "share": null}"#, 0o600);
    let home_arg = home.path().to_str().unwrap();
    assert_eq!(
        call(&[], &["--key-name", "admin", "--home", home_arg, &a, "whoami_preauth"]).1,
        "\"adm1n\"\n"
    );
    let (code, _, stderr) = call(&[], &["--key-name", "nobody", "--home", home_arg, &a, "whoami"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--key-name nobody: no such account in"), "{stderr}");
    assert!(stderr.contains("(accounts: admin, share)"), "{stderr}");
    assert!(!stderr.contains("adm1n"), "{stderr}");
    let (code, _, stderr) = call(&[], &["--key-name", "share", "--home", home_arg, &a, "whoami"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--key-name share: the account has no key in"), "{stderr}");
    // The server takes its primary key from the environment too.
    let served = Served::start_with_env(&[], &[("AVE_AUTHKEY", "fr0m-env")]);
    assert_eq!(
        call(&[("AVE_AUTHKEY", "fr0m-env")], &[&served.address(), "whoami"]).1,
        "\"fr0m-env\"\n"
    );
    let (code, _, _) = call(&[("AVE_AUTHKEY", "wrong")], &[&served.address(), "whoami"]);
    assert_eq!(code, 3);
}

#[test]
fn key_files_others_can_read_are_refused() {
    let dir = TempDir::new("open-keys");
    let open = key_file(dir.path(), "open.key", "0pen-key", 0o644);
    let shown = open.display();
    let expected = format!(
        "the key file {shown} is accessible by others (mode 0644); run \"chmod 600 {shown}\"\n"
    );
    let out = ave(&["serve", "--authkey-file", open.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("ave serve: error: {expected}"));
    let out = ave(&["serve", "--alt-key-file", &format!("admin={shown}")]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("ave serve: error: {expected}"));
    let (code, _, stderr) =
        call(&[], &["--authkey-file", open.to_str().unwrap(), "127.0.0.1:1", "m"]);
    assert_eq!((code, stderr), (2, format!("ave call: error: {expected}")));
}

#[test]
fn keys_stay_out_of_ps_logs_errors_and_dumps() {
    const KEY: &str = "n0t-in-ps-or-logs";
    let dir = TempDir::new("hidden-key");
    let file = key_file(dir.path(), "k", KEY, 0o600);
    let home = TempDir::new("hidden-key-home");
    let mut served = Served::start(&[
        "-vvv",
        "--home",
        home.path().to_str().unwrap(),
        "--authkey-file",
        file.to_str().unwrap(),
        "--alt-key-file",
        &format!("admin={}", file.display()),
    ]);
    let mut cmdline = Vec::new();
    std::fs::File::open(format!("/proc/{}/cmdline", served.pid()))
        .unwrap()
        .read_to_end(&mut cmdline)
        .unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("--authkey-file"));
    assert!(!String::from_utf8_lossy(&cmdline).contains(KEY));
    let a = served.address();
    let file_arg = file.to_str().unwrap();
    let (code, stdout, stderr) = call(&[], &["-vvv", "--authkey-file", file_arg, &a, "upper", "x"]);
    assert_eq!((code, stdout.as_str()), (0, "\"X\"\n"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
    let (code, _, stderr) = call(&[("AVE_AUTHKEY", "wr0ng")], &["-vvv", &a, "upper", "x"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(!stderr.contains("wr0ng"), "{stderr}");
    // A hickup dump, complete once the server says it wrote it.
    served.signal(10);
    let mut log = served.read_until("wrote a hickup dump");
    let dumps: Vec<_> = std::fs::read_dir(home.path().join(".ave/hickup")).unwrap().collect();
    assert_eq!(dumps.len(), 1);
    let content = std::fs::read_to_string(dumps[0].as_ref().unwrap().path()).unwrap();
    assert!(content.starts_with("AVE hickup dump"), "{content}");
    assert!(!content.contains(KEY), "{content}");
    served.signal(15);
    let (status, rest) = served.wait();
    log.push_str(&rest);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("new connection"), "the log is not verbose: {log}");
    assert!(!log.contains(KEY), "{log}");
}

#[test]
fn commands_the_server_runs_do_not_inherit_the_key() {
    let served = Served::start_with_env(&["--allow-run"], &[("AVE_AUTHKEY", "inh3rited")]);
    let env = [("AVE_AUTHKEY", "inh3rited")];
    // printenv exits 1 when the variable is not set.
    let (code, stdout, stderr) =
        call(&env, &[&served.address(), "run_external", "printenv AVE_AUTHKEY"]);
    assert_eq!((code, stdout.as_str()), (0, "[1,\"\",\"\"]\n"), "{stderr}");
    assert_eq!(call(&env, &[&served.address(), "whoami"]).1, "\"inh3rited\"\n");
}
