//! Recordings of raw websocket frames, one `<local receive timestamp> <frame>` per line: reading them (as raw
//! frames for replay, or as market events) and writing them (`premia record`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::binance::market_wire::{parse_frame, sniff_venue, Frame};
use crate::market::error::DataError;
use crate::market::event::MarketEvent;
use crate::market::lines::{LineError, LineReader};
use crate::market::num::{epoch_to_ns, excerpt, parse_i64};
use crate::model::{TsNs, Venue};

/// How many lines venue sniffing looks at before giving up.
const SNIFF_LINES: usize = 50_000;

/// Splits a recording line into its timestamp (→ ns) and frame. Timestamps are µs (16 digits) or ns (19 digits);
/// ms (13 digits) are accepted too.
pub fn split_record_line(line: &[u8]) -> Result<(TsNs, &str), String> {
    let line = line.trim_ascii();
    let Some(sp) = memchr::memchr(b' ', line) else {
        return Err(format!(
            "expected `<timestamp> <frame>`, got {:?}",
            excerpt(line)
        ));
    };
    let (ts_text, rest) = line.split_at(sp);
    let ts = parse_i64(ts_text)
        .and_then(epoch_to_ns)
        .ok_or_else(|| format!("bad timestamp {:?}", excerpt(ts_text)))?;
    let frame = std::str::from_utf8(rest.trim_ascii_start())
        .map_err(|_| "frame is not valid UTF-8".to_string())?;
    Ok((ts, frame))
}

/// Reads a recording as raw frames (for replay over websockets) with their receive timestamps.
pub struct FrameReader {
    path: String,
    lines: LineReader,
}

impl FrameReader {
    pub(crate) fn new(path: &str, lines: LineReader) -> Self {
        FrameReader {
            path: path.to_string(),
            lines,
        }
    }

    /// Opens a recording file (plain or gzip).
    pub fn open(path: &str) -> Result<FrameReader, DataError> {
        let opened =
            crate::market::lines::open_file(Path::new(path)).map_err(|e| DataError::io(path, e))?;
        Ok(FrameReader::new(path, LineReader::new(opened.reader)))
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next `(receive timestamp in ns, frame)`; empty lines are skipped. A bad line gives an error naming it and
    /// the next call continues after it.
    pub fn next_frame(&mut self) -> Option<Result<(TsNs, &str), DataError>> {
        self.next_numbered()
            .map(|r| r.map(|(_, ts, frame)| (ts, frame)))
    }

    /// Like [`FrameReader::next_frame`], with the line number.
    pub fn next_numbered(&mut self) -> Option<Result<(u64, TsNs, &str), DataError>> {
        loop {
            let (no, span) = match self.lines.next_span() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => return Some(Err(line_error(&self.path, self.lines.line_no(), e))),
            };
            if self.lines.span(span).trim_ascii().is_empty() {
                continue;
            }
            return Some(match split_record_line(self.lines.span(span)) {
                Ok((ts, frame)) => Ok((no, ts, frame)),
                Err(msg) => Err(DataError::Line {
                    path: self.path.clone(),
                    line: no,
                    msg,
                }),
            });
        }
    }
}

pub(crate) fn line_error(path: &str, line: u64, e: LineError) -> DataError {
    match e {
        LineError::Io(source) => DataError::Line {
            path: path.to_string(),
            line,
            msg: format!("read error: {source}"),
        },
        LineError::TooLong => DataError::Line {
            path: path.to_string(),
            line,
            msg: format!(
                "line longer than {} bytes, skipped",
                crate::market::lines::MAX_LINE
            ),
        },
    }
}

/// Market events from a recording of one market.
pub struct RecordingSource {
    frames: FrameReader,
    venue: Venue,
    pub(crate) ignored: u64,
    pub(crate) shutdowns: u64,
}

