//! Service providers (spec/tripe-admin.md section 6; tripe.py's `TripeServiceManager`).
//!
//! A [`ServiceProvider`] claims [`Service`]s on a connection and answers their jobs: each
//! `SVCJOB` runs its command's handler as a task, which may send INFO lines to the
//! submitter ([`Job::info`]) and ends with `SVCOK`, or `SVCFAIL` with the tokens of its
//! [`JobError`]. `SVCCANCEL` reaches the handler as a cancellation it can observe
//! ([`Job::cancelled`], [`Job::is_cancelled`]) and clean up after; nothing more is sent
//! for the job, and its end is reported once ([`JobEnd`], [`ServiceProvider::on_job_end`]).
//! `SVCCLAIM` (a later version claimed elsewhere) removes the service and cancels its
//! jobs the same way. Every service gets the standard `HELP` and `QUIT` commands unless it
//! defines its own, and may make its own jobs ([`Service::job_factory`], tripe.py's
//! overridable `job()`). [`ServiceProvider::run`] returns once no services and no jobs are
//! left, as tripe.py's `runservices` does, or when asked to quit. [`ServiceRunner`] (and
//! [`run_services`]) is tripe.py's `runservices(socket, tab, init, setup, daemon)`: an
//! `init` step, the connection, the claims, a `setup` step, then the jobs; a service
//! program that daemonizes does it between [`ServiceRunner::start`] and
//! [`ServiceProvider::run`] (see the `echo_service` example, built on ave-network's
//! `Daemon`).
//!
//! This file declares services ([`Service`], its commands, [`JobError`]); `job.rs` holds
//! the [`Job`] a handler gets and the task that runs it, `provider.rs` the
//! [`ServiceProvider`] and its loop, `runner.rs` the [`ServiceRunner`]. A service and a
//! job name each other (a handler takes a [`Job`], and a job runs its [`Service`]'s
//! command), the one import cycle of this folder; the provider and the runner only look
//! down.

mod job;
mod provider;
mod runner;

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc};

pub use crate::service::{
    job::{Job, JobEnd},
    provider::{QuitHandle, ServiceProvider, StopReason},
    runner::{ServiceRunner, SetupFuture, run_services},
};

/// The future a service command's handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// A service command's handler, boxed: what [`handler`] makes, for service tables.
pub type Handler = Arc<dyn Fn(Job, Vec<String>) -> HandlerFuture + Send + Sync>;

/// Boxes a handler for a service table ([`Service::from_table`]).
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Job, Vec<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(move |job, args| Box::pin(f(job, args)))
}

/// One row of a service table: `(name, min, max, usage, handler)`, as the original's
/// `(MIN, MAX, USAGE, FUNC)` under its name.
pub type CommandRow<'a> = (&'a str, usize, Option<usize>, &'a str, Handler);

/// Why a job failed; it becomes the tokens of `SVCFAIL` (tripe.py's conventions).
///
/// Any error type converts into [`JobError::Internal`] with `?`, which is why this type
/// does not implement `std::error::Error` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// Fail with these tokens (tripe.py's `TripeJobError`).
    Fail(Vec<String>),
    /// The arguments do not fit the command: `bad-svc-syntax SERVICE COMMAND USAGE...`
    /// (tripe.py's `TripeSyntaxError`).
    Syntax,
    /// Anything else went wrong: `svc-internal-error CLASS MESSAGE`.
    Internal {
        /// What kind of error (the error type's name, or `panic`).
        class: String,
        /// Its message.
        message: String,
    },
}

