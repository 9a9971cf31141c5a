//! `Pipe`: framed JSON over a pipe, as the original's `ave.network.pipe.Pipe`, with its
//! read loop done right.
//!
//! Frames are the RPC protocol's: a 4-byte big-endian length, then that many bytes of JSON
//! (the Python 2 dialect of [`crate::wire::json`]). Unlike the original, a read never asks for
//! more than the rest of the current frame (so it never eats into the next one), keeps
//! what has arrived across calls and timeouts, and delivers data that is still in the pipe
//! when the writer has gone; a write loops until the whole frame is out.

use std::{
    fmt,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    time::{Duration, Instant},
};

use ave_exceptions::NetworkError;
use nix::{
    errno::Errno,
    fcntl::OFlag,
    poll::{PollFd, PollFlags, PollTimeout, poll},
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    Error,
    wire::{
        frame::{DEFAULT_MAX_FRAME, HEADER_LEN},
        json,
    },
};

/// Framed JSON messages over an anonymous pipe: one process (or thread) writes with
/// [`Pipe::put`], the other reads with [`Pipe::get`].
///
/// Both ends are made together; after a fork each side closes the end it does not use
/// ([`Pipe::close_reader`], [`Pipe::close_writer`]) so that the reader sees the end of
/// the stream when the last writer is gone. The descriptors are close-on-exec.
///
/// ```
/// use std::time::Duration;
/// use ave_network::process::Pipe;
///
/// let mut pipe = Pipe::new()?;
/// pipe.put(&"hello")?;
/// assert_eq!(pipe.get(Some(Duration::ZERO))?, "hello");
/// // Nothing more: a timeout at once.
/// assert!(pipe.get(Some(Duration::ZERO)).unwrap_err().is_timeout());
/// # Ok::<(), ave_network::Error>(())
/// ```
pub struct Pipe {
    reader: Option<OwnedFd>,
    writer: Option<OwnedFd>,
    /// The part of the current frame read so far (header included).
    partial: Vec<u8>,
    max_frame: usize,
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("reader", &self.reader)
            .field("writer", &self.writer)
            .field("partial", &self.partial.len())
            .finish_non_exhaustive()
    }
}

impl Pipe {
    /// A new pipe, both ends open.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the system is out of descriptors.
    pub fn new() -> Result<Pipe, Error> {
        let (reader, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe", e.into()))?;
        Ok(Pipe::from_fds(Some(reader), Some(writer)))
    }

    /// A pipe from existing ends (either may be missing), e.g. inherited descriptors.
    pub fn from_fds(reader: Option<OwnedFd>, writer: Option<OwnedFd>) -> Pipe {
        Pipe { reader, writer, partial: Vec::new(), max_frame: DEFAULT_MAX_FRAME }
    }

    /// Splits the pipe into a reading half and a writing half, e.g. to move the writing
    /// half into a child's target and keep the reading half here.
    pub fn split(self) -> (Pipe, Pipe) {
        let Pipe { reader, writer, partial, max_frame } = self;
        (Pipe { reader, writer: None, partial, max_frame }, Pipe::from_fds(None, writer))
    }

    /// The largest frame [`Pipe::get`] accepts (default 64 MiB); a larger header is an
    /// error before anything is allocated.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// The read end, if open (to keep it in a child: `Process::keep_fd`).
    pub fn reader_fd(&self) -> Option<BorrowedFd<'_>> {
        self.reader.as_ref().map(AsFd::as_fd)
    }

