//! The frame format: a 4-byte big-endian length, then that many payload bytes.
//!
//! [`FrameBuffer`] is the sans-IO half of every connection in this crate: bytes go in as
//! they arrive, complete frames come out. It never allocates more than what has arrived
//! plus one bounded read chunk, whatever a header announces, and it rejects a header above
//! the configured limit before reading its payload.

use crate::Error;

/// The length of a frame header.
pub const HEADER_LEN: usize = 4;

/// The default limit on a frame's payload: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// The size of one read when no frame is in progress; also the most that is reserved
/// ahead of data when a large frame is being received.
const READ_CHUNK: usize = 16 * 1024;
const LARGE_CHUNK: usize = 1024 * 1024;

/// The header of a payload of `len` bytes.
///
/// # Errors
///
/// [`Error::FrameTooLarge`] if `len` does not fit in 32 bits.
pub fn header(len: usize) -> Result<[u8; HEADER_LEN], Error> {
    let len32 = u32::try_from(len)
        .map_err(|_| Error::FrameTooLarge { len: len as u64, max: u32::MAX as usize })?;
    Ok(len32.to_be_bytes())
}

/// Appends one frame (header and payload) to `out`.
///
/// # Errors
///
/// [`Error::FrameTooLarge`] if the payload does not fit in 32 bits.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    out.extend_from_slice(&header(payload.len())?);
    out.extend_from_slice(payload);
    Ok(())
}

