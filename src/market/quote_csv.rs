//! The generic quote CSV (`ts_ns,market,bid,ask,bid_qty,ask_qty`; market = `spot` or `perp`) — the backtest hot
//! path: one reused line buffer, memchr splitting, no allocation per line.

use crate::market::detect::QUOTE_CSV_HEADER;
use crate::market::error::DataError;
use crate::market::event::{MarketEvent, MarketKind, Quote};
use crate::market::lines::LineReader;
use crate::market::num::{excerpt, parse_decimal, parse_i64};
use crate::market::recording::line_error;
use crate::model::Venue;

const FIELDS: [&str; 6] = ["ts_ns", "market", "bid", "ask", "bid_qty", "ask_qty"];

/// Why a quote CSV line is bad (turned into a message only on the error path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteLineError {
    /// Fewer or more than 6 fields.
    FieldCount,
    /// The field with this index (see the header) does not parse.
    Field(usize),
}

/// Parses one data line of the quote CSV.
#[inline]
pub fn parse_quote_line(line: &[u8]) -> Result<MarketEvent, QuoteLineError> {
    let mut f = [&[][..]; 6];
    let mut rest = line;
    for slot in f.iter_mut().take(5) {
        let Some(pos) = memchr::memchr(b',', rest) else {
            return Err(QuoteLineError::FieldCount);
        };
        let (head, tail) = rest.split_at(pos);
        *slot = head;
        rest = tail.get(1..).unwrap_or(&[]);
    }
    if memchr::memchr(b',', rest).is_some() {
        return Err(QuoteLineError::FieldCount);
    }
    f[5] = rest;
    let ts = match parse_i64(f[0]) {
        Some(ts) if ts >= 0 => ts,
        _ => return Err(QuoteLineError::Field(0)),
    };
    let venue = match f[1] {
        b"perp" => Venue::Perp,
        b"spot" => Venue::Spot,
        _ => return Err(QuoteLineError::Field(1)),
    };
    let bid = parse_decimal(f[2]).ok_or(QuoteLineError::Field(2))?;
    let ask = parse_decimal(f[3]).ok_or(QuoteLineError::Field(3))?;
    let bid_qty = parse_decimal(f[4]).ok_or(QuoteLineError::Field(4))?;
    let ask_qty = parse_decimal(f[5]).ok_or(QuoteLineError::Field(5))?;
    Ok(MarketEvent {
        ts,
        kind: MarketKind::Quote(Quote {
            venue,
            bid,
            ask,
            bid_qty,
            ask_qty,
        }),
    })
}

/// Explains a [`QuoteLineError`] for `line`.
pub fn describe_error(line: &[u8], e: QuoteLineError) -> String {
    match e {
        QuoteLineError::FieldCount => format!(
            "expected 6 fields ({QUOTE_CSV_HEADER}), got {}: {:?}",
            line.split(|&c| c == b',').count(),
            excerpt(line)
        ),
        QuoteLineError::Field(i) => {
            let value = line.split(|&c| c == b',').nth(i).unwrap_or(&[]);
            let name = FIELDS.get(i).copied().unwrap_or("?");
            let want = match i {
                0 => "an integer timestamp in ns",
                1 => "`spot` or `perp`",
                _ => "a decimal",
            };
            format!("field `{name}`: expected {want}, got {:?}", excerpt(value))
        }
    }
}

/// Quote events from a quote CSV file.
pub struct QuoteCsvSource {
    path: String,
    lines: LineReader,
}

impl QuoteCsvSource {
    pub(crate) fn new(path: &str, lines: LineReader) -> Self {
        QuoteCsvSource {
            path: path.to_string(),
            lines,
        }
    }

    #[inline]
    pub(crate) fn next_event(&mut self) -> Option<Result<MarketEvent, DataError>> {
        loop {
            let (no, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => return Some(Err(line_error(&self.path, self.lines.line_no(), e))),
            };
            match parse_quote_line(line) {
                Ok(ev) => return Some(Ok(ev)),
                Err(e) => {
                    let trimmed = line.trim_ascii();
                    if trimmed.is_empty() || (no == 1 && is_header(trimmed)) {
                        continue;
                    }
                    return Some(Err(DataError::Line {
                        path: self.path.clone(),
                        line: no,
                        msg: describe_error(line, e),
                    }));
                }
            }
        }
    }
}

fn is_header(line: &[u8]) -> bool {
    line.eq_ignore_ascii_case(QUOTE_CSV_HEADER.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Decimal;
    use std::str::FromStr;

    #[test]
    fn parses_a_line() {
        let ev =
            parse_quote_line(b"1723161255088169167,perp,61800.20,61800.30,2.507,2.510").unwrap();
        assert_eq!(ev.ts, 1723161255088169167);
        let MarketKind::Quote(q) = ev.kind else {
            panic!("not a quote")
        };
        assert_eq!(q.venue, Venue::Perp);
        assert_eq!(q.bid, Decimal::from_str("61800.20").unwrap());
        assert_eq!(q.ask_qty.to_string(), "2.510");
    }

    #[test]
    fn errors_name_the_field() {
        let line = b"1,perp,61800.20,x,2.507,2.510";
        let e = parse_quote_line(line).unwrap_err();
        assert_eq!(e, QuoteLineError::Field(3));
        assert_eq!(
            describe_error(line, e),
            "field `ask`: expected a decimal, got \"x\""
        );
        assert_eq!(
            parse_quote_line(b"1,perp,1,2,3").unwrap_err(),
            QuoteLineError::FieldCount
        );
        assert_eq!(
            parse_quote_line(b"1,perp,1,2,3,4,5").unwrap_err(),
            QuoteLineError::FieldCount
        );
        assert_eq!(
            parse_quote_line(b"1,usdm,1,2,3,4").unwrap_err(),
            QuoteLineError::Field(1)
        );
        assert_eq!(
            parse_quote_line(b"-1,spot,1,2,3,4").unwrap_err(),
            QuoteLineError::Field(0)
        );
        assert_eq!(
            parse_quote_line(b"").unwrap_err(),
            QuoteLineError::FieldCount
        );
    }
}
