//! `ave serve`: the diagnostic service as a program, stopped by SIGTERM, `stop` or `Exit`.

use std::{
    io::{BufRead, BufReader, Read},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub(crate) use ave_test_support::TempDir;

use crate::ave;

/// A running `ave serve`, ready once it said where it listens.
pub(crate) struct Served {
    child: Child,
    pub(crate) port: u16,
    stderr: BufReader<std::process::ChildStderr>,
    _dir: TempDir,
    pub(crate) port_file: PathBuf,
}

impl Served {
    pub(crate) fn start(args: &[&str]) -> Served {
        Served::start_with_env(args, &[])
    }

    /// Starts `ave serve` with `args` and these environment variables (and without
    /// `AVE_AUTHKEY` unless given).
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = TempDir::new("serve");
        let port_file = dir.path().join("port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ave"))
            .arg("serve")
            .arg("--port-file")
            .arg(&port_file)
            .args(args)
            // Without `--home` the server uses `$HOME/.ave` (its handover socket, hickup
            // dumps): keep that inside the test's own directory.
            .env("HOME", dir.path())
            .env_remove("AVE_AUTHKEY")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ave serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        // Log lines (with -v) may come first.
        let mut line = String::new();
        while !line.starts_with("ave serve: listening on ") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "ave serve ended before listening");
        }
        let port = line
            .trim()
            .strip_prefix("ave serve: listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Served { child, port, stderr, _dir: dir, port_file }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads the server's stderr up to the first line that contains `needle` and returns
    /// what it read (panics if the server ends first).
    pub(crate) fn read_until(&mut self, needle: &str) -> String {
        let mut read = String::new();
        loop {
            let start = read.len();
            let n = self.stderr.read_line(&mut read).unwrap();
            assert!(n > 0, "ave serve ended before saying {needle:?}: {read}");
            if read[start..].contains(needle) {
                return read;
            }
        }
    }

    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for the server to exit and returns its status and the rest of its stderr.
    pub(crate) fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        (self.child.wait().unwrap(), rest)
    }

    pub(crate) fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(args: &[&str]) -> (i32, String, String) {
    crate::ave_call(&["--timeout", "5"], args)
}

#[test]
fn serves_until_sigterm() {
    let served = Served::start(&[]);
    assert_eq!(std::fs::read_to_string(&served.port_file).unwrap(), format!("{}\n", served.port));
    assert_eq!(
        call(&[&served.address(), "sync_ping"]),
        (0, "\"pong\"\n".to_owned(), String::new())
    );
    let mut idle = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    let mut challenge = [0u8; 4 + 31 + 13];
    idle.read_exact(&mut challenge).unwrap();
    served.signal(15);
    // The connection is closed with no exit message.
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let (status, _) = served.wait();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn stops_on_a_stop_call_and_on_exit() {
    let served = Served::start(&[]);
    assert_eq!(call(&[&served.address(), "stop"]), (0, "null\n".to_owned(), String::new()));
    assert_eq!(served.wait().0.code(), Some(0));

    let served = Served::start(&[]);
    let (code, stdout, stderr) = call(&[&served.address(), "raise_exit", "bye"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stderr).unwrap(),
        serde_json::json!({"message": "bye", "type": "Exit"})
    );
    let address = served.address();
    assert_eq!(served.wait().0.code(), Some(0));
    let (code, _, stderr) = call(&[&address, "sync_ping"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
}

#[test]
fn keys_and_accounts() {
    let served =
        Served::start(&["--authkey", "primary", "--alt-key", "admin=adm", "--alt-key", "root="]);
    let address = served.address();
    assert_eq!(call(&["--authkey", "primary", &address, "whoami"]).1, "\"primary\"\n");
    assert_eq!(call(&["--authkey", "adm", &address, "whoami_preauth"]).1, "\"adm\"\n");
    // A refused key is a failure; nothing is called.
    let (code, stdout, stderr) = call(&["--authkey", "wrong", &address, "whoami_preauth"]);
    assert_eq!((code, stdout.as_str()), (3, ""), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "ave call: error: {address}: the server refused the key; nothing was called \
             (--allow-unauthenticated calls without an identity)\n"
        )
    );
    // `root=` is an account without a key: its preauth methods are open to everyone.
    let (code, stdout, stderr) =
        call(&["--authkey", "wrong", "--allow-unauthenticated", &address, "whoami_preauth"]);
    assert_eq!((code, stdout.as_str()), (0, "null\n"), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "ave call: warning: {address}: the server refused the key; calling without an \
             identity\n"
        )
    );
    let (code, _, stderr) = call(&[&address, "auth_only"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim(),
        r#"{"message":"not authenticated to make this call","type":"Exception"}"#
    );
}

#[test]
fn authkeys_from_the_home() {
    let home = TempDir::new("home");
    let home_arg = home.path().to_str().unwrap();
    assert!(ave(&["config", "init", "--home", home_arg]).status.success());
    let keys: serde_json::Value = serde_json::from_slice(
        &std::fs::read(home.path().join(".ave/config/authkeys.json")).unwrap(),
    )
    .unwrap();
    let admin = keys["admin"].as_str().unwrap();
    let served = Served::start(&["--authkeys", "--home", home_arg]);
    assert_eq!(
        call(&["--authkey", admin, &served.address(), "whoami_preauth"]).1,
        format!("\"{admin}\"\n")
    );
}

#[test]
fn digest_policies() {
    let read_challenge = |port: u16| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).unwrap();
        u32::from_be_bytes(header)
    };
    let md5 = Served::start(&["--digest", "md5", "--authkey", "k"]);
    assert_eq!(read_challenge(md5.port), 31);
    assert_eq!(call(&["--authkey", "k", &md5.address(), "whoami"]).1, "\"k\"\n");
    let sha = Served::start(&["--digest", "sha256", "--authkey", "k"]);
    assert_eq!(read_challenge(sha.port), 31 + 13);
    assert_eq!(call(&["--authkey", "k", &sha.address(), "whoami"]).1, "\"k\"\n");
}

#[test]
fn usage_errors() {
    let out = ave(&["serve", "--alt-key", "nokey"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ave serve: error: --alt-key expects NAME=KEY (a name, then '=')\n"
    );
    let out = ave(&["serve", "--digest", "sha1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ave(&["serve", "--interval", "-1"]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing to take over (in a home of its own: the default one may hold other tests'
    // instances): a failure, not a usage error. The rest is in `replace`.
    let home = TempDir::new("replace-nothing");
    let out = ave(&["serve", "--replace", "--home", home.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing taken over"));
}