impl JobError {
    /// A failure with these tokens.
    pub fn fail<I, S>(tokens: I) -> JobError
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        JobError::Fail(tokens.into_iter().map(|t| t.as_ref().to_owned()).collect())
    }

    /// An internal error of the given class.
    pub fn internal(class: impl Into<String>, message: impl Into<String>) -> JobError {
        JobError::Internal { class: class.into(), message: message.into() }
    }

    /// The tokens of the `SVCFAIL` line for this error.
    fn tokens(&self, service: &str, command: Option<&ServiceCommand>) -> Vec<String> {
        match self {
            JobError::Fail(tokens) => tokens.clone(),
            JobError::Syntax => {
                let mut tokens = vec!["bad-svc-syntax".to_owned(), service.to_owned()];
                if let Some(command) = command {
                    tokens.push(command.name.clone());
                    tokens.extend(command.usage.iter().cloned());
                }
                tokens
            }
            JobError::Internal { class, message } => {
                vec!["svc-internal-error".to_owned(), class.clone(), message.clone()]
            }
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Fail(tokens) => write!(f, "job failed: {}", crate::words::join_words(tokens)),
            JobError::Syntax => f.write_str("bad job syntax"),
            JobError::Internal { class, message } => write!(f, "internal error {class}: {message}"),
        }
    }
}

impl<E> From<E> for JobError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> JobError {
        let full = std::any::type_name::<E>();
        let base = full.split('<').next().unwrap_or(full);
        let class = base.rsplit("::").next().unwrap_or(base);
        JobError::internal(class, error.to_string())
    }
}

/// One command of a service: its name, argument count bounds, usage words and handler.
#[derive(Clone)]
pub(crate) struct ServiceCommand {
    name: String,
    min: usize,
    max: Option<usize>,
    usage: Vec<String>,
    handler: Handler,
}

impl fmt::Debug for ServiceCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCommand")
            .field("name", &self.name)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl ServiceCommand {
    fn accepts(&self, count: usize) -> bool {
        count >= self.min && self.max.is_none_or(|max| count <= max)
    }
}

/// A service: a name, a version and its commands.
///
/// # Examples
///
/// ```
/// use ave_tripe::{JobError, Service};
///
/// let service = Service::new("echo", "1.0.0").command(
///     "say",
///     1,
///     None,
///     "WORD...",
///     |job, args| async move {
///         for word in args {
///             job.info([word]).await?;
///         }
///         Ok::<(), JobError>(())
///     },
/// );
/// assert_eq!(service.name(), "echo");
/// ```
#[derive(Clone)]
pub struct Service {
    name: String,
    version: String,
    commands: BTreeMap<String, ServiceCommand>,
    factory: Option<Handler>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("commands", &self.commands)
            .field("factory", &self.factory.is_some())
            .finish()
    }
}

impl<'a, I> From<(&'a str, &'a str, I)> for Service
where
    I: IntoIterator<Item = CommandRow<'a>>,
{
    /// A service from a table row `(name, version, commands)`.
    fn from((name, version, commands): (&'a str, &'a str, I)) -> Service {
        Service::from_table(name, version, commands)
    }
}

