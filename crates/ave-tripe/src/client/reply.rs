//! One command's answer: the [`Reply`] a caller reads, and the dispatcher's side of it
//! (the queued `Request`, the lines it hands over and how it ends). The reply's line
//! buffer is bounded: when it is full, the dispatcher waits, and so does the server.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::{
    error::{Disconnect, Error, Failure},
    format::format_command,
};

/// The answer to one command: its INFO lines as they arrive, then OK or a failure.
///
/// For a background job the `BGINFO`/`BGOK`/`BGFAIL` lines arrive here the same way, after
/// the server detaches it.
///
/// This is the streaming form: [`Reply::next_info`] hands over each line as the server
/// sends it, and at most [`ClientBuilder::reply_capacity`](crate::ClientBuilder::reply_capacity) lines wait for it, however long
/// the command runs ([`Reply::collect`] is the convenience that keeps them all).
#[derive(Debug)]
pub struct Reply {
    keyword: String,
    lines: mpsc::Receiver<Progress>,
    end: oneshot::Receiver<End>,
    pub(crate) tag: Option<String>,
    detached: bool,
    done: bool,
    requests: mpsc::WeakUnboundedSender<Request>,
    abandoned: Arc<Notify>,
    capacity: usize,
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.done {
            // The dispatcher may be waiting only for this job before it closes.
            self.abandoned.notify_one();
        }
    }
}

impl Reply {
    /// The command keyword, upper case.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The background tag: the one this client chose, or the one in `BGDETACH`.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// Whether the server has detached the command into the background (as far as this
    /// reply has read).
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// The next INFO line's words; `None` once the server said OK.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when the server said FAIL, [`Error::ConnectionLost`] or
    /// [`Error::Closed`] when the connection went away first, [`Error::Cancelled`] when the
    /// background job was cancelled. After the end, it keeps returning `Ok(None)`.
    pub async fn next_info(&mut self) -> Result<Option<Vec<String>>, Error> {
        while !self.done {
            match self.lines.recv().await {
                Some(Progress::Info(words)) => return Ok(Some(words)),
                Some(Progress::Detached(tag)) => {
                    self.detached = true;
                    self.tag = Some(tag);
                    continue;
                }
                // Every line is read: the end follows (the dispatcher drops the line sender
                // before it sends the end).
                None => {}
            }
            self.done = true;
            return match (&mut self.end).await {
                Ok(End::Ok) => Ok(None),
                Ok(End::Fail(failure)) => Err(Error::Failed(failure)),
                Ok(End::Lost(reason)) => Err(Error::ConnectionLost(reason)),
                Ok(End::Cancelled) => {
                    Err(Error::Cancelled { tag: self.tag.clone().unwrap_or_default() })
                }
                Err(_) => Err(Error::Closed),
            };
        }
        Ok(None)
    }

    /// Every INFO line, once the command succeeded.
    ///
    /// # Errors
    ///
    /// As [`Reply::next_info`].
    pub async fn collect(mut self) -> Result<Vec<Vec<String>>, Error> {
        let mut lines = Vec::new();
        while let Some(words) = self.next_info().await? {
            lines.push(words);
        }
        Ok(lines)
    }

    /// Waits for OK from a command that answers with no INFO lines.
    ///
    /// # Errors
    ///
    /// As [`Reply::next_info`], and [`Error::Unexpected`] if INFO lines came.
    pub async fn ok(self) -> Result<(), Error> {
        let keyword = self.keyword.clone();
        let lines = self.collect().await?;
        if lines.is_empty() {
            Ok(())
        } else {
            Err(Error::unexpected(&keyword, format!("{} INFO lines, expected none", lines.len())))
        }
    }

    /// The one INFO line of a command that answers with exactly one.
    ///
    /// # Errors
    ///
    /// As [`Reply::next_info`], and [`Error::Unexpected`] for any other number of lines.
    pub async fn single(self) -> Result<Vec<String>, Error> {
        let keyword = self.keyword.clone();
        let mut lines = self.collect().await?;
        if lines.len() == 1 {
            Ok(lines.remove(0))
        } else {
            Err(Error::unexpected(&keyword, format!("{} INFO lines, expected one", lines.len())))
        }
    }

    /// Cancels this background job with `BGCANCEL` and waits for the server to confirm.
    /// This reply then ends with [`Error::Cancelled`].
    ///
    /// # Errors
    ///
    /// [`Error::Unexpected`] when the command is not a background job, the server's
    /// failure (`unknown-tag` when the job has already finished), or a connection error.
    pub async fn cancel(&self) -> Result<(), Error> {
        let Some(tag) = self.tag.clone() else {
            return Err(Error::unexpected(&self.keyword, "not a background job"));
        };
        let requests = self.requests.upgrade().ok_or(Error::Closed)?;
        let line = format_command(["BGCANCEL", &tag])?;
        let (request, reply) = Request::new(
            line,
            Some(tag),
            "BGCANCEL".to_owned(),
            self.capacity,
            self.requests.clone(),
            self.abandoned.clone(),
        );
        requests.send(request).map_err(|_| Error::Closed)?;
        reply.ok().await
    }
}

/// A command waiting to be sent or answered.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) line: String,
    /// The reply's lines, bounded: a full buffer holds up the dispatcher (backpressure).
    lines: mpsc::Sender<Progress>,
    /// The reply's end, sent once the line sender is gone.
    end: oneshot::Sender<End>,
    /// For `BGCANCEL TAG`: the job that ends when the server says OK.
    pub(crate) cancels: Option<String>,
}

impl Request {
    /// A request and the reply that reads its answer.
    pub(crate) fn new(
        line: String,
        cancels: Option<String>,
        keyword: String,
        capacity: usize,
        requests: mpsc::WeakUnboundedSender<Request>,
        abandoned: Arc<Notify>,
    ) -> (Request, Reply) {
        let (lines_tx, lines) = mpsc::channel(capacity);
        let (end_tx, end) = oneshot::channel();
        let request = Request { line, lines: lines_tx, end: end_tx, cancels };
        let reply = Reply {
            keyword,
            lines,
            end,
            tag: None,
            detached: false,
            done: false,
            requests,
            abandoned,
            capacity,
        };
        (request, reply)
    }

    /// Hands a line to the reply, waiting while its buffer is full.
    pub(crate) async fn progress(&self, progress: Progress) {
        // The caller may have dropped its reply; the command still runs.
        let _ = self.lines.send(progress).await;
    }

    /// Ends the reply.
    pub(crate) fn finish(self, end: End) {
        let Request { lines, end: end_tx, .. } = self;
        drop(lines);
        let _ = end_tx.send(end);
    }

    /// Whether nobody reads the reply any more.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.lines.is_closed()
    }
}

/// A line for a reply.
#[derive(Debug)]
pub(crate) enum Progress {
    Info(Vec<String>),
    Detached(String),
}

/// How a reply ends.
#[derive(Debug)]
pub(crate) enum End {
    Ok,
    Fail(Failure),
    Lost(Arc<Disconnect>),
    Cancelled,
}
