//! [`MarketReader`]: opens the inputs given on the command line (`PATH`, `spot:PATH`, `perp:PATH`), detects each
//! one's format and market, and merges their events by timestamp (stable: ties keep argument order, and each
//! file keeps its own order), streaming — nothing is loaded whole.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::market::binance_csv::BinanceCsvSource;
use crate::market::detect::{detect_format, venue_from_name, Format, InputSpec};
use crate::market::error::DataError;
use crate::market::event::{MarketEvent, MarketKind};
use crate::market::lines::{open_file, LineReader};
use crate::market::num::excerpt;
use crate::market::quote_csv::QuoteCsvSource;
use crate::market::recording::{sniff_recording_venue, FrameReader, RecordingSource};
use crate::model::Venue;

/// What an opened input turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputInfo {
    pub path: String,
    pub format: Format,
    /// The market of the file; `None` for quote CSVs, whose lines say it.
    pub venue: Option<Venue>,
    pub gzip: bool,
}

// One per input file, matched once per event: the quote source's inline layout cache is worth its size.
#[allow(clippy::large_enum_variant)]
enum Source {
    Recording(RecordingSource),
    Quote(QuoteCsvSource),
    Binance(BinanceCsvSource),
}

impl Source {
    #[inline]
    fn next_event(&mut self) -> Option<Result<MarketEvent, DataError>> {
        match self {
            Source::Quote(s) => s.next_event(),
            Source::Recording(s) => s.next_event(),
            Source::Binance(s) => s.next_event(),
        }
    }
}

struct Input {
    info: InputInfo,
    source: Source,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
    head: Option<MarketEvent>,
    done: bool,
}

/// Merged market events of several inputs, in timestamp order.
///
/// Yields `Err` for a malformed line (naming file, line and problem) and continues with the next line on the
/// following call; the caller decides whether to skip or stop.
pub struct MarketReader {
    inputs: Vec<Input>,
}

/// Opens `inputs` (see [`MarketReader::open`]).
pub fn open(inputs: &[String]) -> Result<MarketReader, DataError> {
    MarketReader::open(inputs)
}

impl MarketReader {
    /// Opens every input, detecting its format from its first lines (plain or gzip) and, for recordings, its
    /// market: the `spot:`/`perp:` prefix, else the file name, else the frames themselves. Binance public-data
    /// CSVs need the prefix.
    pub fn open(inputs: &[String]) -> Result<MarketReader, DataError> {
        let mut opened = Vec::with_capacity(inputs.len());
        for arg in inputs {
            opened.push(open_input(arg)?);
        }
        Ok(MarketReader { inputs: opened })
    }

    /// What each input is, in argument order.
    pub fn inputs(&self) -> Vec<InputInfo> {
        self.inputs.iter().map(|i| i.info.clone()).collect()
    }

    /// Bytes read from the files so far (compressed bytes for gzip files).
    pub fn bytes_read(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| i.bytes_read.load(Ordering::Relaxed))
            .sum()
    }

    /// Total size of the files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.inputs.iter().map(|i| i.total_bytes).sum()
    }

    /// Recording frames that carried no market event (depth, snapshots, subscribe responses, unknown events).
    pub fn ignored_frames(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| match &i.source {
                Source::Recording(r) => r.ignored,
                _ => 0,
            })
            .sum()
    }

    /// `serverShutdown` frames seen in recordings.
    pub fn server_shutdowns(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| match &i.source {
                Source::Recording(r) => r.shutdowns,
                _ => 0,
            })
            .sum()
    }
}

impl MarketReader {
    /// Reads the next events into `out`, in order, in place, and each quote's [`crate::signal::quote_prices`]
    /// into the same slot of `prices`; returns how many it read and, when a malformed line
    /// stopped it early, that line's error (the events before it are read). Fewer than `out.len()` without an
    /// error: the input ended (0 = nothing left). The backtest reads in batches like this: the reader's and the
    /// engine's loops each stay hot.
    #[inline]
    pub fn fill(
        &mut self,
        out: &mut [MarketEvent],
        prices: &mut [[f64; 2]],
    ) -> (usize, Option<DataError>) {
        if let [only] = self.inputs.as_mut_slice() {
            if let Source::Quote(s) = &mut only.source {
                return s.fill(out, prices);
            }
        }
        for (n, (slot, px)) in out.iter_mut().zip(prices.iter_mut()).enumerate() {
            if let ControlFlow::Break(end) = fill_slot(self.next(), slot, px) {
                return (n, end);
            }
        }
        (out.len().min(prices.len()), None)
    }
}