impl Service {
    /// A service with no commands yet (besides the standard `HELP` and `QUIT`).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Service {
        Service {
            name: name.into(),
            version: version.into(),
            commands: BTreeMap::new(),
            factory: None,
        }
    }

    /// A service declared as data, as the original's `(NAME, VERSION, COMMANDS)` tuples.
    ///
    /// # Examples
    ///
    /// ```
    /// use ave_tripe::{JobError, Service, handler};
    ///
    /// let service = Service::from_table(
    ///     "echo",
    ///     "1.0",
    ///     [("shout", 0, None, "ARGS...", handler(|job, args: Vec<String>| async move {
    ///         job.info([args.join(" ")]).await?;
    ///         Ok::<(), JobError>(())
    ///     }))],
    /// );
    /// assert_eq!(service.commands(), ["shout"]);
    /// ```
    pub fn from_table<'a>(
        name: &str,
        version: &str,
        commands: impl IntoIterator<Item = CommandRow<'a>>,
    ) -> Service {
        let mut service = Service::new(name, version);
        for (command, min, max, usage, handler) in commands {
            service = service.command_handler(command, min, max, usage, handler);
        }
        service
    }

    /// Makes this service's jobs with `factory` instead of the command table (tripe.py's
    /// overridable `job()`): it gets every job of the service, whatever the command, and
    /// its result is the job's answer. [`Job::run_command`] runs the table's command from
    /// inside it, so a factory can wrap, log, or route jobs its own way.
    pub fn job_factory<F, Fut>(mut self, factory: F) -> Service
    where
        F: Fn(Job, Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.factory = Some(handler(factory));
        self
    }

    /// The names of the commands, sorted (the standard `help` and `quit` are added when
    /// the service is claimed).
    pub fn commands(&self) -> Vec<&str> {
        self.commands.keys().map(String::as_str).collect()
    }

    /// Adds a command. Its name is matched without regard to case; it takes at least `min`
    /// and at most `max` arguments (`None`: no limit), described by the words of `usage`
    /// for `HELP` and syntax errors. The handler runs once per job, in its own task.
    pub fn command<F, Fut>(
        self,
        name: &str,
        min: usize,
        max: Option<usize>,
        usage: &str,
        handler: F,
    ) -> Service
    where
        F: Fn(Job, Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.command_handler(name, min, max, usage, crate::service::handler(handler))
    }

    /// [`Service::command`] with a boxed handler.
    pub fn command_handler(
        mut self,
        name: &str,
        min: usize,
        max: Option<usize>,
        usage: &str,
        handler: Handler,
    ) -> Service {
        let name = name.to_lowercase();
        let usage = usage.split_whitespace().map(str::to_owned).collect();
        self.commands.insert(name.clone(), ServiceCommand { name, min, max, usage, handler });
        self
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Adds `HELP` and `QUIT` where the service defines none (tripe-service(7)).
    fn with_standard_commands(mut self) -> Service {
        let mut listing: Vec<(String, Vec<String>)> =
            self.commands.values().map(|c| (c.name.clone(), c.usage.clone())).collect();
        for standard in ["help", "quit"] {
            if !self.commands.contains_key(standard) {
                listing.push((standard.to_owned(), Vec::new()));
            }
        }
        listing.sort();
        let listing = Arc::new(listing);
        if !self.commands.contains_key("help") {
            self = self.command("help", 0, Some(0), "", move |job, _| {
                let listing = listing.clone();
                async move {
                    for (name, usage) in listing.iter() {
                        job.info(std::iter::once(name).chain(usage)).await?;
                    }
                    Ok(())
                }
            });
        }
        if !self.commands.contains_key("quit") {
            let name = self.name.clone();
            self = self.command("quit", 0, Some(0), "", move |job, _| {
                let name = name.clone();
                async move {
                    job.client().notify(["svc-quit", name.as_str(), "admin-request"]).await?;
                    job.request_quit();
                    Ok(())
                }
            });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_errors_become_tripe_py_tokens() {
        let command = ServiceCommand {
            name: "info".into(),
            min: 1,
            max: Some(2),
            usage: vec!["PEER".into(), "[KEY]".into()],
            handler: Arc::new(|_, _| Box::pin(async { Ok(()) })),
        };
        assert_eq!(
            JobError::Syntax.tokens("conn", Some(&command)),
            ["bad-svc-syntax", "conn", "info", "PEER", "[KEY]"]
        );
        assert_eq!(
            JobError::fail(["bad-time-spec", "x"]).tokens("conn", None),
            ["bad-time-spec", "x"]
        );
        let io: JobError = std::io::Error::other("disk on fire").into();
        assert_eq!(io.tokens("conn", None), ["svc-internal-error", "Error", "disk on fire"]);
        assert!(command.accepts(1) && command.accepts(2));
        assert!(!command.accepts(0) && !command.accepts(3));
    }

    #[test]
    fn standard_commands_are_added_once() {
        let service = Service::new("x", "1")
            .command("QUIT", 0, Some(0), "", |_, _| async { Ok(()) })
            .with_standard_commands();
        let names: Vec<&str> = service.commands.keys().map(String::as_str).collect();
        assert_eq!(names, ["help", "quit"]);
    }
}
