//! Binance public-data CSVs (data.binance.vision) for one market, given as `spot:PATH` / `perp:PATH`:
//! bookTicker → quotes; aggTrades → a trade plus a *trade-derived quote* (bid = ask = trade price, so a premium
//! exists on trade-only data); klines → a quote with bid = ask = close at the close time (sizes unknown: zero).
//! Headers are optional; timestamps in ms or µs (spot files since 2025) are told apart by magnitude.

use crate::market::detect::Format;
use crate::market::error::DataError;
use crate::market::event::{MarketEvent, MarketKind, Quote, Trade};
use crate::market::lines::LineReader;
use crate::market::num::{excerpt, parse_decimal, parse_epoch_ns};
use crate::market::recording::line_error;
use crate::model::{Decimal, Side, Venue};

const MAX_FIELDS: usize = 12;

/// Events from one Binance public-data CSV.
pub struct BinanceCsvSource {
    path: String,
    lines: LineReader,
    format: Format,
    venue: Venue,
    /// The trade-derived quote that follows an aggTrade.
    pending: Option<MarketEvent>,
}

impl BinanceCsvSource {
    pub(crate) fn new(path: &str, lines: LineReader, format: Format, venue: Venue) -> Self {
        BinanceCsvSource {
            path: path.to_string(),
            lines,
            format,
            venue,
            pending: None,
        }
    }

    pub(crate) fn next_event(&mut self) -> Option<Result<MarketEvent, DataError>> {
        if let Some(ev) = self.pending.take() {
            return Some(Ok(ev));
        }
        loop {
            let (no, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => return Some(Err(line_error(&self.path, self.lines.line_no(), e))),
            };
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if no == 1 && line.first().is_some_and(u8::is_ascii_alphabetic) {
                continue; // header
            }
            let result = match self.format {
                Format::BinanceBookTicker => parse_book_ticker(line, self.venue).map(|q| (q, None)),
                Format::BinanceAggTrades => {
                    parse_agg_trade(line, self.venue).map(|(t, q)| (t, Some(q)))
                }
                _ => parse_kline(line, self.venue).map(|q| (q, None)),
            };
            return Some(match result {
                Ok((first, second)) => {
                    self.pending = second;
                    Ok(first)
                }
                Err(msg) => Err(DataError::Line {
                    path: self.path.clone(),
                    line: no,
                    msg: format!("{}: {msg}", self.format.name()),
                }),
            });
        }
    }
}

/// Splits a CSV line into at most 12 fields; `Err` with the count if there are more.
fn split(line: &[u8]) -> Result<([&[u8]; MAX_FIELDS], usize), String> {
    let mut f = [&[][..]; MAX_FIELDS];
    let mut n = 0;
    for field in line.split(|&c| c == b',') {
        match f.get_mut(n) {
            Some(slot) => *slot = field.trim_ascii(),
            None => return Err(format!("more than {MAX_FIELDS} fields")),
        }
        n += 1;
    }
    Ok((f, n))
}

fn want_fields(n: usize, allowed: &[usize], names: &str) -> Result<(), String> {
    if allowed.contains(&n) {
        Ok(())
    } else {
        Err(format!("expected {names}, got {n} fields"))
    }
}

fn dec(f: &[u8], name: &str) -> Result<Decimal, String> {
    parse_decimal(f).ok_or_else(|| format!("field `{name}`: not a decimal: {:?}", excerpt(f)))
}

fn ts(f: &[u8], name: &str) -> Result<i64, String> {
    parse_epoch_ns(f).ok_or_else(|| format!("field `{name}`: not a timestamp: {:?}", excerpt(f)))
}

/// `update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time`; the event
/// time is used (the transaction time if the event time is empty).
fn parse_book_ticker(line: &[u8], venue: Venue) -> Result<MarketEvent, String> {
    let (f, n) = split(line)?;
    want_fields(n, &[7], "7 fields (update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time)")?;
    let ts = if f[6].is_empty() {
        ts(f[5], "transaction_time")?
    } else {
        ts(f[6], "event_time")?
    };
    Ok(MarketEvent {
        ts,
        kind: MarketKind::Quote(Quote {
            venue,
            bid: dec(f[1], "best_bid_price")?,
            bid_qty: dec(f[2], "best_bid_qty")?,
            ask: dec(f[3], "best_ask_price")?,
            ask_qty: dec(f[4], "best_ask_qty")?,
        }),
    })
}

