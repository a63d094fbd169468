//! Reads recordings of raw websocket frames (`<recv ts> <combined-stream JSON>` lines, µs or ns timestamps, plain
//! or gzip) for replay, merging several files (spot and perp) into one stream ordered by receive time.
//!
//! Each input names its market: `spot:PATH` / `perp:PATH` (as `premia backtest` inputs), or a bare path whose file name says `spot` (else perp:
//! `usdm`, `futures`, `perp` or anything else). Lines that are not combined-stream frames (such as the REST depth
//! snapshot some recordings carry) are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;

use super::error::LocalExchangeError;
use crate::model::{TsNs, Venue};

/// One recorded frame, shared by every subscriber it is sent to.
#[derive(Debug)]
pub struct Frame {
    pub venue: Venue,
    /// Local receive time of the frame, ns since the epoch.
    pub ts: TsNs,
    /// The combined-stream JSON exactly as recorded: `{"stream":"…","data":…}` (UTF-8, checked at parse).
    text: Bytes,
    stream: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
}

impl Frame {
    /// Splits a recorded line; `None` if it is not `<ts> {"stream":"…","data":…}`.
    pub fn parse(venue: Venue, line: &str) -> Option<Frame> {
        let line = line.trim_end();
        let (ts, json) = line.split_once(' ')?;
        let ts = parse_ts(ts)?;
        let json = json.trim_start();
        const HEAD: &str = "{\"stream\":\"";
        let rest = json.strip_prefix(HEAD)?;
        let name_len = rest.find('"')?;
        let after_name = &rest[name_len..];
        const MID: &str = "\",\"data\":";
        if !after_name.starts_with(MID) || !json.ends_with('}') {
            return None;
        }
        let stream = HEAD.len()..HEAD.len() + name_len;
        let data = stream.end + MID.len()..json.len() - 1;
        if data.is_empty() {
            return None;
        }
        Some(Frame {
            venue,
            ts,
            text: Bytes::copy_from_slice(json.as_bytes()),
            stream,
            data,
        })
    }

    /// Stream name, e.g. `btcusdt@bookTicker`.
    pub fn stream(&self) -> &str {
        self.text
            .get(self.stream.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The combined-stream JSON as recorded (what a `/stream?streams=` subscriber receives).
    pub fn combined(&self) -> Bytes {
        self.text.clone()
    }

    /// The raw payload (what a `/ws/<stream>` subscriber receives).
    pub fn data(&self) -> Bytes {
        self.text.slice(self.data.clone())
    }

    /// The combined-stream JSON as text.
    pub fn combined_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or("")
    }

    /// The raw payload as text.
    pub fn data_str(&self) -> &str {
        self.text
            .get(self.data.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// Receive timestamps: 16 digits are µs (2023 captures), 19 digits ns; ms (13 digits) accepted too.
pub fn parse_ts(s: &str) -> Option<TsNs> {
    let v: i64 = s.parse().ok()?;
    if v <= 0 {
        return None;
    }
    Some(match s.len() {
        0..=14 => v.checked_mul(1_000_000)?,
        15..=17 => v.checked_mul(1_000)?,
        _ => v,
    })
}

/// Which market an input holds, and its path.
pub fn split_input(input: &str) -> (Venue, &str) {
    for (prefix, venue) in [
        ("spot:", Venue::Spot),
        ("perp:", Venue::Perp),
        ("spot=", Venue::Spot),
        ("perp=", Venue::Perp),
    ] {
        if let Some(p) = input.strip_prefix(prefix) {
            return (venue, p);
        }
    }
    let name = Path::new(input)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(input)
        .to_ascii_lowercase();
    if name.contains("spot") {
        (Venue::Spot, input)
    } else {
        (Venue::Perp, input)
    }
}

struct Source {
    venue: Venue,
    path: String,
    lines: Box<dyn BufRead + Send>,
    line_no: u64,
    buf: String,
    next: Option<Frame>,
}

impl Source {
    fn advance(&mut self) -> Result<(), LocalExchangeError> {
        self.next = None;
        loop {
            self.buf.clear();
            let n =
                self.lines
                    .read_line(&mut self.buf)
                    .map_err(|e| LocalExchangeError::Recording {
                        path: self.path.clone(),
                        line: self.line_no + 1,
                        msg: e.to_string(),
                    })?;
            if n == 0 {
                return Ok(());
            }
            self.line_no += 1;
            if let Some(f) = Frame::parse(self.venue, &self.buf) {
                self.next = Some(f);
                return Ok(());
            }
        }
    }
}

/// Frames of several recordings merged by receive time (ties: the input listed first wins).
pub struct Recording {
    sources: Vec<Source>,
}

fn open_reader(path: &str) -> Result<Box<dyn BufRead + Send>, LocalExchangeError> {
    let open_err = |source| LocalExchangeError::Open {
        path: path.to_string(),
        source,
    };
    let mut file = File::open(path).map_err(open_err)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(open_err)?;
    let file = File::open(path).map_err(open_err)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::read::MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(64 * 1024, file)))
    }
}

impl Recording {
    pub fn open(inputs: &[String]) -> Result<Recording, LocalExchangeError> {
        let mut sources = Vec::with_capacity(inputs.len());
        for input in inputs {
            let (venue, path) = split_input(input);
            let mut s = Source {
                venue,
                path: path.to_string(),
                lines: open_reader(path)?,
                line_no: 0,
                buf: String::with_capacity(1024),
                next: None,
            };
            s.advance()?;
            sources.push(s);
        }
        Ok(Recording { sources })
    }

