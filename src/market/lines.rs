//! Opening data files (plain or gzip, told apart by the 1f 8b magic) and reading them line by line without
//! allocating per line, while counting the compressed bytes consumed for progress reporting.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;

const INITIAL_BUF: usize = 256 * 1024;
/// Longest line accepted (REST snapshots in captures are ~100 KB); longer lines are reported and skipped.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Counts bytes read from the underlying file.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input: a decompressing (if needed) byte stream plus its size and progress counter.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub gzip: bool,
    /// File size on disk (compressed bytes).
    pub total_bytes: u64,
    /// Compressed bytes read so far.
    pub bytes_read: Arc<AtomicU64>,
}

/// Opens a file, detecting gzip by its magic bytes (not its name).
pub fn open_file(path: &Path) -> io::Result<Opened> {
    let file = File::open(path)?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: file,
        count: Arc::clone(&bytes_read),
    };
    let mut buffered = BufReader::with_capacity(64 * 1024, counting);
    let head = buffered.fill_buf()?;
    let gzip = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(Opened {
        reader,
        gzip,
        total_bytes,
        bytes_read,
    })
}

/// A line's position in the reader's buffer: `(start, end)`.
pub type Span = (usize, usize);

/// `(line number, (buffer from the line's start, line length))`, see [`LineReader::next_line_with_tail`].
pub type LineWithTail<'a> = (u64, (&'a [u8], usize));

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// Reading or decompressing failed; the stream cannot continue.
    Io(io::Error),
    /// The line is longer than [`MAX_LINE`]; it is skipped and reading continues.
    TooLong,
}

/// Splits a byte stream into lines (without `\n` / `\r\n`), reusing one buffer.
pub struct LineReader {
    src: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Discarding the rest of an over-long line.
    skipping: bool,
    line_no: u64,
}

impl LineReader {
    pub fn new(src: Box<dyn Read + Send>) -> Self {
        LineReader {
            src,
            buf: vec![0; INITIAL_BUF],
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
            line_no: 0,
        }
    }

    /// 1-based number of the line last returned (or failed).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next line with its 1-based number, `Ok(None)` at the end.
    #[inline]
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>, LineError> {
        match self.next_span()? {
            Some((no, span)) => Ok(Some((no, self.span(span)))),
            None => Ok(None),
        }
    }

    /// Like [`LineReader::next_line`], but returns the buffer from the line's start and the line's length: the
    /// bytes after the line start with its line break (`\n`, or `\r` if stripped; a final line without one gets a
    /// `\n` written after it), so parsers may read past the line's end in 8-byte loads.
    #[inline]
    pub fn next_line_with_tail(&mut self) -> Result<Option<LineWithTail<'_>>, LineError> {
        match self.next_span()? {
            Some((no, (s, e))) => {
                let len = self.span((s, e)).len();
                Ok(Some((no, (self.buf.get(s..).unwrap_or(&[]), len))))
            }
            None => Ok(None),
        }
    }

    /// Like [`LineReader::next_line`], but returns the line as a span of the internal buffer (valid until the next
    /// call; read it with [`LineReader::span`]). Lets callers skip lines in a loop and still return a borrow.
    #[inline]
    pub fn next_span(&mut self) -> Result<Option<(u64, Span)>, LineError> {
        loop {
            let window = self.buf.get(self.start..self.end).unwrap_or(&[]);
            if let Some(pos) = memchr::memchr(b'\n', window) {
                let s = self.start;
                let e = s + pos;
                self.start = e + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                self.line_no += 1;
                return Ok(Some((self.line_no, (s, e))));
            }
            if self.eof {
                if self.start < self.end && !self.skipping {
                    // A final line without a line break: put one after it (see `next_line_with_tail`).
                    if self.end == self.buf.len() {
                        self.buf.push(b'\n');
                    } else if let Some(b) = self.buf.get_mut(self.end) {
                        *b = b'\n';
                    }
                    let span = (self.start, self.end);
                    self.start = self.end;
                    self.line_no += 1;
                    return Ok(Some((self.line_no, span)));
                }
                self.start = self.end;
                return Ok(None);
            }
            self.refill()?;
        }
    }

    /// The buffered bytes from the current line's start, if at least 72 are buffered and no over-long line is
    /// being skipped (a fast path for short lines; see [`LineReader::consume_line`]).
    #[inline(always)]
    pub fn peek_buffered(&self) -> Option<&[u8]> {
        if self.skipping {
            return None;
        }
        self.buf.get(self.start..self.end).filter(|b| b.len() >= 72)
    }

    /// Consumes a line of `n` bytes including its `\n` from the current position, as seen through
    /// [`LineReader::peek_buffered`].
    #[inline(always)]
    pub fn consume_line(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        self.line_no += 1;
    }

    /// The bytes of a span returned by [`LineReader::next_span`], without the line break.
    #[inline]
    pub fn span(&self, (s, e): (usize, usize)) -> &[u8] {
        strip_cr(self.buf.get(s..e).unwrap_or(&[]))
    }

    #[cold]
    fn refill(&mut self) -> Result<(), LineError> {
        if self.skipping {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_LINE {
                // Report the line once, then discard up to its newline.
                self.skipping = true;
                self.start = 0;
                self.end = 0;
                self.line_no += 1;
                return Err(LineError::TooLong);
            }
            let new_len = (self.buf.len() * 2).min(MAX_LINE);
            self.buf.resize(new_len, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // A broken stream cannot be resynchronised: end it after reporting.
                    self.eof = true;
                    self.start = self.end;
                    self.line_no += 1;
                    return Err(LineError::Io(e));
                }
            }
        }
    }
}

#[inline]
fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(data: &[u8]) -> Vec<Vec<u8>> {
        let mut r = LineReader::new(Box::new(io::Cursor::new(data.to_vec())));
        let mut out = Vec::new();
        while let Some((_, l)) = r.next_line().unwrap() {
            out.push(l.to_vec());
        }
        out
    }

    #[test]
    fn splits_lines_crlf_and_last_line_without_newline() {
        assert_eq!(
            lines_of(b"a\r\nbb\n\nccc"),
            vec![b"a".to_vec(), b"bb".to_vec(), b"".to_vec(), b"ccc".to_vec()]
        );
        assert!(lines_of(b"").is_empty());
    }

    #[test]
    fn lines_across_buffer_boundaries() {
        let mut data = Vec::new();
        for i in 0..100_000 {
            data.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 37)).as_bytes());
        }
        let lines = lines_of(&data);
        assert_eq!(lines.len(), 100_000);
        assert_eq!(
            lines[99_999],
            format!("line 99999 {}", "x".repeat(99_999 % 37)).into_bytes()
        );
    }

    #[test]
    fn long_line_grows_buffer() {
        let long = "y".repeat(INITIAL_BUF * 3);
        let data = format!("a\n{long}\nb\n");
        let lines = lines_of(data.as_bytes());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].len(), long.len());
    }
}
