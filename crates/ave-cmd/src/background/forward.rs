//! Forwarding an [`Input`] to the command's terminal while `output_async_with_input`
//! collects: one read of the input ahead at most, the terminal's end-of-file character at
//! its end, and the window size passed on when it changes.

use std::{io, os::fd::BorrowedFd};

use crate::Input;

/// Size of the buffer input is read into: one read ahead of the command at most.
const INPUT_BUF_SIZE: usize = 4096;

/// The state of forwarding an [`Input`] to the pty.
#[derive(Debug)]
pub(super) struct Forward {
    pub(super) input: Input,
    pub(super) winch: Option<tokio::signal::unix::Signal>,
    pub(super) read_buf: Vec<u8>,
    /// Read but not yet written to the pty (from `written` on).
    pub(super) pending: Vec<u8>,
    pub(super) written: usize,
    /// The last byte forwarded, to end an unfinished line before the end of input.
    pub(super) last: Option<u8>,
    pub(super) input_ended: bool,
    /// The pty refused input (the command is gone); nothing more is forwarded.
    pub(super) stopped: bool,
}

impl Forward {
    /// Forwarding `input`, with window size changes from `winch` if it is a terminal.
    pub(super) fn new(input: Input, winch: Option<tokio::signal::unix::Signal>) -> Forward {
        Forward {
            input,
            winch,
            read_buf: vec![0; INPUT_BUF_SIZE],
            pending: Vec::new(),
            written: 0,
            last: None,
            input_ended: false,
            stopped: false,
        }
    }

    pub(super) fn input_read(&mut self, read: io::Result<usize>, master: BorrowedFd<'_>) {
        match read {
            Ok(n) if n > 0 => {
                self.pending.extend_from_slice(&self.read_buf[..n]);
                self.last = Some(self.read_buf[n - 1]);
            }
            other => {
                if let Err(error) = other {
                    tracing::debug!(%error, "reading the input failed; treating it as its end");
                }
                self.input_ended = true;
                self.pending = crate::input::end_of_input(master, self.last);
                tracing::trace!(eof_chars = self.pending.len(), "end of input");
            }
        }
    }

    pub(super) fn wrote(&mut self, wrote: io::Result<usize>) {
        match wrote {
            Ok(n) => {
                self.written += n;
                if self.written >= self.pending.len() {
                    self.pending.clear();
                    self.written = 0;
                }
            }
            Err(error) => {
                tracing::debug!(%error, "the terminal takes no more input");
                self.stopped = true;
                self.pending.clear();
                self.written = 0;
            }
        }
    }
}

/// Reads the input if there is one, otherwise never ready.
pub(super) async fn read_input(input: Option<(&Input, &mut Vec<u8>)>) -> io::Result<usize> {
    match input {
        Some((input, buf)) => input.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Waits for a `SIGWINCH` if there is a stream for it, otherwise never ready.
pub(super) async fn recv_winch(winch: Option<&mut tokio::signal::unix::Signal>) {
    match winch {
        Some(winch) => {
            if winch.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
