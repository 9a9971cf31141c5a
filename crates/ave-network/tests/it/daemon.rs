//! `Daemon` without forking in this harness: pid-file checks, and `stop` against
//! processes spawned with `std::process::Command` (one that dies on SIGTERM, one that
//! ignores it). The daemons themselves run in the `tests` package's fixtures.

use std::{
    fs::{self, File},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use ave_network::{
    Error,
    process::{Daemon, Pid},
};

use crate::{PEER_LIMIT, Peer, TempDir, python3};

fn daemon(dir: &TempDir, name: &str) -> Daemon {
    let log = File::options().create(true).append(true).open(dir.join("log")).unwrap();
    Daemon::new(dir.join(name), log).unwrap()
}

#[test]
fn pid_files_are_read_leniently() {
    let dir = TempDir::new("daemon-pid-file");
    let d = daemon(&dir, "d.pid");
    assert_eq!(d.get_pid(), None);
    for (content, pid) in
        [("1234", Some(1234)), ("  77\n", Some(77)), ("abc", None), ("0", None), ("", None)]
    {
        fs::write(d.pid_path(), content).unwrap();
        assert_eq!(d.get_pid(), pid.and_then(Pid::from_raw), "{content:?}");
    }
    assert!(d.pid_path().is_absolute());
}

#[test]
fn stop_and_restart_need_a_pid_file_and_start_refuses_a_live_one() {
    let dir = TempDir::new("daemon-refusals");
    let d = daemon(&dir, "d.pid");
    let path = d.pid_path().display().to_string();
    // The variant names the pid file; the text is the original's.
    let is_this = |p: &Path| p == d.pid_path();
    let e = d.stop().unwrap_err();
    assert!(matches!(&e, Error::NoPidFile { path } if is_this(path)), "{e:?}");
    assert_eq!(e.to_string(), format!("pid file {path} does not exist"));
    let e = d.restart_fn(|_| Ok(())).unwrap_err();
    assert!(matches!(&e, Error::NoPidFile { path } if is_this(path)), "{e:?}");
    assert_eq!(e.to_string(), format!("pid file {path} does not exist"));
    fs::write(d.pid_path(), "garbage").unwrap();
    let e = d.stop().unwrap_err();
    assert!(matches!(&e, Error::BadPidFile { path } if is_this(path)), "{e:?}");
    assert_eq!(e.to_string(), format!("pid file {path} holds no pid"));
    // This process is alive: refused before any fork.
    fs::write(d.pid_path(), std::process::id().to_string()).unwrap();
    let e = d.start_fn(|_| Ok(())).unwrap_err();
    assert!(matches!(&e, Error::PidFileExists { path } if is_this(path)), "{e:?}");
    assert_eq!(e.to_string(), format!("pid file {path} exist"));
}

#[test]
fn stop_terminates_the_process_the_pid_file_names() {
    let dir = TempDir::new("daemon-stop");
    let d = daemon(&dir, "d.pid");
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    fs::write(d.pid_path(), child.id().to_string()).unwrap();
    let started = Instant::now();
    d.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!d.pid_path().exists());
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15));
}

#[test]
fn stop_kills_a_process_that_ignores_sigterm_after_the_timeout() {
    let dir = TempDir::new("daemon-stubborn");
    let d = daemon(&dir, "d.pid").stop_timeout(Duration::from_millis(200));
    let mut child = Peer::start(python3().args([
        "-c",
        "import signal, time\n\
         signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
         print('ready', flush=True)\n\
         time.sleep(60)",
    ]));
    assert_eq!(child.line(PEER_LIMIT), "ready");
    fs::write(d.pid_path(), child.id().to_string()).unwrap();
    d.stop().unwrap();
    assert!(!d.pid_path().exists());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.finish(PEER_LIMIT).status.signal(), Some(9));
}

#[test]
fn stop_of_a_process_already_gone_removes_the_pid_file() {
    let dir = TempDir::new("daemon-gone");
    let d = daemon(&dir, "d.pid");
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    fs::write(d.pid_path(), pid.to_string()).unwrap();
    d.stop().unwrap();
    assert!(!d.pid_path().exists());
}
