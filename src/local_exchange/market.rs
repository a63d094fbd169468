//! Market data the REST endpoints serve, kept from the replayed perp frames: the touch, recent trades (aggTrades),
//! one-minute candles (klines of any interval and the 24h ticker are aggregated from them), the mark price and
//! the funding rates in force at each funding time the replay crossed.

use std::collections::VecDeque;

use crate::market::{MarketKind, Quote};
use crate::model::{Decimal, Side, TsNs, NS_PER_MS};

/// Trades kept for `/aggTrades` (Binance's maximum `limit`).
pub const MAX_TRADES: usize = 1000;
/// One-minute candles kept: a day and a half, enough for the 24h ticker and `/klines?limit=1500` at 1m.
pub const MAX_CANDLES: usize = 2160;
const MINUTE_MS: i64 = 60_000;
const FUNDING_EVERY_MS: i64 = 8 * 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRec {
    pub id: i64,
    pub price: Decimal,
    pub qty: Decimal,
    pub buyer_maker: bool,
    pub ms: i64,
}

/// A candle: open time, OHLC, volumes and the number of trades.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub open_ms: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub quote_volume: Decimal,
    pub trades: u64,
    pub taker_buy_volume: Decimal,
    pub taker_buy_quote: Decimal,
    pub first_id: i64,
    pub last_id: i64,
}

impl Candle {
    fn new(open_ms: i64, t: &TradeRec) -> Candle {
        let mut c = Candle {
            open_ms,
            open: t.price,
            high: t.price,
            low: t.price,
            close: t.price,
            volume: Decimal::ZERO,
            quote_volume: Decimal::ZERO,
            trades: 0,
            taker_buy_volume: Decimal::ZERO,
            taker_buy_quote: Decimal::ZERO,
            first_id: t.id,
            last_id: t.id,
        };
        c.add(t);
        c
    }

    fn add(&mut self, t: &TradeRec) {
        self.high = self.high.max(t.price);
        self.low = self.low.min(t.price);
        self.close = t.price;
        let quote = t.qty * t.price;
        self.volume += t.qty;
        self.quote_volume += quote;
        self.trades += 1;
        self.last_id = t.id;
        if !t.buyer_maker {
            self.taker_buy_volume += t.qty;
            self.taker_buy_quote += quote;
        }
    }

    /// Folds a later candle into this one (for intervals longer than a minute).
    pub fn merge(&mut self, c: &Candle) {
        self.high = self.high.max(c.high);
        self.low = self.low.min(c.low);
        self.close = c.close;
        self.volume += c.volume;
        self.quote_volume += c.quote_volume;
        self.trades += c.trades;
        self.taker_buy_volume += c.taker_buy_volume;
        self.taker_buy_quote += c.taker_buy_quote;
        self.last_id = c.last_id;
    }
}

/// The perp mark price frame's content, with its time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkRec {
    pub mark: Decimal,
    pub index: Decimal,
    pub funding_rate: Decimal,
    pub ms: i64,
}

/// A funding time the replay crossed and the rate in force then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FundingRec {
    pub ms: i64,
    pub rate: Decimal,
    pub mark: Decimal,
}

#[derive(Debug, Default)]
pub struct MarketData {
    pub quote: Option<(Quote, i64)>,
    /// The `lastUpdateId` of `/depth` and `/ticker/bookTicker`: the update id `u` of the last recorded book frame
    /// (the numbering of the diff depth streams too), or, for recordings without ids, a count of book changes.
    pub book_update_id: i64,
    /// A recorded update id came by: the count is no longer used.
    recorded_ids: bool,
    pub trades: VecDeque<TradeRec>,
    pub candles: VecDeque<Candle>,
    pub mark: Option<MarkRec>,
    pub funding: Vec<FundingRec>,
    next_trade_id: i64,
    last_ms: i64,
}

impl MarketData {
    /// Takes in one replayed perp event at virtual time `ts`.
    pub fn on_event(&mut self, kind: &MarketKind, ts: TsNs) {
        let ms = ts / NS_PER_MS;
        self.cross_funding(ms);
        self.last_ms = ms;
        match kind {
            MarketKind::Quote(q) => {
                self.quote = Some((*q, ms));
                if !self.recorded_ids {
                    self.book_update_id += 1;
                }
            }
            MarketKind::Trade(t) => self.on_trade(t.price, t.qty, t.taker_side, ms),
            MarketKind::Mark(m) => {
                self.mark = Some(MarkRec {
                    mark: m.mark,
                    index: m.index,
                    funding_rate: m.funding_rate,
                    ms,
                })
            }
            MarketKind::Liquidation(_) => {}
        }
    }

    /// Takes in the update id `u` of a replayed book frame. A recording that starts over (looped) starts its ids
    /// over too, as a client resyncing from a fresh snapshot expects.
    pub fn on_book_update_id(&mut self, u: i64) {
        self.recorded_ids = true;
        self.book_update_id = u;
    }

