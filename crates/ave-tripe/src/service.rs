//! Service providers (spec/tripe-admin.md section 6; tripe.py's `TripeServiceManager`).
//!
//! A [`ServiceProvider`] claims [`Service`]s on a connection and answers their jobs: each
//! `SVCJOB` runs its command's handler as a task, which may send INFO lines to the
//! submitter ([`Job::info`]) and ends with `SVCOK`, or `SVCFAIL` with the tokens of its
//! [`JobError`]. `SVCCANCEL` aborts the task and nothing more is sent for the job;
//! `SVCCLAIM` (a later version claimed elsewhere) removes the service. Every service gets
//! the standard `HELP` and `QUIT` commands unless it defines its own.
//! [`ServiceProvider::run`] returns once no services and no jobs are left, as tripe.py's
//! `runservices` does, or when asked to quit.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    panic::AssertUnwindSafe,
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::{
    sync::Notify,
    task::{AbortHandle, JoinSet},
};

use crate::{
    client::{Client, ServiceMessages},
    error::Error,
    message::ServiceMessage,
};

/// The future a service command's handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

type Handler = Arc<dyn Fn(Job, Vec<String>) -> HandlerFuture + Send + Sync>;

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
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    version: String,
    commands: BTreeMap<String, ServiceCommand>,
}

