//! The [`ServiceProvider`]: the services claimed on one connection, the jobs running for
//! them, and the loop that starts, cancels and reports jobs until it stops
//! ([`StopReason`], [`QuitHandle`]).

use std::{collections::HashMap, fmt, sync::Arc};

use tokio::task::JoinSet;

use crate::{
    client::{Client, ServiceMessages},
    error::Error,
    message::ServiceMessage,
    service::{
        Service,
        job::{Job, JobEnd, QuitState, run_job},
    },
};

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