    /// The write end, if open.
    pub fn writer_fd(&self) -> Option<BorrowedFd<'_>> {
        self.writer.as_ref().map(AsFd::as_fd)
    }

    /// Closes the read end.
    pub fn close_reader(&mut self) {
        self.reader = None;
        self.partial.clear();
    }

    /// Closes the write end: once every copy of it is closed, the reader gets
    /// `ConnectionClosed` after the data still in the pipe.
    pub fn close_writer(&mut self) {
        self.writer = None;
    }

    /// Closes both ends.
    pub fn close(mut self) {
        self.close_reader();
        self.close_writer();
    }

    /// Writes one frame holding `value` as JSON. Blocks while the pipe is full; short
    /// writes are continued until the whole frame is out.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value cannot be JSON; [`Error::Network`]
    /// (`ConnectionClosed`) if the read end is closed or this end was closed;
    /// [`Error::Io`] for other system errors.
    pub fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let mut frame = Vec::new();
        json::encode_frame(value, &mut frame)?;
        let Some(writer) = &self.writer else {
            return Err(NetworkError::closed().into());
        };
        let mut sent = 0;
        while sent < frame.len() {
            match nix::unistd::write(writer, &frame[sent..]) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE) => return Err(NetworkError::closed().into()),
                Err(e) => return Err(Error::io("write to a pipe", e.into())),
            }
        }
        Ok(())
    }

    /// Reads one frame and decodes its JSON. `timeout` bounds the wait for data
    /// (`Some(Duration::ZERO)`: only what is already there; `None`: as long as it takes).
    /// Part of a frame that arrived before a timeout is kept for the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Network`]: `ConnectionTimeout` when nothing completes a frame in time,
    /// `ConnectionClosed` at the end of the stream (after every complete frame was
    /// delivered) or if the read end was closed; [`Error::FrameTooLarge`] for a header
    /// above the limit; [`Error::Protocol`] for a payload that is not JSON; [`Error::Io`]
    /// for other system errors.
    pub fn get(&mut self, timeout: Option<Duration>) -> Result<Value, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let need = self.missing()?;
            if need == 0 {
                let frame = std::mem::take(&mut self.partial);
                return json::parse(&frame[HEADER_LEN..])
                    .map_err(|e| Error::Protocol(format!("the pipe carried invalid JSON: {e}")));
            }
            let Some(reader) = &self.reader else {
                return Err(NetworkError::closed().into());
            };
            if !wait_input(reader.as_fd(), deadline)? {
                return Err(NetworkError::timeout().into());
            }
            let start = self.partial.len();
            let chunk = need.min(64 * 1024);
            self.partial.resize(start + chunk, 0);
            match nix::unistd::read(reader, &mut self.partial[start..]) {
                Ok(0) => {
                    self.partial.truncate(start);
                    return Err(NetworkError::closed().into());
                }
                Ok(n) => self.partial.truncate(start + n),
                Err(Errno::EINTR | Errno::EAGAIN) => self.partial.truncate(start),
                Err(e) => {
                    self.partial.truncate(start);
                    return Err(Error::io("read from a pipe", e.into()));
                }
            }
        }
    }

    /// Whether no input is waiting (a zero-timeout poll of the read end).
    pub fn empty(&self) -> bool {
        match &self.reader {
            Some(reader) => !matches!(wait_input(reader.as_fd(), Some(Instant::now())), Ok(true)),
            None => true,
        }
    }

    /// How many bytes the current frame still needs (0: it is complete).
    fn missing(&self) -> Result<usize, Error> {
        if self.partial.len() < HEADER_LEN {
            return Ok(HEADER_LEN - self.partial.len());
        }
        let mut header = [0; HEADER_LEN];
        header.copy_from_slice(&self.partial[..HEADER_LEN]);
        let len = u32::from_be_bytes(header);
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > self.max_frame {
            return Err(Error::FrameTooLarge { len: u64::from(len), max: self.max_frame });
        }
        Ok(HEADER_LEN + len_usize - self.partial.len())
    }
}

/// Waits until the descriptor can be read (data, or the end of the stream), until
/// `deadline`. `Ok(false)` on timeout.
fn wait_input(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<bool, Error> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left.min(Duration::from_secs(60))).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            // Readable, or hung up, or in error: a read tells which.
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("wait for a pipe", e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_length_and_garbage_frames() {
        let mut pipe = Pipe::new().unwrap();
        nix::unistd::write(pipe.writer.as_ref().unwrap(), &[0, 0, 0, 0]).unwrap();
        let e = pipe.get(Some(Duration::ZERO)).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e:?}");
        nix::unistd::write(pipe.writer.as_ref().unwrap(), &[0, 0, 0, 2, b'{', b'}']).unwrap();
        assert_eq!(pipe.get(Some(Duration::ZERO)).unwrap(), serde_json::json!({}));
    }
}