/// `agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,is_best_match]`.
fn parse_agg_trade(line: &[u8], venue: Venue) -> Result<(MarketEvent, MarketEvent), String> {
    let (f, n) = split(line)?;
    want_fields(n, &[7, 8], "7 or 8 fields (agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,is_best_match])")?;
    let price = dec(f[1], "price")?;
    let qty = dec(f[2], "quantity")?;
    let ts = ts(f[5], "transact_time")?;
    let buyer_maker = if f[6].eq_ignore_ascii_case(b"true") {
        true
    } else if f[6].eq_ignore_ascii_case(b"false") {
        false
    } else {
        return Err(format!(
            "field `is_buyer_maker`: expected true or false, got {:?}",
            excerpt(f[6])
        ));
    };
    let trade = MarketEvent {
        ts,
        kind: MarketKind::Trade(Trade {
            venue,
            price,
            qty,
            taker_side: if buyer_maker { Side::Sell } else { Side::Buy },
        }),
    };
    let quote = MarketEvent {
        ts,
        kind: MarketKind::Quote(Quote {
            venue,
            bid: price,
            ask: price,
            bid_qty: qty,
            ask_qty: qty,
        }),
    };
    Ok((trade, quote))
}

/// `open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore`.
fn parse_kline(line: &[u8], venue: Venue) -> Result<MarketEvent, String> {
    let (f, n) = split(line)?;
    want_fields(
        n,
        &[12],
        "12 fields (open_time,open,high,low,close,volume,close_time,…)",
    )?;
    let close = dec(f[4], "close")?;
    Ok(MarketEvent {
        ts: ts(f[6], "close_time")?,
        kind: MarketKind::Quote(Quote {
            venue,
            bid: close,
            ask: close,
            bid_qty: Decimal::ZERO,
            ask_qty: Decimal::ZERO,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agg_trade_spot_us_and_futures_ms() {
        let (t, q) = parse_agg_trade(
            b"3160417830,61800.10,0.002,5266583935,5266583935,1723161256322123,True,True",
            Venue::Spot,
        )
        .unwrap();
        assert_eq!(t.ts, 1_723_161_256_322_123_000);
        assert!(matches!(t.kind, MarketKind::Trade(tr) if tr.taker_side == Side::Sell));
        assert!(matches!(q.kind, MarketKind::Quote(qq) if qq.bid == qq.ask));
        let (t, _) =
            parse_agg_trade(b"1,61800.10,0.002,5,5,1723161256322,false", Venue::Perp).unwrap();
        assert_eq!(t.ts, 1_723_161_256_322_000_000);
        assert!(
            parse_agg_trade(b"1,61800.10,0.002,5,5,1723161256322,maybe", Venue::Perp)
                .unwrap_err()
                .contains("is_buyer_maker")
        );
    }

    #[test]
    fn kline_and_book_ticker() {
        let k = parse_kline(
            b"1723161240000,61800.1,61810,61790,61805.5,12.5,1723161299999,772000.1,420,6.1,377000.2,0",
            Venue::Perp,
        )
        .unwrap();
        assert_eq!(k.ts, 1_723_161_299_999_000_000);
        let b = parse_book_ticker(
            b"1,61800.1,1.2,61800.2,0.5,1723161256313,1723161256314",
            Venue::Perp,
        )
        .unwrap();
        assert_eq!(b.ts, 1_723_161_256_314_000_000);
        assert!(
            parse_book_ticker(b"1,61800.1,1.2,61800.2,0.5,1723161256313", Venue::Perp)
                .unwrap_err()
                .contains("got 6 fields")
        );
        assert!(split(&[b','; 20]).is_err());
    }
}