    fn on_trade(&mut self, price: Decimal, qty: Decimal, taker: Side, ms: i64) {
        self.next_trade_id += 1;
        let t = TradeRec {
            id: self.next_trade_id,
            price,
            qty,
            buyer_maker: taker == Side::Sell,
            ms,
        };
        if self.trades.len() == MAX_TRADES {
            self.trades.pop_front();
        }
        self.trades.push_back(t);
        let open_ms = ms - ms.rem_euclid(MINUTE_MS);
        match self.candles.back_mut() {
            Some(c) if c.open_ms == open_ms => c.add(&t),
            _ => {
                if self.candles.len() == MAX_CANDLES {
                    self.candles.pop_front();
                }
                self.candles.push_back(Candle::new(open_ms, &t));
            }
        }
    }

    /// Records the funding rate in force at each funding time (00, 08, 16 UTC) virtual time passed.
    fn cross_funding(&mut self, ms: i64) {
        if self.last_ms == 0 {
            return;
        }
        let next = next_funding_ms(self.last_ms);
        if ms >= next {
            if let Some(m) = self.mark {
                self.funding.push(FundingRec {
                    ms: next,
                    rate: m.funding_rate,
                    mark: m.mark,
                });
            }
        }
    }

    /// Virtual time of the last event (ms), 0 before any.
    pub fn last_ms(&self) -> i64 {
        self.last_ms
    }

    /// Candles of `interval_ms` (a multiple of a minute) opening in `[start, end]`, oldest first, at most `limit`
    /// (the latest ones when no start is given).
    pub fn klines(
        &self,
        interval_ms: i64,
        start: Option<i64>,
        end: Option<i64>,
        limit: usize,
    ) -> Vec<Candle> {
        let mut out: Vec<Candle> = Vec::new();
        for c in &self.candles {
            let open = c.open_ms - c.open_ms.rem_euclid(interval_ms);
            if start.is_some_and(|s| open < s - s.rem_euclid(interval_ms))
                || end.is_some_and(|e| open > e)
            {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.open_ms == open => last.merge(c),
                _ => out.push(Candle {
                    open_ms: open,
                    ..*c
                }),
            }
        }
        if start.is_some() {
            out.truncate(limit);
        } else if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        out
    }

    /// The candles of the last 24 hours merged into one, or `None` before the first trade.
    pub fn last_day(&self) -> Option<Candle> {
        let from = self.last_ms - 24 * 3_600_000;
        let mut it = self
            .candles
            .iter()
            .filter(|c| c.open_ms >= from - MINUTE_MS);
        let mut day = *it.next()?;
        for c in it {
            day.merge(c);
        }
        Some(day)
    }
}

/// The first funding time (00, 08, 16 UTC) after `ms`.
pub fn next_funding_ms(ms: i64) -> i64 {
    ms - ms.rem_euclid(FUNDING_EVERY_MS) + FUNDING_EVERY_MS
}

/// A kline interval (`1m` … `1M`) in ms; `None` for an unknown one.
pub fn interval_ms(s: &str) -> Option<i64> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "m" => MINUTE_MS,
        "h" => 60 * MINUTE_MS,
        "d" => 1_440 * MINUTE_MS,
        "w" => 7 * 1_440 * MINUTE_MS,
        "M" => 30 * 1_440 * MINUTE_MS,
        _ => return None,
    };
    const ALLOWED: &[&str] = &[
        "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M",
    ];
    ALLOWED.contains(&s).then_some(n * unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Trade;
    use crate::model::Venue;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn trade(md: &mut MarketData, price: &str, qty: &str, taker: Side, ms: i64) {
        let t = MarketKind::Trade(Trade {
            venue: Venue::Perp,
            price: d(price),
            qty: d(qty),
            taker_side: taker,
        });
        md.on_event(&t, ms * NS_PER_MS);
    }

    #[test]
    fn trades_become_minute_candles_and_longer_intervals() {
        let mut md = MarketData::default();
        let t0 = 1_723_161_000_000; // a five-minute boundary
        trade(&mut md, "100", "1", Side::Buy, t0 + 1_000);
        trade(&mut md, "102", "2", Side::Sell, t0 + 30_000);
        trade(&mut md, "99", "1", Side::Buy, t0 + 61_000);
        assert_eq!(md.candles.len(), 2);
        let c = md.candles[0];
        assert_eq!(
            (c.open, c.high, c.low, c.close),
            (d("100"), d("102"), d("100"), d("102"))
        );
        assert_eq!(
            (c.volume, c.trades, c.taker_buy_volume),
            (d("3"), 2, d("1"))
        );
        let five = md.klines(interval_ms("5m").unwrap(), None, None, 500);
        assert_eq!(five.len(), 1);
        assert_eq!(
            (five[0].low, five[0].close, five[0].trades),
            (d("99"), d("99"), 3)
        );
        assert_eq!(five[0].open_ms % 300_000, 0);
        let last_one = md.klines(60_000, None, None, 1);
        assert_eq!(last_one[0].open_ms, t0 + 60_000);
        let day = md.last_day().unwrap();
        assert_eq!(
            (day.open, day.high, day.low, day.volume),
            (d("100"), d("102"), d("99"), d("4"))
        );
        assert!(md.trades.back().unwrap().id > md.trades.front().unwrap().id);
    }

    #[test]
    fn intervals() {
        assert_eq!(interval_ms("1m"), Some(60_000));
        assert_eq!(interval_ms("4h"), Some(14_400_000));
        assert_eq!(interval_ms("7m"), None);
        assert_eq!(interval_ms(""), None);
        assert_eq!(next_funding_ms(1), FUNDING_EVERY_MS);
    }
}
