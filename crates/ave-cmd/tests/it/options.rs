//! The options: output sinks, environment changes, window size, keeping the output.

use std::{
    fs,
    io::{self, Write},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use ave_cmd::{Error, ExitStatus, Options, Sink, WindowSize, run};

use crate::{TempDir, lines, shared};

/// A writer that sends every chunk it gets over a channel, with the time order intact.
struct Chunks(mpsc::Sender<Vec<u8>>);

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let _ = self.0.send(data.to_vec());
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_output_sink_gets_every_chunk_as_it_arrives() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // The command cannot finish before the test writes to the fifo, which it does only
    // once the sink has received the first line.
    let script = format!("echo first; read x < {}; echo second $x", fifo.display());
    let (tx, rx) = mpsc::channel();
    let runner =
        std::thread::spawn(move || run(["sh", "-c", &script], &Options::new().output(Chunks(tx))));
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first, b"first\r\n");
    fs::write(&fifo, "go\n").unwrap();
    let out = runner.join().unwrap().unwrap();
    assert_eq!(out.output, b"first\r\nsecond go\r\n");
    let mut streamed = first;
    streamed.extend(rx.iter().flatten());
    assert_eq!(streamed, out.output);
}

#[test]
fn a_shared_sink_and_the_output_agree() {
    let _guard = shared();
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let options = Options::new().output_sink(Sink::shared(buffer.clone()));
    let out = run(["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done"], &options).unwrap();
    assert_eq!(lines(&out.output), "line 1\nline 2\nline 3\nline 4\nline 5\n");
    assert_eq!(*buffer.lock().unwrap(), out.output);
}

#[test]
fn a_file_sink_receives_the_output() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let path = dir.path().join("out.log");
    let file = fs::File::create(&path).unwrap();
    let options = Options::new().output(file).keep_output(false);
    let out = run(["sh", "-c", "echo to the file; exit 4"], &options).unwrap();
    assert_eq!(out.status, ExitStatus::Exited(4));
    assert!(out.output.is_empty(), "keep_output(false) keeps nothing");
    assert_eq!(fs::read(&path).unwrap(), b"to the file\r\n");
}

/// A writer that fails after the first chunk.
struct Failing(usize);

impl Write for Failing {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0 += 1;
        if self.0 > 1 { Err(io::ErrorKind::BrokenPipe.into()) } else { Ok(data.len()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_sink_ends_the_command() {
    let _guard = shared();
    // `yes` writes forever; the sink fails on its second chunk.
    let error = run("yes", &Options::new().output(Failing(0))).unwrap_err();
    let Error::Sink { cmd, output, source } = &error else { panic!("{error:?}") };
    assert_eq!(cmd, &["yes"]);
    assert!(output.starts_with(b"y\r\n"));
    assert_eq!(source.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn environment_changes_reach_the_child() {
    let _guard = shared();
    let script = "echo ${AVE_TEST_VAR-unset} ${HOME-nohome}";
    let options = Options::new().env("AVE_TEST_VAR", "a value").env_remove("HOME");
    let out = run(["sh", "-c", script], &options).unwrap();
    assert_eq!(lines(&out.output), "a value nohome\n");

    let options = Options::new().env_clear().env("ONLY", "1");
    let out = run(["/usr/bin/env"], &options).unwrap();
    assert_eq!(lines(&out.output), "ONLY=1\n");
}

#[test]
fn the_inherited_environment_is_unchanged_by_default() {
    let _guard = shared();
    let out = run(["/usr/bin/env"], &Options::new()).unwrap();
    let mut got: Vec<String> = lines(&out.output).lines().map(str::to_owned).collect();
    let mut expected: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn the_program_is_looked_up_in_the_childs_path() {
    let _guard = shared();
    let error = run("sh -c true", &Options::new().env("PATH", "/nonexistent")).unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let dir = TempDir::new("cmd");
    let tool = dir.path().join("my-tool");
    fs::write(&tool, "#!/bin/sh\necho found me\n").unwrap();
    fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("/nonexistent:{}:/usr/bin:/bin", dir.path().display());
    let out = run("my-tool", &Options::new().env("PATH", path)).unwrap();
    assert_eq!(out.output, b"found me\r\n");
}

#[test]
fn the_window_size_is_80x24_unless_set() {
    let _guard = shared();
    let out = run("stty size", &Options::new()).unwrap();
    assert_eq!(lines(&out.output), "24 80\n");
    let out = run("stty size", &Options::new().window_size(50, 132)).unwrap();
    assert_eq!(lines(&out.output), "50 132\n");
    assert_eq!(WindowSize::default(), WindowSize { rows: 24, cols: 80 });
}
