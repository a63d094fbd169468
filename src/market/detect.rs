//! What an input is: the `spot:` / `perp:` prefix of a command-line input, the market a file name suggests, and the
//! file format told from its first non-empty lines.

use std::path::Path;

use crate::model::Venue;

/// The quote CSV header (`ts_ns,market,bid,ask,bid_qty,ask_qty`).
pub const QUOTE_CSV_HEADER: &str = "ts_ns,market,bid,ask,bid_qty,ask_qty";

/// An input as given on the command line: `PATH`, `spot:PATH` or `perp:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub path: String,
    /// The market from an explicit prefix.
    pub venue: Option<Venue>,
}

impl InputSpec {
    pub fn parse(s: &str) -> InputSpec {
        for (prefix, venue) in [("spot:", Venue::Spot), ("perp:", Venue::Perp)] {
            if let Some(path) = s.strip_prefix(prefix) {
                return InputSpec {
                    path: path.to_string(),
                    venue: Some(venue),
                };
            }
        }
        InputSpec {
            path: s.to_string(),
            venue: None,
        }
    }
}

/// The market a file name suggests: contains "spot" → spot; "usdm", "perp", "futures", "fapi" or "fstream" → perp.
pub fn venue_from_name(path: &str) -> Option<Venue> {
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())?;
    if name.contains("spot") {
        Some(Venue::Spot)
    } else if ["usdm", "perp", "futures", "fapi", "fstream"]
        .iter()
        .any(|k| name.contains(k))
    {
        Some(Venue::Perp)
    } else {
        None
    }
}

/// The file formats premia reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<local receive timestamp> <websocket frame>` per line.
    Recording,
    /// `ts_ns,market,bid,ask,bid_qty,ask_qty`.
    QuoteCsv,
    /// data.binance.vision bookTicker CSV.
    BinanceBookTicker,
    /// data.binance.vision aggTrades CSV (USD-M with header, 7 columns; spot without header, 8 columns).
    BinanceAggTrades,
    /// data.binance.vision klines CSV (12 columns).
    BinanceKlines,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Recording => "websocket recording",
            Format::QuoteCsv => "quote CSV",
            Format::BinanceBookTicker => "Binance bookTicker CSV",
            Format::BinanceAggTrades => "Binance aggTrades CSV",
            Format::BinanceKlines => "Binance klines CSV",
        }
    }

    /// Binance public-data CSVs carry no market column: they need a `spot:` / `perp:` prefix.
    pub fn needs_prefix(self) -> bool {
        matches!(
            self,
            Format::BinanceBookTicker | Format::BinanceAggTrades | Format::BinanceKlines
        )
    }
}

/// Tells the format from the first non-empty line (and the second, when the first is a header).
pub fn detect_format(first: &[u8], second: Option<&[u8]>) -> Option<Format> {
    let first = trim(first);
    if first.first().is_some_and(u8::is_ascii_digit) {
        if let Some(sp) = memchr::memchr(b' ', first) {
            let ts = &first[..sp];
            let rest = trim(&first[sp..]);
            if ts.iter().all(u8::is_ascii_digit) && matches!(rest.first(), Some(b'{' | b'[')) {
                return Some(Format::Recording);
            }
        }
    }
    let lower = first.to_ascii_lowercase();
    if lower.starts_with(b"ts_ns,market,") {
        return Some(Format::QuoteCsv);
    }
    if lower.starts_with(b"update_id,best_bid_price") {
        return Some(Format::BinanceBookTicker);
    }
    if lower.starts_with(b"agg_trade_id,") {
        return Some(Format::BinanceAggTrades);
    }
    if lower.starts_with(b"open_time,open,high,low,close") {
        return Some(Format::BinanceKlines);
    }
    match detect_csv_row(first) {
        Some(f) => Some(f),
        // An unknown header: judge by the first data row.
        None if first.first().is_some_and(u8::is_ascii_alphabetic) => {
            second.and_then(|s| detect_csv_row(trim(s)))
        }
        None => None,
    }
}

