//! A command on a fresh pty, its output streamed live, ended by a timeout.
//!
//! Run it with `cargo run -p ave-cmd --example pty_run`. It ends by itself in about two
//! seconds: the command would sleep for a minute, and the timeout ends its whole session
//! (the background `sleep` included).

// An example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::{io, time::Duration};

use ave_cmd::{Error, ExitStatus, Options, run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A command that finishes: its merged output (stdout and stderr, in the order written)
    // and its exit status come back once it has ended.
    let done = run(["sh", "-c", "echo to stdout; echo to stderr >&2; exit 3"], &Options::new())?;
    assert_eq!(done.status, ExitStatus::Exited(3));
    print!("{}", done.text());
    println!("-> {}", done.status);

    // A command that would run for a minute: every chunk of its output is copied to our
    // stdout as soon as it is read, and after 1.5 s its whole session is ended.
    let script = "sleep 60 & for i in 1 2 3; do echo tick $i; sleep 0.3; done; sleep 60";
    let options = Options::new().timeout(Duration::from_millis(1500)).output(io::stdout());
    match run(["sh", "-c", script], &options) {
        Err(Error::Timeout { output, status, .. }) => {
            println!("-> timed out after {} bytes of output; {status}", output.len());
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    Ok(())
}
