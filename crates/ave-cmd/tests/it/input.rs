//! `Background::output_async_with_input`: input from pipes, files and `/dev/null` reaches
//! the command, and its end is the terminal's end of file.

use std::{
    fs,
    io::Write,
    os::{fd::OwnedFd, unix::net::UnixStream},
    process::{Command, Stdio},
};

use ave_cmd::{ExitStatus, Input, Options, Output, run_bg};

use crate::{TempDir, lines, shared};

fn run_with(argv: &[&str], input: Input) -> Output {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let options = Options::new().timeout(std::time::Duration::from_secs(30));
    runtime.block_on(async {
        run_bg(argv.to_vec(), &options).unwrap().output_async_with_input(input).await.unwrap()
    })
}

#[test]
fn a_pipe_is_forwarded_and_its_end_is_an_end_of_file() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let copy = dir.path().join("copy");
    // A writer process on the other end of a pipe, which it closes when done.
    let mut writer =
        Command::new("printf").arg("one\\ntwo").stdout(Stdio::piped()).spawn().unwrap();
    let pipe = OwnedFd::from(writer.stdout.take().unwrap());
    let input = Input::new(pipe);
    assert!(!input.is_terminal());
    assert_eq!(input.window_size(), None);
    let script = format!("cat > '{}'", copy.display());
    let out = run_with(&["sh", "-c", &script], input);
    writer.wait().unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    // Exactly the input: the unfinished last line was handed over (one end-of-file
    // character), then the end of file (a second one); neither is data.
    assert_eq!(fs::read_to_string(&copy).unwrap(), "one\ntwo");
}

#[test]
fn a_socket_is_forwarded_as_it_comes() {
    let _guard = shared();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    ours.write_all(b"hello\n").unwrap();
    drop(ours);
    let out = run_with(&["sh", "-c", "read line; echo \"got $line\""], Input::new(theirs.into()));
    assert_eq!(lines(&out.output), "hello\ngot hello\n");
}

#[test]
fn files_and_dev_null_are_read_without_polling() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let path = dir.path().join("input");
    fs::write(&path, "a\nb\n").unwrap();
    let file = fs::File::open(&path).unwrap();
    let out = run_with(&["wc", "-l"], Input::new(file.into()));
    // The echo of the input, then the count.
    assert_eq!(lines(&out.output), "a\nb\n2\n");

    let null = fs::File::open("/dev/null").unwrap();
    let out = run_with(&["cat"], Input::new(null.into()));
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(out.output, b"");
}

/// A command that never reads its input still ends when it exits; input waiting to be
/// written is dropped.
#[test]
fn a_command_that_does_not_read_ends_the_forwarding() {
    let _guard = shared();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    // More than the terminal holds, so some of it is still pending when the command exits.
    ours.write_all(&vec![b'x'; 64 * 1024]).unwrap_or_default();
    let out = run_with(&["sh", "-c", "echo done"], Input::new(theirs.into()));
    assert_eq!(out.status, ExitStatus::Exited(0));
    // The terminal echoes whatever input reached it, around the command's own output.
    assert!(lines(&out.output).contains("done\n"));
}

#[test]
fn raw_mode_needs_a_terminal() {
    let null = fs::File::open("/dev/null").unwrap();
    let error = Input::new(null.into()).raw_mode().unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc_enotty()));
}

/// `ENOTTY`, without a dependency for one constant.
fn libc_enotty() -> i32 {
    25
}
