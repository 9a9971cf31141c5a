//! `ave run`: run a command on a fresh pty.
//!
//! Exit codes (also in `ave run --help`): the command's own; 128+N if signal N killed it;
//! 124 if it timed out (once its whole session is gone); 127 if it cannot be found; 126 if
//! it cannot be executed; 125 if `ave run` itself failed (working directory, output file,
//! pty allocation); 2 on a usage error; and 128+N if `ave run` got a terminating signal N,
//! which ends the command's session first (see [`terminating_signals`]). A closed stdout
//! ends the command and exits 141 (SIGPIPE's 128+13), as the command itself would have.
//!
//! `ave run` starts a [`Guard`] first, which ends the command's session and restores the
//! terminal if `ave run` dies by a signal it cannot handle (`SIGKILL`, a fault).

use std::{
    fs::File,
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use ave::cmd::{Argv, Error, ExitStatus, Guard, Input, Options, run_bg};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

use crate::duration::{nonzero, parse_duration};

/// Arguments of `ave run`.
///
/// Stdin is forwarded to the command's terminal, which echoes it as a terminal does; its
/// end is the terminal's end-of-file character, so `echo hi | ave run -- cat` ends. A
/// terminal stdin is raw while the command runs and lends it its window size.
///
/// Options come before the command: the first word that is not an option (or whatever
/// follows `--`) is the command, and every word after it is the command's. A misspelt
/// option before the command is therefore a usage error, not a program to run.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) struct Args {
    /// End the command's whole session after this long (exit 124): seconds (`1.5`) or a
    /// number with a unit (`500ms`, `2m`, `1h`). 0: no timeout.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, allow_hyphen_values = true)]
    timeout: Option<Duration>,
    /// Working directory of the command.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Also write every chunk of output to this file as it arrives.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Trace the runner's poll events and reads on stderr.
    #[arg(long)]
    debug: bool,
    /// Print one JSON object at the end instead of streaming the output. The whole output
    /// is held in memory until then: for large outputs, stream it (with `--output FILE`).
    #[arg(long)]
    json: bool,
    /// The command and its arguments (no shell). Put `--` before a command that starts
    /// with `-`.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    cmd: Vec<String>,
}

/// Input and exit codes, for `--help`.
const EXIT_CODES_HELP: &str = "\
Input: stdin is forwarded to the command's terminal, which echoes it as terminals do; the
end of stdin is the terminal's end-of-file character (Ctrl-D), so `echo hi | ave run -- cat`
ends. A terminal stdin is raw while the command runs (keys, Ctrl-C included, go to the
command) and its window size, changes included, is the command's. A background job
(`ave run CMD &`) leaves the terminal alone: no input, no raw mode.

Exit codes:
  N        the command exited with code N
  128+N    the command was killed by signal N, or `ave run` got the terminating signal N
           (its command's whole session is ended first)
  124      the timeout expired (reported once the command's whole session is gone)
  125      `ave run` itself failed (working directory, output file, pty)
  126      the command cannot be executed
  127      the command cannot be found
  141      stdout was closed (128 + SIGPIPE); the command's session is ended
  2        usage error";

/// `ave run` failed itself (not the command).
const EXIT_OWN_FAILURE: u8 = 125;
const EXIT_CANNOT_EXECUTE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;
const EXIT_TIMEOUT: u8 = 124;
const EXIT_BROKEN_PIPE: u8 = 128 + 13;

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    // First, while the process has one thread: the helper that ends the command's session
    // (and restores the terminal) if `ave run` is killed by a signal it cannot handle.
    let mut guard = match Guard::start() {
        Ok(guard) => Some(guard),
        Err(error) => {
            tracing::warn!(%error, "no guard: SIGKILL of `ave run` would leave the command's session");
            None
        }
    };
    let argv = Argv::new(args.cmd);
    let mut options = Options::new().debug(args.debug);
    if let Some(timeout) = args.timeout.and_then(nonzero) {
        options = options.timeout(timeout);
    }
    if let Some(dir) = &args.cwd {
        options = options.cwd(dir);
    }
    let file = match &args.output {
        Some(path) => match File::create(path) {
            Ok(file) => Some(file),
            Err(error) => {
                eprintln!("ave run: error: cannot create {}: {error}", path.display());
                return Ok(ExitCode::from(EXIT_OWN_FAILURE));
            }
        },
        None => None,
    };
    options = if args.json {
        // Keep the output for the JSON object; copy it to the file as it comes.
        match file {
            Some(file) => options.output(file),
            None => options,
        }
    } else {
        options.output(Tee { stdout: io::stdout(), file }).keep_output(false)
    };

    // Stdin is forwarded to the command's terminal; a terminal stdin lends its window size
    // and is raw for the run (restored when `raw` is dropped, on every way out of here).
    // A background job (`ave run ... &`) leaves its terminal to the foreground job: no
    // input, no raw mode (either would stop `ave run` with SIGTTIN or SIGTTOU).
    let input = Input::stdin().and_then(|input| {
        if input.is_background() {
            tracing::debug!("a background job: stdin is left alone");
            Err(std::io::ErrorKind::ResourceBusy.into())
        } else {
            Ok(input)
        }
    });
    if let Some(size) = input.as_ref().ok().and_then(Input::window_size) {
        options = options.window_size(size.rows, size.cols);
    }
    let raw = match &input {
        Ok(input) if input.is_terminal() => match input.raw_mode() {
            Ok(raw) => Some(raw),
            Err(error) => {
                tracing::warn!(%error, "cannot put the terminal in raw mode");
                None
            }
        },
        _ => None,
    };

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        // Listen before the command starts, so no signal finds the default action.
        let mut signals = listen(&terminating_signals())?;
        let run = async {
            let background = run_bg(argv.clone(), &options)?;
            if let Some(guard) = &mut guard
                && let Err(error) = guard.watch(background.pid())
            {
                tracing::warn!(%error, "the guard is gone");
            }
            match input {
                Ok(input) => background.output_async_with_input(input).await,
                Err(_) => background.output_async().await,
            }
        };
        // Dropping the run on a signal kills the command's whole session.
        anyhow::Ok(tokio::select! {
            result = run => Outcome::Ran(result),
            Some(signal) = signals.recv() => Outcome::Signal(signal),
        })
    });
    // The session has been ended (or the command never started): dismiss the guard.
    drop(guard);
    drop(raw);
    let outcome = outcome?;
    let duration = started.elapsed();
    let result = match outcome {
        Outcome::Ran(result) => result,
        Outcome::Signal(signal) => {
            tracing::info!(signal, "interrupted; the command's session was ended");
            return Ok(ExitCode::from(128 + signal));
        }
    };
    Ok(ExitCode::from(if args.json {
        report_json(&argv, result, duration)
    } else {
        report(result)
    }))
}

