//! `FdTx`: descriptors over Unix sockets. The original's six tests (t1-t6), then what it
//! got wrong (spec section 13, item 18), then the message convention byte for byte against
//! an independent Python 3 peer.

use std::{
    fs,
    io::Write,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::fs::{FileTypeExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::mpsc,
    thread,
    time::Duration,
};

use ave_network::{
    Error,
    fdtx::{FdTx, FdTxListener, MAX_FDS},
};

use crate::{PEER_LIMIT, Peer, TempDir, peer, python3};

const T: Duration = Duration::from_secs(5);

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

fn is_cloexec(fd: &OwnedFd) -> bool {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
}

/// Whether every write end of the pipe is closed: a read sees end of file at once.
fn all_writers_closed(read: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(2000u16)).unwrap();
    ready == 1 && nix::unistd::read(read, &mut [0u8; 1]).unwrap() == 0
}

/// Sends `message` plus one file per name from a thread that accepts on `<dir>/fdtx.sock`
/// once told to, and returns the receiving end.
fn accepter_sending(dir: &Path, message: &'static [u8], files: Vec<PathBuf>) -> PathBuf {
    let listener = FdTxListener::listen(dir, Some("fdtx.sock")).unwrap();
    let path = listener.path().to_owned();
    thread::spawn(move || {
        let tx = listener.accept(Some(T)).unwrap();
        let opened: Vec<fs::File> = files.iter().map(|f| fs::File::create(f).unwrap()).collect();
        let fds: Vec<BorrowedFd<'_>> = opened.iter().map(AsFd::as_fd).collect();
        tx.put(message, &fds).unwrap();
        // Keep the listener (and its file) until the peer is done.
        let _ = tx.get(1, 0);
        drop(listener);
    });
    path
}

fn write_star_cream(fds: Vec<OwnedFd>) {
    for fd in fds {
        let mut file = fs::File::from(fd);
        file.write_all(b"star cream").unwrap();
        file.sync_all().unwrap();
    }
}

#[test]
fn t1_one_descriptor() {
    let dir = TempDir::new("fdtx-t1");
    let file = dir.path().join("f1");
    let path = accepter_sending(dir.path(), b"foo bar", vec![file.clone()]);
    let tx = FdTx::connect(&path, Duration::from_secs(2)).unwrap();
    let got = tx.get(7, 1).unwrap();
    assert_eq!(got.bytes, b"foo bar");
    assert_eq!(got.fds.len(), 1);
    write_star_cream(got.fds);
    assert_eq!(fs::read_to_string(&file).unwrap(), "star cream");
}

#[test]
fn t2_three_descriptors() {
    let dir = TempDir::new("fdtx-t2");
    let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
    let path = accepter_sending(dir.path(), b"foo bar", files.clone());
    let tx = FdTx::connect(&path, Duration::from_secs(2)).unwrap();
    let got = tx.get(7, 3).unwrap();
    assert_eq!(got.fds.len(), 3);
    write_star_cream(got.fds);
    for file in files {
        assert_eq!(fs::read_to_string(file).unwrap(), "star cream");
    }
}

#[test]
fn t3_connect_waits_for_the_socket_to_appear() {
    let dir = TempDir::new("fdtx-t3");
    let path = dir.path().join("late.sock");
    let (started, wait) = mpsc::channel();
    let client = {
        let path = path.clone();
        thread::spawn(move || {
            started.send(()).unwrap();
            FdTx::connect(&path, Duration::from_secs(5))
        })
    };
    wait.recv().unwrap();
    let listener = FdTxListener::listen(dir.path(), Some("late.sock")).unwrap();
    let server = listener.accept(Some(T)).unwrap();
    let client = client.join().unwrap().unwrap();
    client.put(b"hi", &[]).unwrap();
    assert_eq!(server.get(16, 0).unwrap().bytes, b"hi");
}

#[test]
fn t4_the_server_accepts_late() {
    let dir = TempDir::new("fdtx-t4");
    let listener = FdTxListener::listen(dir.path(), None).unwrap();
    // The connect completes in the backlog before the server accepts.
    let client = FdTx::connect(listener.path(), Duration::from_secs(2)).unwrap();
    let (read, write) = pipe();
    let server = listener.accept(Some(T)).unwrap();
    server.put(b"foo bar", &[write.as_fd()]).unwrap();
    drop(write);
    let got = client.get(7, 1).unwrap();
    assert_eq!((got.bytes.as_slice(), got.fds.len()), (&b"foo bar"[..], 1));
    drop(got);
    assert!(all_writers_closed(&read));
}

#[test]
fn t5_end_of_stream_is_connection_closed() {
    let (a, b) = FdTx::pair().unwrap();
    let file = tempfile_fd();
    a.put(b"foo bar", &[file.as_fd()]).unwrap();
    a.close();
    let got = b.get(7, 1).unwrap();
    assert_eq!((got.bytes.as_slice(), got.fds.len()), (&b"foo bar"[..], 1));
    let err = b.get(7, 1).unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[test]
fn t6_accept_times_out() {
    let dir = TempDir::new("fdtx-t6");
    let listener = FdTxListener::listen(dir.path(), None).unwrap();
    let err = listener.accept(Some(Duration::from_millis(500))).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.to_string(), "timed out");
}

