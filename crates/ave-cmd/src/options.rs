//! `Options`: how a command is run, and `Sink`, where its output is copied to.

use std::{
    ffi::{OsStr, OsString},
    fmt,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

/// How a command is run: timeout, working directory, output sink, debug tracing,
/// environment changes and window size.
///
/// Built with chained setters from [`Options::new`] (or `Default`), which gives: no
/// timeout, the caller's working directory and environment, the output kept in memory and
/// not copied anywhere else, no debug tracing, an 80x24 window, and a 500 ms grace between
/// `SIGTERM` and `SIGKILL` when the command's session is ended.
///
/// Cloning is cheap; clones share their sinks.
///
/// ```
/// use std::time::Duration;
///
/// use ave_cmd::Options;
///
/// let options = Options::new()
///     .timeout(Duration::from_secs(30))
///     .cwd("/tmp")
///     .env("LC_ALL", "C")
///     .window_size(50, 132);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) timeout: Option<Duration>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) output: Option<Sink>,
    pub(crate) debug: Option<Sink>,
    pub(crate) env_clear: bool,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) window: WindowSize,
    pub(crate) kill_grace: Duration,
    pub(crate) linger: Duration,
    pub(crate) keep_output: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: None,
            cwd: None,
            output: None,
            debug: None,
            env_clear: false,
            env: Vec::new(),
            window: WindowSize::default(),
            kill_grace: Duration::from_millis(500),
            linger: Duration::from_secs(1),
            keep_output: true,
        }
    }
}

impl Options {
    /// The default options (see the type's documentation).
    pub fn new() -> Options {
        Options::default()
    }

    /// Ends the command's whole session if it runs longer than this, counted from the
    /// start; the run then fails with [`Error::Timeout`](crate::Error::Timeout). A zero
    /// duration means no timeout, as `timeout=0` in the original.
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Runs the command in this directory. The program is still looked up in `PATH` as
    /// given; a relative program path (`./x`) is relative to this directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Options {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Copies every chunk of output to this writer as soon as it is read (and flushes
    /// it), in addition to keeping it (see [`Options::keep_output`]). A file opened for
    /// writing is the original's `output_file`; `std::io::stdout()` streams the output.
    pub fn output(self, writer: impl Write + Send + 'static) -> Options {
        self.output_sink(Sink::new(writer))
    }

    /// Like [`Options::output`], with a sink the caller keeps a handle on.
    pub fn output_sink(mut self, sink: Sink) -> Options {
        self.output = Some(sink);
        self
    }

    /// Whether to keep the output in memory for [`Output::output`](crate::Output) and
    /// [`Error::Timeout`](crate::Error::Timeout) (the default). Turn it off when the
    /// output goes to a sink and may be large.
    pub fn keep_output(mut self, keep: bool) -> Options {
        self.keep_output = keep;
        self
    }

    /// Traces the run on stderr, as the original's `debug=True`: the command line before
    /// it starts, `flags: 0x..` for each readiness event of the terminal, and
    /// `read <n>` with the data for each read. Off by default.
    pub fn debug(mut self, on: bool) -> Options {
        self.debug = on.then(Sink::stderr);
        self
    }

    /// Like [`Options::debug`], writing the trace to this sink instead of stderr.
    pub fn debug_sink(mut self, sink: Sink) -> Options {
        self.debug = Some(sink);
        self
    }

    /// Sets an environment variable for the command (the rest of the environment is
    /// inherited unless [`Options::env_clear`] is used).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Options {
        self.env.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from the command's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Options {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the command with an empty environment plus the variables set with
    /// [`Options::env`] (before or after this call).
    pub fn env_clear(mut self) -> Options {
        self.env_clear = true;
        self.env.retain(|(_, value)| value.is_some());
        self
    }

    /// The terminal's window size in rows and columns (default 24 rows of 80 columns).
    pub fn window_size(mut self, rows: u16, cols: u16) -> Options {
        self.window = WindowSize { rows, cols };
        self
    }

