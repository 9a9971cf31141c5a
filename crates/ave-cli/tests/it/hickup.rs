//! `kill -USR1` on `ave serve` writes a hickup dump into `--home`, and the server goes on.

use std::{
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    ave,
    serve::{Served, TempDir},
};

fn dumps(home: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(home.join(".ave/hickup"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn sigusr1_writes_a_dump_into_the_home() {
    let home = TempDir::new("hickup-home");
    let served = Served::start(&["--home", home.path().to_str().unwrap(), "--authkey", "s3cret"]);
    served.signal(10);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dumps(home.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let dumps = dumps(home.path());
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let name = dumps[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.contains("-ave-serve-"), "{name}");
    assert_eq!(std::fs::metadata(&dumps[0]).unwrap().permissions().mode() & 0o777, 0o600);
    let content = std::fs::read_to_string(&dumps[0]).unwrap();
    assert!(content.starts_with("AVE hickup dump\nprocess: ave-serve (pid "), "{content}");
    assert!(content.contains(&format!("listening: 127.0.0.1:{}", served.port)), "{content}");
    assert!(!content.contains("s3cret"), "{content}");
    // Still serving.
    let out = ave(&["call", "--authkey", "s3cret", &served.address(), "sync_ping"]);
    assert!(out.status.success(), "{out:?}");
    served.signal(15);
    let (status, _) = served.wait();
    assert_eq!(status.code(), Some(0));
}