fn tempfile_fd() -> OwnedFd {
    OwnedFd::from(fs::File::open("/dev/null").unwrap())
}

#[test]
fn sixty_four_descriptors_in_one_message_arrive_in_order() {
    let (a, b) = FdTx::pair().unwrap();
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..64).map(|_| pipe()).collect();
    let writers: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
    a.put(b"sixty-four", &writers).unwrap();
    let got = b.get(64, 64).unwrap();
    assert_eq!(got.bytes, b"sixty-four");
    assert_eq!(got.fds.len(), 64);
    assert!(got.fds.iter().all(is_cloexec));
    for (i, fd) in got.fds.iter().enumerate() {
        nix::unistd::write(fd, &[i as u8]).unwrap();
    }
    for (i, (read, _)) in pipes.iter().enumerate() {
        let mut byte = [0u8; 1];
        assert_eq!(nix::unistd::read(read, &mut byte).unwrap(), 1);
        assert_eq!(byte[0], i as u8, "descriptor {i} is not where it was sent");
    }
}

#[test]
fn the_kernel_maximum_fits_and_one_more_is_refused() {
    crate::enough_descriptors(1024);
    let (a, b) = FdTx::pair().unwrap();
    let file = tempfile_fd();
    let many = vec![file.as_fd(); MAX_FDS];
    a.put(b"x", &many).unwrap();
    assert_eq!(b.get(1, MAX_FDS).unwrap().fds.len(), 253);
    let too_many = vec![file.as_fd(); MAX_FDS + 1];
    let err = a.put(b"x", &too_many).unwrap_err();
    assert!(
        matches!(err, Error::TooManyFds { count, max: MAX_FDS } if count == MAX_FDS + 1),
        "{err}"
    );
}

#[test]
fn one_descriptor_one_message_single_round_trip() {
    let (a, b) = FdTx::pair().unwrap();
    let (read, write) = pipe();
    a.put(b"1", &[write.as_fd()]).unwrap();
    drop(write);
    let got = b.get(1, 1).unwrap();
    assert_eq!(got.bytes, b"1");
    assert!(is_cloexec(&got.fds[0]));
    nix::unistd::write(&got.fds[0], b"k").unwrap();
    let mut byte = [0u8; 1];
    nix::unistd::read(&read, &mut byte).unwrap();
    assert_eq!(&byte, b"k");
}

#[test]
fn more_descriptors_than_expected_is_an_error_and_none_leak() {
    let (a, b) = FdTx::pair().unwrap();
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..3).map(|_| pipe()).collect();
    let writers: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
    a.put(b"three", &writers).unwrap();
    let (readers, writers): (Vec<OwnedFd>, Vec<OwnedFd>) = pipes.into_iter().unzip();
    drop(writers);
    let err = b.get(16, 1).unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert!(err.to_string().starts_with("control data truncated"), "{err}");
    // The one that arrived was closed with the error, the others were never installed.
    for read in &readers {
        assert!(all_writers_closed(read));
    }

    // Room for no descriptor at all: the same.
    let (read, write) = pipe();
    a.put(b"one", &[write.as_fd()]).unwrap();
    drop(write);
    assert!(matches!(b.get(16, 0), Err(Error::Protocol(_))));
    assert!(all_writers_closed(&read));
}