impl RecordingSource {
    pub(crate) fn new(frames: FrameReader, venue: Venue) -> Self {
        RecordingSource {
            frames,
            venue,
            ignored: 0,
            shutdowns: 0,
        }
    }

    pub(crate) fn next_event(&mut self) -> Option<Result<MarketEvent, DataError>> {
        loop {
            let (no, ts, frame) = match self.frames.next_numbered()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            match parse_frame(frame, self.venue) {
                Ok(Frame::Market(kind)) => return Some(Ok(MarketEvent { ts, kind })),
                Ok(Frame::Ignored) => self.ignored += 1,
                Ok(Frame::ServerShutdown) => self.shutdowns += 1,
                Err(e) => {
                    return Some(Err(DataError::Line {
                        path: self.frames.path.clone(),
                        line: no,
                        msg: e.to_string(),
                    }))
                }
            }
        }
    }
}

/// Tells the market of a recording from its frames (see [`sniff_venue`]), reading at most the first 50,000 lines.
pub fn sniff_recording_venue(frames: &mut FrameReader) -> Option<Venue> {
    for _ in 0..SNIFF_LINES {
        match frames.next_frame()? {
            Ok((_, frame)) => {
                if let Some(v) = sniff_venue(frame) {
                    return Some(v);
                }
            }
            Err(_) => continue,
        }
    }
    None
}

/// Writes a recording: `<ts_ns> <frame>\n` per frame, plain or gzip.
pub struct RecordWriter {
    out: Sink,
    frames: u64,
}

enum Sink {
    Plain(BufWriter<Box<dyn Write + Send>>),
    Gzip(GzEncoder<BufWriter<Box<dyn Write + Send>>>),
}

impl RecordWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path, gzip: bool) -> io::Result<RecordWriter> {
        Ok(RecordWriter::new(Box::new(File::create(path)?), gzip))
    }

    /// Writes into any sink (a file, a socket, a buffer).
    pub fn new(out: Box<dyn Write + Send>, gzip: bool) -> RecordWriter {
        let buffered = BufWriter::with_capacity(64 * 1024, out);
        let out = if gzip {
            Sink::Gzip(GzEncoder::new(buffered, Compression::default()))
        } else {
            Sink::Plain(buffered)
        };
        RecordWriter { out, frames: 0 }
    }

    /// Appends one frame received at `ts` (ns). Line breaks inside the frame (only possible in pretty-printed JSON,
    /// where they are whitespace) are written as spaces so that every frame stays on one line.
    pub fn write_frame(&mut self, ts: TsNs, frame: &str) -> io::Result<()> {
        let w: &mut dyn Write = match &mut self.out {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w,
        };
        write!(w, "{ts} ")?;
        let mut rest = frame.trim_ascii().as_bytes();
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let (head, tail) = rest.split_at(pos);
            w.write_all(head)?;
            w.write_all(b" ")?;
            rest = tail.get(1..).unwrap_or(&[]);
        }
        w.write_all(rest)?;
        w.write_all(b"\n")?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes buffered data (for plain files; gzip data is complete only after [`RecordWriter::finish`]).
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }

    /// Writes the gzip trailer (if any) and flushes.
    pub fn finish(self) -> io::Result<()> {
        match self.out {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w.finish()?.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_with_each_unit() {
        let (ts, f) = split_record_line(b"1680652800004107 {\"a\":1}").unwrap();
        assert_eq!(ts, 1_680_652_800_004_107_000);
        assert_eq!(f, "{\"a\":1}");
        let (ts, _) = split_record_line(b"1723161254087891268 {}").unwrap();
        assert_eq!(ts, 1_723_161_254_087_891_268);
        assert!(split_record_line(b"{}").unwrap_err().contains("expected"));
        assert!(split_record_line(b"12x4 {}")
            .unwrap_err()
            .contains("bad timestamp"));
        assert!(split_record_line(b"-5 {}")
            .unwrap_err()
            .contains("bad timestamp"));
    }
}
