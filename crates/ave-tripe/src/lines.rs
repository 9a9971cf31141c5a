//! Line framing of the server's output: bytes up to each LF, with a bound on the length.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Disconnect;

/// Reads LF-terminated lines from the server.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// How far `buf` is known to hold no LF.
    scanned: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader that refuses lines longer than `max` bytes (not counting the LF).
    pub(crate) fn new(inner: R, max: usize) -> Self {
        LineReader { inner, buf: Vec::new(), scanned: 0, max }
    }

    /// The next line without its LF, or `None` at end of file.
    ///
    /// Cancel safe: bytes read are kept in the buffer, so dropping the future (in a
    /// `select!`) loses nothing. A partial line at end of file is dropped, since the
    /// server always ends its lines.
    pub(crate) async fn next_line(&mut self) -> Result<Option<Vec<u8>>, Disconnect> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + pos;
                if end > self.max {
                    return Err(Disconnect::LineTooLong { max: self.max });
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                self.scanned = 0;
                return Ok(Some(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max {
                return Err(Disconnect::LineTooLong { max: self.max });
            }
            let n = self.inner.read(&mut chunk).await.map_err(Disconnect::Io)?;
            if n == 0 {
                if !self.buf.is_empty() {
                    tracing::debug!(bytes = self.buf.len(), "dropping an unterminated last line");
                }
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_at_lf_and_bounded() {
        let data: &[u8] = b"OK\nINFO a\r\n\nlong-line-here\npartial";
        let mut reader = LineReader::new(data, 10);
        assert_eq!(reader.next_line().await.unwrap().unwrap(), b"OK");
        assert_eq!(reader.next_line().await.unwrap().unwrap(), b"INFO a\r");
        assert_eq!(reader.next_line().await.unwrap().unwrap(), b"");
        assert!(matches!(reader.next_line().await, Err(Disconnect::LineTooLong { max: 10 })));

        let mut reader = LineReader::new(&b"x\npartial"[..], 100);
        assert_eq!(reader.next_line().await.unwrap().unwrap(), b"x");
        assert!(reader.next_line().await.unwrap().is_none());
    }
}