/// The signals after which `ave run` ends the command's whole session and exits 128+N:
/// every signal whose default action ends a process and that comes from outside:
/// `SIGHUP`, `SIGINT`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2`, `SIGPIPE`, `SIGALRM`, `SIGTERM`,
/// `SIGSTKFLT`, `SIGXCPU`, `SIGXFSZ`, `SIGVTALRM`, `SIGPROF`, `SIGIO`, `SIGPWR` and the
/// real-time signals.
///
/// Left out: `SIGKILL` and `SIGSTOP` cannot be caught; `SIGSEGV`, `SIGBUS`, `SIGILL`,
/// `SIGFPE`, `SIGTRAP`, `SIGSYS` and `SIGABRT` report a fault of `ave run` itself, where
/// running more code is not safe. When one of those ends `ave run`, the command's session
/// still gets the kernel's `SIGHUP` as its terminal hangs up.
fn terminating_signals() -> Vec<i32> {
    use nix::libc;
    let mut signals = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
    ];
    signals.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    signals
}

/// Handles `signals` from now on; the receiver yields each one's number as it arrives.
///
/// # Errors
///
/// A handler could not be installed.
fn listen(signals: &[i32]) -> io::Result<tokio::sync::mpsc::UnboundedReceiver<u8>> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    for &number in signals {
        let mut stream = signal(SignalKind::from_raw(number))?;
        let sender = sender.clone();
        let number = u8::try_from(number).map_err(io::Error::other)?;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if sender.send(number).is_err() {
                    break;
                }
            }
        });
    }
    Ok(receiver)
}

enum Outcome {
    Ran(Result<ave::cmd::Output, Error>),
    Signal(u8),
}

/// The exit code for a status: the code, or 128 + the signal.
fn status_code(status: ExitStatus) -> u8 {
    u8::try_from(status.shell_code()).unwrap_or(u8::MAX)
}

/// Streaming mode: the output has been written; say what went wrong, if anything.
fn report(result: Result<ave::cmd::Output, Error>) -> u8 {
    match result {
        Ok(output) => status_code(output.status),
        Err(error) => {
            let code = error_code(&error);
            if code != EXIT_BROKEN_PIPE {
                eprintln!("ave run: error: {}", describe(&error));
            }
            code
        }
    }
}

/// JSON mode: one object with the output, the exit, whether it timed out and how long it
/// took (and `error` when the command did not run to its end for another reason).
fn report_json(argv: &Argv, result: Result<ave::cmd::Output, Error>, duration: Duration) -> u8 {
    let (output, exit, timed_out, error, code) = match result {
        Ok(out) => {
            let code = status_code(out.status);
            (out.output, exit_json(out.status), false, None, code)
        }
        Err(Error::Timeout { output, status, .. }) => {
            (output, exit_json(status), true, None, EXIT_TIMEOUT)
        }
        Err(error) => {
            let code = error_code(&error);
            let exit = json!({ "code": code });
            (error.output().to_vec(), exit, false, Some(describe(&error)), code)
        }
    };
    let mut object = json!({
        "output": String::from_utf8_lossy(&output),
        "exit": exit,
        "timed_out": timed_out,
        "duration_s": duration.as_secs_f64(),
    });
    if let Some(error) = error {
        object["error"] = Value::String(error);
    }
    tracing::debug!(cmd = %argv, "finished");
    println!("{object}");
    code
}

fn exit_json(status: ExitStatus) -> Value {
    match status {
        ExitStatus::Exited(code) => json!({ "code": code }),
        ExitStatus::Signaled(signal) => json!({ "signal": signal }),
    }
}

fn error_code(error: &Error) -> u8 {
    match error {
        Error::Timeout { .. } => EXIT_TIMEOUT,
        Error::Exec { .. } if error.is_not_found() => EXIT_NOT_FOUND,
        Error::Exec { .. } => EXIT_CANNOT_EXECUTE,
        Error::Sink { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => {
            EXIT_BROKEN_PIPE
        }
        _ => EXIT_OWN_FAILURE,
    }
}

/// The error with its causes, for stderr.
fn describe(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Error::Timeout { cmd, .. } = error {
        text = format!("`{}` timed out; its session was ended", cmd.join(" "));
    }
    text
}

/// Streams output to stdout and, optionally, a file.
struct Tee {
    stdout: io::Stdout,
    file: Option<File>,
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.stdout.write_all(data)?;
        if let Some(file) = &mut self.file {
            file.write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()?;
        if let Some(file) = &mut self.file {
            file.flush()?;
        }
        Ok(())
    }
}