/// Input bytes of one connection, cut into frames.
///
/// Feed it with what the socket gives (append to [`FrameBuffer::read_target`], or call
/// [`FrameBuffer::extend`]) and take frames out with
/// [`FrameBuffer::next_frame`]. Bytes that do not yet form a whole frame stay buffered, so
/// the buffer is also the "partial input" of a connection that is handed over
/// ([`FrameBuffer::into_bytes`], [`FrameBuffer::from_bytes`]).
#[derive(Debug, Clone)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl FrameBuffer {
    /// An empty buffer whose frames may be at most `max` bytes long.
    pub fn new(max: usize) -> FrameBuffer {
        FrameBuffer { buf: Vec::new(), start: 0, max }
    }

    /// A buffer that starts with bytes already received, such as the partial input of an
    /// adopted connection.
    pub fn from_bytes(bytes: Vec<u8>, max: usize) -> FrameBuffer {
        FrameBuffer { buf: bytes, start: 0, max }
    }

    /// The frame size limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Changes the frame size limit.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The bytes received and not yet taken out as frames.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Whether no byte is buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// The buffered bytes, taken out (for a handover).
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.compact();
        self.buf
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Takes `n` raw bytes out of the buffer (fewer if fewer are buffered), ignoring
    /// framing. `BlockingConnection::read` uses it.
    pub fn take_raw(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buf.len() - self.start);
        let out = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        out
    }

    /// The vector to read into, with room reserved for the next read: a small chunk
    /// between frames, more (but at most 1 MiB ahead of the data) inside a large frame.
    /// Append to it (`Vec::extend`, tokio's `read_buf`, ...) and nothing else.
    pub fn read_target(&mut self) -> &mut Vec<u8> {
        self.compact();
        let have = self.buf.len();
        let want = match self.announced() {
            Some(len) if len <= self.max => (HEADER_LEN + len).saturating_sub(have),
            _ => 0,
        };
        let reserve = want.clamp(READ_CHUNK, LARGE_CHUNK);
        if self.buf.capacity() - have < reserve {
            self.buf.reserve(reserve);
        }
        &mut self.buf
    }

    /// Frees the memory of an empty buffer; an idle connection then holds none.
    pub fn release_if_empty(&mut self) {
        drop(self.take_if_empty());
    }

    /// Takes the memory of an empty buffer out, to be reused by [`FrameBuffer::give`]
    /// (of this or another buffer); `None` if bytes are buffered or nothing is allocated.
    pub fn take_if_empty(&mut self) -> Option<Vec<u8>> {
        if !self.is_empty() || self.buf.capacity() == 0 {
            return None;
        }
        self.start = 0;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        Some(buf)
    }

    /// Gives an empty buffer holding no memory the allocation of `spare` (its contents are
    /// dropped).
    pub fn give(&mut self, mut spare: Vec<u8>) {
        if self.is_empty() && self.buf.capacity() == 0 {
            spare.clear();
            self.buf = spare;
            self.start = 0;
        }
    }

    /// The bytes allocated.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The length announced by a complete buffered header, if there is one.
    fn announced(&self) -> Option<usize> {
        let rest = &self.buf[self.start..];
        let header: [u8; HEADER_LEN] = rest.get(..HEADER_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(header) as usize)
    }

    /// Takes the next complete frame out of the buffer and returns its payload, or `None`
    /// while it is incomplete. A zero-length frame is a valid, empty payload.
    ///
    /// # Errors
    ///
    /// [`Error::FrameTooLarge`] as soon as a header announces more than the limit; the
    /// header stays buffered, so every later call fails the same way.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let Some(len) = self.announced() else { return Ok(None) };
        if len > self.max {
            return Err(Error::FrameTooLarge { len: len as u64, max: self.max });
        }
        let begin = self.start + HEADER_LEN;
        if self.buf.len() - begin < len {
            return Ok(None);
        }
        self.start = begin + len;
        Ok(Some(&self.buf[begin..begin + len]))
    }

    /// Drops the bytes already taken out, so the buffer holds only what is pending.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..self.start);
        }
        self.start = 0;
        if self.buf.is_empty() && self.buf.capacity() > LARGE_CHUNK {
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(payload, &mut out).unwrap();
        out
    }

    #[test]
    fn header_is_big_endian() {
        assert_eq!(header(31).unwrap(), [0, 0, 0, 0x1f]);
        assert_eq!(header(0x0102_0304).unwrap(), [1, 2, 3, 4]);
        assert_eq!(framed(b"ab"), b"\0\0\0\x02ab");
    }

    #[test]
    fn frames_arrive_in_pieces() {
        let mut input = framed(b"hello");
        input.extend(framed(b""));
        input.extend(framed(b"world"));
        let mut fb = FrameBuffer::new(100);
        let mut got = Vec::new();
        for byte in input {
            fb.extend(&[byte]);
            while let Some(frame) = fb.next_frame().unwrap() {
                got.push(frame.to_vec());
            }
        }
        assert_eq!(got, vec![b"hello".to_vec(), Vec::new(), b"world".to_vec()]);
        assert!(fb.is_empty());
    }

    #[test]
    fn partial_input_survives_a_handover() {
        let mut input = framed(b"first");
        input.extend(&framed(b"second")[..5]);
        let mut fb = FrameBuffer::new(100);
        fb.extend(&input);
        assert_eq!(fb.next_frame().unwrap(), Some(&b"first"[..]));
        assert_eq!(fb.next_frame().unwrap(), None);
        let pending = fb.into_bytes();
        assert_eq!(pending, &framed(b"second")[..5]);
        let mut adopted = FrameBuffer::from_bytes(pending, 100);
        adopted.extend(&framed(b"second")[5..]);
        assert_eq!(adopted.next_frame().unwrap(), Some(&b"second"[..]));
    }

    #[test]
    fn oversized_headers_are_refused_before_any_allocation() {
        let mut fb = FrameBuffer::new(10);
        fb.extend(&0x8000_0000u32.to_be_bytes());
        let err = fb.next_frame().unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: 0x8000_0000, max: 10 }), "{err}");
        // The read target stays small whatever the header says.
        assert!(fb.read_target().capacity() <= READ_CHUNK + HEADER_LEN + 64);
        let mut fb = FrameBuffer::new(10);
        fb.extend(&framed(&[7; 10]));
        assert_eq!(fb.next_frame().unwrap(), Some(&[7u8; 10][..]));
    }

    #[test]
    fn reservation_is_bounded_by_arrived_data() {
        let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
        fb.extend(&(DEFAULT_MAX_FRAME as u32).to_be_bytes());
        let cap = fb.read_target().capacity();
        assert!(cap <= LARGE_CHUNK + 2 * HEADER_LEN + 64, "{cap}");
    }

    #[test]
    fn raw_reads_and_release() {
        let mut fb = FrameBuffer::new(100);
        fb.extend(b"abcdef");
        assert_eq!(fb.take_raw(4), b"abcd");
        assert_eq!(fb.take_raw(10), b"ef");
        assert!(fb.is_empty());
        fb.read_target();
        fb.release_if_empty();
        assert_eq!(fb.buffered(), b"");
    }

    #[test]
    fn an_empty_buffers_memory_moves_to_another_buffer() {
        let mut fb = FrameBuffer::new(100);
        assert!(fb.take_if_empty().is_none(), "nothing allocated yet");
        fb.extend(&framed(b"abc"));
        assert!(fb.take_if_empty().is_none(), "a frame is buffered");
        assert_eq!(fb.next_frame().unwrap(), Some(&b"abc"[..]));
        let spare = fb.take_if_empty().expect("an empty buffer gives its memory");
        assert!(spare.is_empty() && spare.capacity() > 0);
        assert_eq!(fb.capacity(), 0);

        let mut other = FrameBuffer::new(100);
        let capacity = spare.capacity();
        other.give(spare);
        assert_eq!(other.capacity(), capacity);
        other.extend(&framed(b"de"));
        assert_eq!(other.next_frame().unwrap(), Some(&b"de"[..]));
        // A buffer that holds bytes keeps its own.
        let mut busy = FrameBuffer::new(100);
        busy.extend(b"\0\0");
        busy.give(vec![9; 8]);
        assert_eq!(busy.buffered(), b"\0\0");
    }
}
