//! A TrIPE service program (tripe-service(7)), as a template to copy.
//!
//! ```text
//! cargo run -p ave-tripe --example echo_service -- --socket PATH [--daemon] [--pid-file PATH]
//! ```
//!
//! It claims the service `echo`, version `1.0`:
//!
//! - `shout ARGS...` answers one INFO line, the arguments joined by spaces, then OK;
//! - `slow` runs until it is cancelled (`BGCANCEL` from the submitter, or the submitter
//!   going away) and then reports the cancellation on stderr;
//! - `HELP` and `QUIT` are the standard ones (`QUIT` stops the program).
//!
//! With `--daemon` the program detaches once it is connected and its service is claimed,
//! so that a start script knows the service is up when the command returns. Daemonizing
//! is ave-network's `Daemon` (a pid file, next to the socket unless `--pid-file` says
//! where; the daemon keeps this program's stderr). ave-tripe itself does not depend on
//! ave-network (both are layer 2): its [`ServiceRunner`] splits the work at the point
//! where a program detaches ([`ServiceRunner::start`], then [`ServiceProvider::run`]),
//! and the program brings the daemonizing.

// A program prints its diagnostics.
#![allow(clippy::print_stderr)]

use std::{fs::File, os::fd::AsFd, path::PathBuf, process::ExitCode};

use ave_network::process::{ChildContext, Daemon, Target, TargetError};
use ave_tripe::{JobError, Service, ServiceProvider, ServiceRunner, StopReason};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("echo_service: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The command line: `--socket PATH [--daemon] [--pid-file PATH]`.
struct Options {
    socket: PathBuf,
    daemon: bool,
    pid_file: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args_os().skip(1);
    let (mut socket, mut daemon, mut pid_file) = (None, false, None);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--socket") => socket = args.next().map(PathBuf::from),
            Some("--daemon") => daemon = true,
            Some("--pid-file") => pid_file = args.next().map(PathBuf::from),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let usage = "usage: echo_service --socket PATH [--daemon] [--pid-file PATH]";
    let socket = socket.ok_or(usage)?;
    Ok(Options { socket, daemon, pid_file })
}

/// The service: `shout` and `slow`, with the standard `HELP` and `QUIT`.
fn echo() -> Service {
    Service::new("echo", "1.0")
        .command("shout", 0, None, "ARGS...", |job, args| async move {
            job.info([args.join(" ")]).await?;
            Ok::<(), JobError>(())
        })
        .command("slow", 0, Some(0), "", |job, _| async move {
            // The work would go here, raced against the cancellation.
            job.cancelled().await;
            eprintln!("echo_service: job {} (slow) cancelled", job.id());
            Ok::<(), JobError>(())
        })
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let options = options()?;
    let runner = ServiceRunner::new(&options.socket).service(echo());
    if !options.daemon {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let reason = runtime.block_on(runner.run())?;
        eprintln!("echo_service: stopped ({reason:?})");
        return Ok(exit_code(reason));
    }
    // No runtime and no other thread yet: the process may fork.
    let pid_file = match options.pid_file {
        Some(path) => path,
        None => options.socket.with_file_name("echo_service.pid"),
    };
    let stderr = || -> std::io::Result<File> {
        Ok(File::from(std::io::stderr().as_fd().try_clone_to_owned()?))
    };
    let daemon = Daemon::new(&pid_file, stderr()?)?.stderr(stderr()?).name("echo_service");
    // `start` returns once the daemon has connected and claimed its service.
    let pid = daemon.start(Detached { runner: Some(runner), runtime: None, provider: None })?;
    eprintln!("echo_service: serving echo 1.0 as daemon {pid} (pid file {})", pid_file.display());
    Ok(ExitCode::SUCCESS)
}

fn exit_code(reason: StopReason) -> ExitCode {
    match reason {
        StopReason::ConnectionClosed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// The daemon: it connects and claims while it initializes (so `Daemon::start` returns
/// only once the service is up), then answers jobs.
struct Detached {
    runner: Option<ServiceRunner>,
    runtime: Option<tokio::runtime::Runtime>,
    provider: Option<ServiceProvider>,
}

impl Target for Detached {
    fn initialize(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        child.initialize()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let runner = self.runner.take().ok_or("initialized twice")?;
        self.provider = Some(runtime.block_on(runner.start())?);
        self.runtime = Some(runtime);
        Ok(())
    }

    fn run(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        let (Some(runtime), Some(mut provider)) = (self.runtime.take(), self.provider.take())
        else {
            return Err("run before initialize".into());
        };
        let reason = runtime.block_on(provider.run());
        child.log(format_args!("stopped ({reason:?})"));
        if reason == StopReason::ConnectionClosed {
            child.set_exit_code(1);
        }
        Ok(())
    }
}