impl Service {
    /// A service with no commands yet (besides the standard `HELP` and `QUIT`).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Service {
        Service { name: name.into(), version: version.into(), commands: BTreeMap::new() }
    }

    /// Adds a command. Its name is matched without regard to case; it takes at least `min`
    /// and at most `max` arguments (`None`: no limit), described by the words of `usage`
    /// for `HELP` and syntax errors. The handler runs once per job, in its own task.
    pub fn command<F, Fut>(
        mut self,
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
        let name = name.to_lowercase();
        let handler: Handler = Arc::new(move |job, args| Box::pin(handler(job, args)));
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

/// A job being answered: what the handler of a service command gets.
#[derive(Debug, Clone)]
pub struct Job {
    client: Client,
    id: String,
    service: String,
    command: String,
    quit: Arc<QuitState>,
}

impl Job {
    /// The server's job id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The command, as the submitter spelled it.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The provider's connection, for other commands.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends an INFO line to the submitter (`SVCINFO JOBID TOKENS...`) and waits for the
    /// server to accept it.
    ///
    /// # Errors
    ///
    /// The server's failure (`unknown-jobid` if the job was cancelled meanwhile) or a
    /// connection error.
    pub async fn info<I, S>(&self, tokens: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.client.svcinfo(&self.id, tokens).await
    }

    /// Asks the provider to stop once this job has ended (what the standard `QUIT` does).
    pub fn request_quit(&self) {
        self.quit.request(Some(self.id.clone()));
    }
}

/// A shared "please stop" flag.
#[derive(Debug, Default)]
struct QuitState {
    /// `Some(None)`: stop now; `Some(Some(jobid))`: stop once that job has ended.
    requested: Mutex<Option<Option<String>>>,
    notify: Notify,
}

impl QuitState {
    fn request(&self, after_job: Option<String>) {
        let mut requested =
            self.requested.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if requested.is_none() || after_job.is_none() {
            *requested = Some(after_job);
        }
        self.notify.notify_one();
    }

    fn get(&self) -> Option<Option<String>> {
        self.requested.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Makes a running [`ServiceProvider::run`] return; see [`ServiceProvider::quit_handle`].
#[derive(Debug, Clone)]
pub struct QuitHandle(Arc<QuitState>);

impl QuitHandle {
    /// Stops the provider now; running jobs are abandoned.
    pub fn quit(&self) {
        self.0.request(None);
    }
}

/// Why [`ServiceProvider::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// No services and no jobs were left.
    Idle,
    /// A job (the standard `QUIT`) or a [`QuitHandle`] asked to stop.
    QuitRequested,
    /// The connection to the server is gone.
    ConnectionClosed,
}

/// Provides services on one connection.
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), ave_tripe::Error> {
/// use ave_tripe::{Client, JobError, Service, ServiceProvider};
///
/// let client = Client::connect("/var/run/tripesock").await?;
/// let mut provider = ServiceProvider::new(client)?;
/// provider
///     .claim(Service::new("greeter", "1.0").command("hello", 1, Some(1), "NAME", |job, args| {
///         async move {
///             job.info(["hello", args[0].as_str()]).await?;
///             Ok::<(), JobError>(())
///         }
///     }))
///     .await?;
/// let reason = provider.run().await;
/// println!("provider stopped: {reason:?}");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceProvider {
    client: Client,
    messages: ServiceMessages,
    services: HashMap<String, Arc<Service>>,
    jobs: HashMap<String, AbortHandle>,
    tasks: JoinSet<String>,
    quit: Arc<QuitState>,
}

impl ServiceProvider {
    /// A provider on `client`'s connection.
    ///
    /// # Errors
    ///
    /// [`Error::ProviderExists`] when the connection already has one.
    pub fn new(client: Client) -> Result<ServiceProvider, Error> {
        let messages = client.take_service_messages().ok_or(Error::ProviderExists)?;
        Ok(ServiceProvider {
            client,
            messages,
            services: HashMap::new(),
            jobs: HashMap::new(),
            tasks: JoinSet::new(),
            quit: Arc::default(),
        })
    }

    /// The provider's connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Claims a service (`SVCCLAIM NAME VERSION`) and answers its jobs from now on.
    ///
    /// # Errors
    ///
    /// The server's failure (`service-exists` when the same or a later version is provided
    /// elsewhere) or a connection error.
    pub async fn claim(&mut self, service: Service) -> Result<(), Error> {
        let service = service.with_standard_commands();
        self.client.svcclaim(&service.name, &service.version).await?;
        self.services.insert(service.name.to_lowercase(), Arc::new(service));
        Ok(())
    }

    /// Releases a service (`SVCRELEASE NAME`); its running jobs still finish.
    ///
    /// # Errors
    ///
    /// The server's failure or a connection error.
    pub async fn release(&mut self, name: &str) -> Result<(), Error> {
        self.client.svcrelease(name).await?;
        self.services.remove(&name.to_lowercase());
        Ok(())
    }

    /// The names of the services provided now.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = self.services.values().map(|s| s.name.clone()).collect();
        names.sort();
        names
    }

    /// The ids of the jobs running now.
    pub fn running_jobs(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// A handle that makes [`ServiceProvider::run`] return.
    pub fn quit_handle(&self) -> QuitHandle {
        QuitHandle(self.quit.clone())
    }

    /// Answers jobs until no services and no jobs are left, a quit is requested, or the
    /// connection goes away. Jobs still running when it returns are abandoned (their
    /// submitters get `provider-failed` once the connection closes).
    pub async fn run(&mut self) -> StopReason {
        let reason = loop {
            match self.quit.get() {
                Some(None) => break StopReason::QuitRequested,
                Some(Some(jobid)) if !self.jobs.contains_key(&jobid) => {
                    break StopReason::QuitRequested;
                }
                _ => {}
            }
            if self.services.is_empty() && self.jobs.is_empty() {
                break StopReason::Idle;
            }
            tokio::select! {
                message = self.messages.recv() => match message {
                    Some(message) => self.dispatch(message),
                    None => break StopReason::ConnectionClosed,
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(jobid) = done {
                        self.jobs.remove(&jobid);
                    }
                },
                () = self.quit.notify.notified() => {},
            }
        };
        self.tasks.abort_all();
        self.jobs.clear();
        tracing::debug!(?reason, "service provider stopped");
        reason
    }

    fn dispatch(&mut self, message: ServiceMessage) {
        match message {
            ServiceMessage::Job { jobid, service, command, args } => {
                self.start(jobid, service, command, args);
            }
            ServiceMessage::Cancel { jobid } => match self.jobs.remove(&jobid) {
                Some(job) => {
                    tracing::debug!(%jobid, "job cancelled");
                    job.abort();
                }
                None => tracing::debug!(%jobid, "cancel for a job that already ended"),
            },
            ServiceMessage::Claimed { service, version } => {
                tracing::info!(%service, %version, "service claimed by another provider");
                self.services.remove(&service.to_lowercase());
            }
        }
    }

    fn start(&mut self, jobid: String, service: String, command: String, args: Vec<String>) {
        if self.jobs.contains_key(&jobid) {
            tracing::warn!(%jobid, "server reused a live job id; ignored");
            return;
        }
        let job = Job {
            client: self.client.clone(),
            id: jobid.clone(),
            service: service.clone(),
            command: command.clone(),
            quit: self.quit.clone(),
        };
        let found = self.services.get(&service.to_lowercase()).cloned();
        let abort = self.tasks.spawn(run_job(job, found, command, args));
        self.jobs.insert(jobid, abort);
    }
}

/// One job, from its handler to its final `SVCOK` or `SVCFAIL`.
async fn run_job(
    job: Job,
    service: Option<Arc<Service>>,
    command: String,
    args: Vec<String>,
) -> String {
    let (outcome, service_name, found) = match &service {
        // The service was released or claimed away after the job was submitted.
        None => (Err(JobError::fail(["unknown-service", job.service.as_str()])), "", None),
        Some(service) => {
            let found = service.commands.get(&command.to_lowercase());
            let outcome = match found {
                None => Err(JobError::fail(["unknown-svc-command", command.as_str()])),
                Some(c) if !c.accepts(args.len()) => Err(JobError::Syntax),
                Some(c) => CatchUnwind((c.handler)(job.clone(), args)).await,
            };
            (outcome, service.name.as_str(), found)
        }
    };
    let sent = match &outcome {
        Ok(()) => job.client.svcok(&job.id).await,
        Err(error) => {
            tracing::debug!(jobid = %job.id, %error, "job failed");
            job.client.svcfail(&job.id, error.tokens(service_name, found)).await
        }
    };
    if let Err(error) = sent {
        // `unknown-jobid` when the job was cancelled while its answer was queued.
        tracing::debug!(jobid = %job.id, %error, "the server refused the job's final answer");
    }
    job.id
}

/// Turns a panic in a handler into [`JobError::Internal`] of class `panic`.
struct CatchUnwind(HandlerFuture);

impl Future for CatchUnwind {
    type Output = Result<(), JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(Err(JobError::internal("panic", panic_message(&*payload)))),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Connects to `path`, claims every service, and answers jobs until the provider stops
/// (tripe.py's `runservices`).
///
/// # Errors
///
/// [`Error::Connect`], or the failure of a claim.
pub async fn run_services(
    path: impl AsRef<Path>,
    services: impl IntoIterator<Item = Service>,
) -> Result<StopReason, Error> {
    let client = Client::connect(path).await?;
    let mut provider = ServiceProvider::new(client)?;
    for service in services {
        provider.claim(service).await?;
    }
    Ok(provider.run().await)
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

    #[test]
    fn panics_become_internal_errors() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let outcome = rt.block_on(CatchUnwind(Box::pin(async { panic!("boom {}", 1) })));
        assert_eq!(outcome, Err(JobError::internal("panic", "boom 1")));
    }
}
