//! A job being answered: the [`Job`] a handler gets (its INFO lines, its cancellation),
//! how it ends ([`JobEnd`]), and the task that runs one job from its handler to its final
//! `SVCOK` or `SVCFAIL`, with a handler's panic turned into an internal error.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::sync::Notify;

use crate::{
    client::Client,
    error::Error,
    service::{HandlerFuture, JobError, Service},
};

/// A job being answered: what the handler of a service command gets.
#[derive(Debug, Clone)]
pub struct Job {
    pub(crate) client: Client,
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) command: String,
    pub(crate) quit: Arc<QuitState>,
    pub(crate) cancel: Arc<CancelState>,
    pub(crate) definition: Option<Arc<Service>>,
}

/// A job's cancellation flag.
#[derive(Debug, Default)]
pub(crate) struct CancelState {
    cancelled: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl CancelState {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How a job ended, reported once per job ([`ServiceProvider::on_job_end`](crate::ServiceProvider::on_job_end)).
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
pub(crate) struct QuitState {
    /// `Some(None)`: stop now; `Some(Some(jobid))`: stop once that job has ended.
    requested: Mutex<Option<Option<String>>>,
    pub(crate) notify: Notify,
}

impl QuitState {
    pub(crate) fn request(&self, after_job: Option<String>) {
        let mut requested =
            self.requested.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if requested.is_none() || after_job.is_none() {
            *requested = Some(after_job);
        }
        self.notify.notify_one();
    }

    pub(crate) fn get(&self) -> Option<Option<String>> {
        self.requested.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// One job, from its handler to its final `SVCOK` or `SVCFAIL` (none once cancelled).
pub(crate) async fn run_job(job: Job, args: Vec<String>) -> (Job, JobEnd) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_internal_errors() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let outcome = rt.block_on(CatchUnwind(Box::pin(async { panic!("boom {}", 1) })));
        assert_eq!(outcome, Err(JobError::internal("panic", "boom 1")));
    }
}