/// Tells a headerless CSV format from one data row.
fn detect_csv_row(row: &[u8]) -> Option<Format> {
    let fields: Vec<&[u8]> = row.split(|&c| c == b',').map(trim).collect();
    let numeric = |f: &[u8]| crate::market::num::parse_decimal(f).is_some();
    let boolean = |f: &[u8]| f.eq_ignore_ascii_case(b"true") || f.eq_ignore_ascii_case(b"false");
    match fields.as_slice() {
        [ts, m, rest @ ..]
            if rest.len() == 4
                && numeric(ts)
                && (m.eq_ignore_ascii_case(b"spot") || m.eq_ignore_ascii_case(b"perp")) =>
        {
            Some(Format::QuoteCsv)
        }
        [head @ .., b1] if head.len() == 6 && boolean(b1) && head.iter().all(|f| numeric(f)) => {
            Some(Format::BinanceAggTrades)
        }
        [head @ .., b1, b2]
            if head.len() == 6 && boolean(b1) && boolean(b2) && head.iter().all(|f| numeric(f)) =>
        {
            Some(Format::BinanceAggTrades)
        }
        all if all.len() == 7 && all.iter().all(|f| numeric(f)) => Some(Format::BinanceBookTicker),
        all if all.len() == 12 && all.iter().all(|f| numeric(f)) => Some(Format::BinanceKlines),
        _ => None,
    }
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_names() {
        assert_eq!(
            InputSpec::parse("spot:a/b.csv"),
            InputSpec {
                path: "a/b.csv".into(),
                venue: Some(Venue::Spot)
            }
        );
        assert_eq!(InputSpec::parse("perp:x").venue, Some(Venue::Perp));
        assert_eq!(InputSpec::parse("x.gz").venue, None);
        assert_eq!(
            venue_from_name("data/btcusdt_20240808_spot.rec.gz"),
            Some(Venue::Spot)
        );
        assert_eq!(
            venue_from_name("data/usdm_btcusdt_20240808.gz"),
            Some(Venue::Perp)
        );
        assert_eq!(venue_from_name("fstream-capture.txt"), Some(Venue::Perp));
        assert_eq!(venue_from_name("spotty/capture.txt"), None);
    }

    #[test]
    fn formats() {
        let d = |a: &str, b: Option<&str>| detect_format(a.as_bytes(), b.map(str::as_bytes));
        assert_eq!(
            d("1723161254087891268 {\"stream\":1}", None),
            Some(Format::Recording)
        );
        assert_eq!(d(QUOTE_CSV_HEADER, None), Some(Format::QuoteCsv));
        assert_eq!(d("1,spot,1.0,1.1,2,3", None), Some(Format::QuoteCsv));
        assert_eq!(
            d("update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time", None),
            Some(Format::BinanceBookTicker)
        );
        assert_eq!(
            d(
                "4893287,61800.1,1.2,61800.2,0.5,1723161256313,1723161256314",
                None
            ),
            Some(Format::BinanceBookTicker)
        );
        assert_eq!(
            d(
                "3160417830,61800.10,0.002,5266583935,5266583935,1723161256322,false",
                None
            ),
            Some(Format::BinanceAggTrades)
        );
        assert_eq!(
            d(
                "3160417830,61800.10,0.002,5266583935,5266583935,1723161256322123,True,True",
                None
            ),
            Some(Format::BinanceAggTrades)
        );
        assert_eq!(
            d("1723161240000,61800.1,61810,61790,61805.5,12.5,1723161299999,772000.1,420,6.1,377000.2,0", None),
            Some(Format::BinanceKlines)
        );
        assert_eq!(
            d("a,b,c", Some("1723161240000,61800.1,61810,61790,61805.5,12.5,1723161299999,772000.1,420,6.1,377000.2,0")),
            Some(Format::BinanceKlines)
        );
        assert_eq!(d("hello world", None), None);
        assert_eq!(d("{\"e\":1}", None), None);
    }
}
