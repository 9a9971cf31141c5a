//! [`ServiceRunner`] and [`run_services`]: a whole service program as tripe.py's
//! `runservices` runs one (an `init` step, the connection, the claims, a `setup` step,
//! then the jobs).

use std::{fmt, future::Future, path::Path, pin::Pin};

use crate::{
    client::Client,
    error::Error,
    service::{
        Service,
        provider::{ServiceProvider, StopReason},
    },
};

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