/// Puts a reader's next item into a batch slot, with its [`crate::signal::quote_prices`] when it is a quote (see
/// [`MarketReader::fill`]): `Continue` after an event, `Break` with the error — or `None` at the end of the input —
/// otherwise.
#[inline]
pub(crate) fn fill_slot(
    item: Option<Result<MarketEvent, DataError>>,
    slot: &mut MarketEvent,
    px: &mut [f64; 2],
) -> ControlFlow<Option<DataError>> {
    match item {
        Some(Ok(ev)) => {
            if let MarketKind::Quote(q) = &ev.kind {
                *px = crate::signal::quote_prices(q);
            }
            *slot = ev;
            ControlFlow::Continue(())
        }
        Some(Err(e)) => ControlFlow::Break(Some(e)),
        None => ControlFlow::Break(None),
    }
}

impl Iterator for MarketReader {
    type Item = Result<MarketEvent, DataError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let [only] = self.inputs.as_mut_slice() {
            return only.source.next_event();
        }
        for input in self.inputs.iter_mut() {
            if input.head.is_none() && !input.done {
                match input.source.next_event() {
                    Some(Ok(ev)) => input.head = Some(ev),
                    Some(Err(e)) => return Some(Err(e)),
                    None => input.done = true,
                }
            }
        }
        let mut best: Option<&mut Input> = None;
        for input in self.inputs.iter_mut() {
            if let Some(ev) = &input.head {
                // Strictly earlier only: ties go to the earlier argument.
                if best
                    .as_ref()
                    .and_then(|b| b.head.as_ref())
                    .is_none_or(|b| ev.ts < b.ts)
                {
                    best = Some(input);
                }
            }
        }
        best.and_then(|b| b.head.take()).map(Ok)
    }
}

fn open_input(arg: &str) -> Result<Input, DataError> {
    let spec = InputSpec::parse(arg);
    let path = spec.path.as_str();
    let format = sniff_format(path)?;
    let venue = match format {
        Format::QuoteCsv => None,
        f if f.needs_prefix() => match spec.venue {
            Some(v) => Some(v),
            None => {
                return Err(DataError::input(
                    path,
                    format!(
                        "a {} has no market column: pass it as spot:{path} or perp:{path}",
                        f.name()
                    ),
                ))
            }
        },
        _ => match spec.venue.or_else(|| venue_from_name(path)) {
            Some(v) => Some(v),
            None => {
                let mut frames = FrameReader::open(path)?;
                match sniff_recording_venue(&mut frames) {
                    Some(v) => Some(v),
                    None => {
                        return Err(DataError::input(
                            path,
                            format!(
                                "cannot tell whether this recording is spot or perp: pass it as spot:{path} or perp:{path}"
                            ),
                        ))
                    }
                }
            }
        },
    };
    let opened = open_file(Path::new(path)).map_err(|e| DataError::io(path, e))?;
    let info = InputInfo {
        path: path.to_string(),
        format,
        venue,
        gzip: opened.gzip,
    };
    let lines = LineReader::new(opened.reader);
    let source = match (format, venue) {
        (Format::QuoteCsv, _) => Source::Quote(QuoteCsvSource::new(path, lines)),
        (Format::Recording, Some(v)) => {
            Source::Recording(RecordingSource::new(FrameReader::new(path, lines), v))
        }
        (f, Some(v)) => Source::Binance(BinanceCsvSource::new(path, lines, f, v)),
        (_, None) => return Err(DataError::input(path, "unknown market")),
    };
    Ok(Input {
        info,
        source,
        bytes_read: opened.bytes_read,
        total_bytes: opened.total_bytes,
        head: None,
        done: false,
    })
}

/// Detects the format of a file from its first non-empty lines.
pub fn sniff_format(path: &str) -> Result<Format, DataError> {
    let opened = open_file(Path::new(path)).map_err(|e| DataError::io(path, e))?;
    let mut lines = LineReader::new(opened.reader);
    let mut first: Option<Vec<u8>> = None;
    let mut second: Option<Vec<u8>> = None;
    while second.is_none() {
        match lines.next_line() {
            Ok(Some((_, l))) if l.trim_ascii().is_empty() => continue,
            Ok(Some((_, l))) => {
                if first.is_none() {
                    first = Some(l.to_vec());
                } else {
                    second = Some(l.to_vec());
                }
            }
            Ok(None) => break,
            Err(crate::market::lines::LineError::TooLong) => {
                return Err(DataError::input(
                    path,
                    "unknown format: first line is too long",
                ))
            }
            Err(crate::market::lines::LineError::Io(e)) => return Err(DataError::io(path, e)),
        }
    }
    let Some(first) = first else {
        return Err(DataError::input(path, "the file is empty"));
    };
    detect_format(&first, second.as_deref()).ok_or_else(|| {
        DataError::input(
            path,
            format!(
                "unknown format (first line {:?}); expected a websocket recording (`<timestamp> <json frame>` per line), \
                 a quote CSV (ts_ns,market,bid,ask,bid_qty,ask_qty) or a Binance public-data CSV (bookTicker, aggTrades, klines)",
                excerpt(&first)
            ),
        )
    })
}