#[test]
fn send_errors_are_reported() {
    let (a, b) = FdTx::pair().unwrap();
    drop(b);
    let file = tempfile_fd();
    let err = a.put(b"lost", &[file.as_fd()]).unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[test]
fn bytes_are_not_cut_at_nul_and_timeouts_are_reported() {
    let (a, b) = FdTx::pair().unwrap();
    a.put(b"ab\0cd", &[]).unwrap();
    assert_eq!(b.get(16, 0).unwrap().bytes, b"ab\0cd");
    b.set_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(b.get(16, 0).unwrap_err().is_timeout());
}

#[test]
fn listen_creates_a_private_directory_and_socket() {
    let dir = TempDir::new("fdtx-listen");
    let nested = dir.path().join("a/b");
    let listener = FdTxListener::listen(&nested, None).unwrap();
    let name = listener.path().file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(name.len(), 16);
    assert!(name.bytes().all(|b| b.is_ascii_digit()), "{name}");
    let dir_mode = fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let meta = fs::symlink_metadata(listener.path()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // The path exists: refused, as the original's "file already exists".
    let err = FdTxListener::listen(&nested, Some(&name)).unwrap_err();
    let Error::Io { source, .. } = &err else { panic!("{err}") };
    assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);

    // close removes the file; an existing directory keeps its mode.
    let path = listener.path().to_owned();
    listener.close().unwrap();
    assert!(!path.exists());
    fs::set_permissions(&nested, fs::Permissions::from_mode(0o750)).unwrap();
    let again = FdTxListener::listen(&nested, Some("x")).unwrap();
    assert_eq!(fs::metadata(&nested).unwrap().permissions().mode() & 0o777, 0o750);
    drop(again);
    assert!(!nested.join("x").exists(), "dropping a listener removes its file");
}

#[test]
fn listen_reports_what_it_cannot_do() {
    let dir = TempDir::new("fdtx-errors");
    let file = dir.path().join("plain");
    fs::write(&file, "").unwrap();
    let err = FdTxListener::listen(&file, None).unwrap_err();
    assert!(err.to_string().contains("as a directory"), "{err}");
    let err = FdTxListener::listen(file.join("below"), None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let long = "n".repeat(120);
    let err = FdTxListener::listen(dir.path(), Some(&long)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let err = FdTxListener::listen(dir.path(), Some("a/b")).unwrap_err();
    assert!(
        matches!(&err, Error::BadArgument { what: "socket name", value, .. } if value == "a/b"),
        "{err:?}"
    );
}

#[test]
fn connect_gives_up_at_its_timeout() {
    let dir = TempDir::new("fdtx-connect");
    let path = dir.path().join("never.sock");
    let err = FdTx::connect(&path, Duration::from_millis(200)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.to_string(), format!("no such socket file: {}", path.display()));
    // A file that exists but where nobody listens (a stale socket): refused until the end.
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("stale.sock")).unwrap();
    drop(stale);
    let err = FdTx::connect(dir.path().join("stale.sock"), Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.to_string(), "connection attempt timed out");
}

/// Starts the Python fdtx peer with `args`.
fn run_python(args: &[&std::ffi::OsStr]) -> Peer {
    Peer::start(python3().arg(peer("fdtx.py")).args(args))
}

#[test]
fn the_broker_convention_from_a_python_sender() {
    let dir = TempDir::new("fdtx-py-send");
    let listener = FdTxListener::listen(dir.path(), Some("handover")).unwrap();
    let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("session{i}"))).collect();
    let mut args = vec![std::ffi::OsStr::new("send-broker"), listener.path().as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let child = run_python(&args);
    let tx = listener.accept(Some(T)).unwrap();
    tx.set_timeout(Some(T)).unwrap();
    // The new broker's loop: get(32, 2) until the peer closes.
    let mut keys = Vec::new();
    let mut rest = Vec::new();
    loop {
        match tx.get(32, 2) {
            Ok(got) if got.fds.is_empty() => rest.extend_from_slice(&got.bytes),
            Ok(got) => {
                assert_eq!(got.fds.len(), 1, "exactly one descriptor per session");
                keys.push(String::from_utf8(got.bytes).unwrap());
                write_star_cream(got.fds);
            }
            Err(e) if e.is_closed() => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(child.finish(PEER_LIMIT).status.success());
    assert_eq!(keys, ["1000000000000000", "1000000000000001", "1000000000000002"]);
    assert_eq!(rest, b"foo\0bar");
    for file in &files {
        assert_eq!(fs::read_to_string(file).unwrap(), "star cream");
    }
}

#[test]
fn the_broker_convention_to_a_python_receiver() {
    let dir = TempDir::new("fdtx-py-recv");
    let listener = FdTxListener::listen(dir.path(), None).unwrap();
    let child = run_python(&["recv".as_ref(), listener.path().as_os_str(), "3".as_ref()]);
    let tx = listener.accept(Some(T)).unwrap();
    let files: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("s{i}"))).collect();
    let opened: Vec<fs::File> = files.iter().map(|f| fs::File::create(f).unwrap()).collect();
    tx.put(b"1234567890123456", &[opened[0].as_fd()]).unwrap();
    tx.put(b"6543210987654321", &[opened[0].as_fd(), opened[1].as_fd()]).unwrap();
    tx.put(b"no descriptors", &[]).unwrap();
    tx.close();
    let end = child.finish(PEER_LIMIT);
    let out = end.stdout;
    assert!(end.status.success(), "{out}");
    let lines: Vec<serde_json::Value> =
        out.lines().filter(|l| *l != "eof").map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out.lines().last(), Some("eof"));
    assert_eq!(lines.len(), 3);
    let level = &lines[0]["sol_socket"];
    let rights = &lines[0]["scm_rights"];
    // One SOL_SOCKET/SCM_RIGHTS control message, with exactly the ints sent.
    assert_eq!(lines[0]["hex"], hex(b"1234567890123456"));
    assert_eq!(lines[0]["cmsgs"], serde_json::json!([[level, rights, 4]]));
    assert_eq!(lines[1]["hex"], hex(b"6543210987654321"));
    assert_eq!(lines[1]["cmsgs"], serde_json::json!([[level, rights, 8]]));
    assert_eq!(lines[2]["hex"], hex(b"no descriptors"));
    assert_eq!(lines[2]["cmsgs"], serde_json::json!([]));
    assert_eq!(fs::read_to_string(&files[0]).unwrap(), "star creamstar cream");
    assert_eq!(fs::read_to_string(&files[1]).unwrap(), "star cream");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