    /// How long processes get between `SIGTERM` and `SIGKILL` when the session is ended
    /// (on timeout, [`Background::kill`](crate::Background::kill), or when the command
    /// exits and leaves processes behind). Default 500 ms; zero sends `SIGKILL` at once.
    pub fn kill_grace(mut self, grace: Duration) -> Options {
        self.kill_grace = grace;
        self
    }

    /// How long to keep reading after the command and the rest of its session are gone
    /// when the terminal still does not report the end of output, which happens when a
    /// process outside the session (a daemon that did not close its descriptors) holds
    /// it open. Default 1 s. Output that was written before the command exited is
    /// always read in full.
    pub fn linger(mut self, linger: Duration) -> Options {
        self.linger = linger;
        self
    }

    /// The environment the child gets, `NAME=value` entries.
    pub(crate) fn child_environment(&self) -> Vec<(OsString, OsString)> {
        let mut vars: Vec<(OsString, OsString)> =
            if self.env_clear { Vec::new() } else { std::env::vars_os().collect() };
        for (key, value) in &self.env {
            vars.retain(|(k, _)| k != key);
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        vars
    }
}

/// The size of the terminal window, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowSize {
    /// Rows (lines).
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for WindowSize {
    /// 24 rows of 80 columns.
    fn default() -> WindowSize {
        WindowSize { rows: 24, cols: 80 }
    }
}

/// A shared writer that receives output or debug traces as they happen.
///
/// Each chunk is written in full and flushed at once. Writing blocks the runner (in the
/// async API, the task), so sinks should be quick: a file, stdout, a `Vec<u8>`.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// use ave_cmd::Sink;
///
/// let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
/// let sink = Sink::shared(buffer.clone());
/// // ... run with `Options::new().output_sink(sink)`, then read `buffer`.
/// # let _ = sink;
/// ```
#[derive(Clone)]
pub struct Sink(Arc<Mutex<dyn Write + Send>>);

impl Sink {
    /// A sink that owns its writer.
    pub fn new(writer: impl Write + Send + 'static) -> Sink {
        Sink(Arc::new(Mutex::new(writer)))
    }

    /// A sink over a writer the caller also holds, to read it back afterwards.
    pub fn shared<W: Write + Send + 'static>(writer: Arc<Mutex<W>>) -> Sink {
        Sink(writer)
    }

    /// The process's standard error.
    pub fn stderr() -> Sink {
        Sink::new(io::stderr())
    }

    /// Writes one chunk in full and flushes it.
    pub(crate) fn write_chunk(&self, data: &[u8]) -> io::Result<()> {
        let mut writer = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        writer.write_all(data)?;
        writer.flush()
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sink")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(options: &Options) -> Vec<(String, String)> {
        options
            .child_environment()
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect()
    }

    #[test]
    fn environment_changes_apply_in_order() {
        let options = Options::new().env_clear().env("A", "1").env("B", "2").env("A", "3");
        assert_eq!(env_of(&options), [("B".into(), "2".into()), ("A".into(), "3".into())]);
        let options = Options::new().env("A", "1").env_clear().env_remove("A");
        assert!(env_of(&options).is_empty());
    }

    #[test]
    fn environment_is_inherited_by_default() {
        let inherited = std::env::vars_os().count();
        assert_eq!(Options::new().child_environment().len(), inherited);
        let path = std::env::var_os("PATH");
        let without = Options::new().env_remove("PATH").child_environment();
        assert_eq!(without.len(), inherited - usize::from(path.is_some()));
    }

    #[test]
    fn zero_timeout_means_none() {
        assert_eq!(Options::new().timeout(Duration::ZERO).timeout, None);
        let one = Duration::from_secs(1);
        assert_eq!(Options::new().timeout(one).timeout, Some(one));
    }

    #[test]
    fn shared_sink_collects_chunks() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink::shared(buffer.clone());
        sink.write_chunk(b"ab").unwrap();
        sink.clone().write_chunk(b"c").unwrap();
        assert_eq!(*buffer.lock().unwrap(), b"abc");
    }
}
