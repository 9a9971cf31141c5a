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

use tokio::{sync::Notify, task::JoinSet};

use crate::{
    client::{Client, ServiceMessages},
    error::Error,
    message::ServiceMessage,
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

/// A job being answered: what the handler of a service command gets.
#[derive(Debug, Clone)]
pub struct Job {
    client: Client,
    id: String,
    service: String,
    command: String,
    quit: Arc<QuitState>,
    cancel: Arc<CancelState>,
    definition: Option<Arc<Service>>,
}

/// A job's cancellation flag.
#[derive(Debug, Default)]
struct CancelState {
    cancelled: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl CancelState {
    fn cancel(&self) {
        self.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How a job ended, reported once per job ([`ServiceProvider::on_job_end`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEnd {
    /// The handler succeeded and `SVCOK` was sent.
    Ok,
    /// The handler failed and `SVCFAIL` was sent with the error's tokens.
    Failed(JobError),
    /// The job was cancelled (`SVCCANCEL`, or its service was claimed away); the handler
    /// has returned and nothing was sent for it after the cancellation.
    Cancelled,
    /// The provider stopped while the job ran; its task was dropped.
    Abandoned,
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
    /// [`Error::JobCancelled`] once the job is cancelled (nothing is sent); the server's
    /// failure (`unknown-jobid` if the cancellation crossed the line) or a connection
    /// error.
    pub async fn info<I, S>(&self, tokens: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if self.is_cancelled() {
            return Err(Error::JobCancelled { jobid: self.id.clone() });
        }
        self.client.svcinfo(&self.id, tokens).await
    }

    /// Whether the job has been cancelled (`SVCCANCEL`, or its service was claimed away).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits until the job is cancelled (forever if it never is): race it against the
    /// work with `tokio::select!` to stop and clean up. Whatever the handler returns
    /// after a cancellation is not sent; the job ends as [`JobEnd::Cancelled`].
    pub async fn cancelled(&self) {
        loop {
            let notified = self.cancel.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Runs the service's command table for this job, as a provider does for a service
    /// without a [`Service::job_factory`]: the command named by [`Job::command`], its
    /// argument count checked.
    ///
    /// # Errors
    ///
    /// `unknown-svc-command`, [`JobError::Syntax`], or the handler's error.
    pub async fn run_command(&self, args: Vec<String>) -> Result<(), JobError> {
        let Some(service) = &self.definition else {
            return Err(JobError::fail(["unknown-service", self.service.as_str()]));
        };
        match service.commands.get(&self.command.to_lowercase()) {
            None => Err(JobError::fail(["unknown-svc-command", self.command.as_str()])),
            Some(c) if !c.accepts(args.len()) => Err(JobError::Syntax),
            Some(c) => CatchUnwind((c.handler)(self.clone(), args)).await,
        }
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
pub struct ServiceProvider {
    client: Client,
    messages: ServiceMessages,
    services: HashMap<String, Arc<Service>>,
    jobs: HashMap<String, Job>,
    tasks: JoinSet<(Job, JobEnd)>,
    quit: Arc<QuitState>,
    on_end: Option<EndHook>,
}

type EndHook = Box<dyn Fn(&Job, &JobEnd) + Send + Sync>;

impl fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("client", &self.client)
            .field("services", &self.services.keys())
            .field("jobs", &self.jobs.keys())
            .finish_non_exhaustive()
    }
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
            on_end: None,
        })
    }

    /// Calls `hook` once for every job when it ends, however it ends ([`JobEnd`]).
    pub fn on_job_end(&mut self, hook: impl Fn(&Job, &JobEnd) + Send + Sync + 'static) {
        self.on_end = Some(Box::new(hook));
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
                    if let Ok((job, end)) = done {
                        self.jobs.remove(&job.id);
                        self.report(&job, &end);
                    }
                },
                () = self.quit.notify.notified() => {},
            }
        };
        self.tasks.abort_all();
        for (_, job) in std::mem::take(&mut self.jobs) {
            self.report(&job, &JobEnd::Abandoned);
        }
        tracing::debug!(?reason, "service provider stopped");
        reason
    }

    fn report(&self, job: &Job, end: &JobEnd) {
        tracing::debug!(jobid = %job.id, service = %job.service, ?end, "job ended");
        if let Some(hook) = &self.on_end {
            hook(job, end);
        }
    }

    fn dispatch(&mut self, message: ServiceMessage) {
        match message {
            ServiceMessage::Job { jobid, service, command, args } => {
                self.start(jobid, service, command, args);
            }
            // The job stays tracked until its handler returns, so that its end is
            // reported once.
            ServiceMessage::Cancel { jobid } => match self.jobs.get(&jobid) {
                Some(job) => {
                    tracing::debug!(%jobid, "job cancelled");
                    job.cancel.cancel();
                }
                None => tracing::debug!(%jobid, "cancel for a job that already ended"),
            },
            ServiceMessage::Claimed { service, version } => {
                tracing::info!(%service, %version, "service claimed by another provider");
                let name = service.to_lowercase();
                self.services.remove(&name);
                for job in self.jobs.values() {
                    if job.service.to_lowercase() == name {
                        job.cancel.cancel();
                    }
                }
            }
        }
    }

    fn start(&mut self, jobid: String, service: String, command: String, args: Vec<String>) {
        if self.jobs.contains_key(&jobid) {
            tracing::warn!(%jobid, "server reused a live job id; ignored");
            return;
        }
        let definition = self.services.get(&service.to_lowercase()).cloned();
        let job = Job {
            client: self.client.clone(),
            id: jobid.clone(),
            service,
            command,
            quit: self.quit.clone(),
            cancel: Arc::default(),
            definition,
        };
        self.tasks.spawn(run_job(job.clone(), args));
        self.jobs.insert(jobid, job);
    }
}

/// One job, from its handler to its final `SVCOK` or `SVCFAIL` (none once cancelled).
async fn run_job(job: Job, args: Vec<String>) -> (Job, JobEnd) {
    let outcome = match job.definition.as_ref().and_then(|s| s.factory.clone()) {
        Some(factory) => CatchUnwind(factory(job.clone(), args)).await,
        None => job.run_command(args).await,
    };
    if job.is_cancelled() {
        return (job, JobEnd::Cancelled);
    }
    let (sent, end) = match outcome {
        Ok(()) => (job.client.svcok(&job.id).await, JobEnd::Ok),
        Err(error) => {
            tracing::debug!(jobid = %job.id, %error, "job failed");
            let (name, found) = match &job.definition {
                Some(service) => {
                    (service.name.as_str(), service.commands.get(&job.command.to_lowercase()))
                }
                None => ("", None),
            };
            (job.client.svcfail(&job.id, error.tokens(name, found)).await, JobEnd::Failed(error))
        }
    };
    if let Err(error) = sent {
        // `unknown-jobid` when the job was cancelled while its answer was queued.
        tracing::debug!(jobid = %job.id, %error, "the server refused the job's final answer");
    }
    (job, end)
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

/// A step of [`ServiceRunner`]: `init` runs before connecting.
type InitStep = Box<dyn FnOnce() -> Result<(), Error> + Send>;
/// `setup` runs once the services are claimed.
type SetupStep = Box<dyn for<'a> FnOnce(&'a mut ServiceProvider) -> SetupFuture<'a> + Send>;
/// The future of a `setup` step.
pub type SetupFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// A service program, as tripe.py's `runservices(socket, tab, init, setup, daemon)`: an
/// `init` step before connecting, the connection, a claim for every service of the table,
/// a `setup` step once they are claimed, then the jobs until the provider stops.
///
/// [`ServiceRunner::start`] does everything up to the jobs and returns the provider: by
/// then the services are up, which is when a program that daemonizes detaches, so that
/// its start script knows the service is there (the `echo_service` example does it with
/// ave-network's `Daemon`, which starts a child and returns once the child reports
/// that it is ready). [`ServiceRunner::run`] is `start` then [`ServiceProvider::run`].
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), ave_tripe::Error> {
/// use ave_tripe::{JobError, ServiceRunner, handler};
///
/// let reason = ServiceRunner::new("/var/run/tripesock")
///     .service(("echo", "1.0", [("shout", 0, None, "ARGS...", handler(|job, args: Vec<String>| {
///         async move {
///             job.info([args.join(" ")]).await?;
///             Ok::<(), JobError>(())
///         }
///     }))]))
///     .init(|| Ok(()))
///     .setup(|provider| Box::pin(async move {
///         provider.client().notify(["echo", "ready"]).await
///     }))
///     .run()
///     .await?;
/// println!("stopped: {reason:?}");
/// # Ok(()) }
/// ```
pub struct ServiceRunner {
    socket: std::path::PathBuf,
    services: Vec<Service>,
    init: Option<InitStep>,
    setup: Option<SetupStep>,
}

impl fmt::Debug for ServiceRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceRunner")
            .field("socket", &self.socket)
            .field("services", &self.services)
            .field("init", &self.init.is_some())
            .field("setup", &self.setup.is_some())
            .finish()
    }
}