    /// Receive time of the first frame (the earliest among the inputs), if any.
    pub fn first_ts(&self) -> Option<TsNs> {
        self.sources
            .iter()
            .filter_map(|s| s.next.as_ref().map(|f| f.ts))
            .min()
    }

    /// The next frame in receive-time order, or `None` at the end of every input.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, LocalExchangeError> {
        let mut best: Option<(usize, TsNs)> = None;
        for (i, s) in self.sources.iter().enumerate() {
            if let Some(f) = &s.next {
                if best.is_none_or(|(_, ts)| f.ts < ts) {
                    best = Some((i, f.ts));
                }
            }
        }
        let Some((i, _)) = best else {
            return Ok(None);
        };
        let Some(src) = self.sources.get_mut(i) else {
            return Ok(None);
        };
        let frame = src.next.take();
        src.advance()?;
        Ok(frame)
    }
}

/// A frame ready to broadcast.
pub type SharedFrame = Arc<Frame>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn splits_combined_frames_and_skips_others() {
        let f = Frame::parse(
            Venue::Perp,
            "1680652800070436 {\"stream\":\"btcusdt@bookTicker\",\"data\":{\"e\":\"bookTicker\",\"u\":1}}\n",
        )
        .unwrap();
        assert_eq!(f.ts, 1_680_652_800_070_436_000);
        assert_eq!(f.stream(), "btcusdt@bookTicker");
        assert_eq!(f.data_str(), "{\"e\":\"bookTicker\",\"u\":1}");
        assert!(Frame::parse(
            Venue::Perp,
            "1680652800070436 {\"lastUpdateId\": 1, \"bids\": []}"
        )
        .is_none());
        assert!(Frame::parse(Venue::Perp, "garbage").is_none());
        assert!(Frame::parse(Venue::Perp, "12x {\"stream\":\"a\",\"data\":{}}").is_none());
        assert_eq!(
            parse_ts("1723161253937000000"),
            Some(1_723_161_253_937_000_000)
        );
    }

    #[test]
    fn merges_inputs_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let spot = dir.path().join("spot_x.txt");
        let perp = dir.path().join("usdm_x.gz");
        std::fs::write(
            &spot,
            "1000000000000000002 {\"stream\":\"s@bookTicker\",\"data\":{\"n\":2}}\n\
             1000000000000000004 {\"stream\":\"s@bookTicker\",\"data\":{\"n\":4}}\n",
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&perp).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(
            b"1000000000000000001 {\"stream\":\"p@bookTicker\",\"data\":{\"n\":1}}\n\
              1000000000000000003 {\"stream\":\"p@bookTicker\",\"data\":{\"n\":3}}\n",
        )
        .unwrap();
        gz.finish().unwrap();
        let inputs = [
            spot.to_string_lossy().into_owned(),
            perp.to_string_lossy().into_owned(),
        ];
        let mut r = Recording::open(&inputs).unwrap();
        let mut got = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            got.push((f.venue, f.data_str().to_string()));
        }
        assert_eq!(
            got,
            vec![
                (Venue::Perp, "{\"n\":1}".to_string()),
                (Venue::Spot, "{\"n\":2}".to_string()),
                (Venue::Perp, "{\"n\":3}".to_string()),
                (Venue::Spot, "{\"n\":4}".to_string()),
            ]
        );
        assert!(Recording::open(&["/nonexistent/x".to_string()]).is_err());
    }
}