impl ServiceRunner {
    /// A runner for the admin socket at `socket`, with no services yet.
    pub fn new(socket: impl AsRef<Path>) -> ServiceRunner {
        ServiceRunner {
            socket: socket.as_ref().to_path_buf(),
            services: Vec::new(),
            init: None,
            setup: None,
        }
    }

    /// Adds a service: a [`Service`], or a table row `(name, version, commands)`.
    pub fn service(mut self, service: impl Into<Service>) -> ServiceRunner {
        self.services.push(service.into());
        self
    }

    /// Adds every service of a table.
    pub fn services<S: Into<Service>>(mut self, table: impl IntoIterator<Item = S>) -> Self {
        self.services.extend(table.into_iter().map(Into::into));
        self
    }

    /// The step that runs first, before connecting (tripe.py's `init`).
    pub fn init(mut self, init: impl FnOnce() -> Result<(), Error> + Send + 'static) -> Self {
        self.init = Some(Box::new(init));
        self
    }

    /// The step that runs once every service is claimed, before the first job is
    /// answered (tripe.py's `setup`).
    pub fn setup<F>(mut self, setup: F) -> ServiceRunner
    where
        F: for<'a> FnOnce(&'a mut ServiceProvider) -> SetupFuture<'a> + Send + 'static,
    {
        self.setup = Some(Box::new(setup));
        self
    }

    /// Runs `init`, connects, claims every service and runs `setup`; returns the provider,
    /// ready for [`ServiceProvider::run`].
    ///
    /// # Errors
    ///
    /// What `init` or `setup` fails with, [`Error::Connect`], or the failure of a claim.
    pub async fn start(self) -> Result<ServiceProvider, Error> {
        if let Some(init) = self.init {
            init()?;
        }
        let client = Client::connect(&self.socket).await?;
        let mut provider = ServiceProvider::new(client)?;
        for service in self.services {
            provider.claim(service).await?;
        }
        if let Some(setup) = self.setup {
            setup(&mut provider).await?;
        }
        Ok(provider)
    }

    /// [`ServiceRunner::start`], then answers jobs until the provider stops.
    ///
    /// # Errors
    ///
    /// As [`ServiceRunner::start`].
    pub async fn run(self) -> Result<StopReason, Error> {
        Ok(self.start().await?.run().await)
    }
}

/// Connects to `path`, claims every service of `table`, and answers jobs until the
/// provider stops (tripe.py's `runservices` without `init`, `setup` and `daemon`; see
/// [`ServiceRunner`] for those).
///
/// # Errors
///
/// [`Error::Connect`], or the failure of a claim.
pub async fn run_services<S: Into<Service>>(
    path: impl AsRef<Path>,
    table: impl IntoIterator<Item = S>,
) -> Result<StopReason, Error> {
    ServiceRunner::new(path).services(table).run().await
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
