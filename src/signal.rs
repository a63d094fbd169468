//! Series derived from the two markets' quotes: mids, the spot premium, spreads, mark/index/funding.
//!
//! [`MarketState`] keeps the last quote of each market and produces a [`Sample`] — one value per [`SeriesId`] — at
//! every quote event while both markets' last quotes are fresh. Floats live here and in indicators only; money stays exact elsewhere.

use crate::market::{Mark, Quote};
use crate::model::{to_f64, TsNs, Venue};

/// Every series a strategy can name. The discriminant is the index into [`Sample::values`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SeriesId {
    SpotMid = 0,
    PerpMid,
    PremiumBps,
    SpotSpreadBps,
    PerpSpreadBps,
    SpotBid,
    SpotAsk,
    PerpBid,
    PerpAsk,
    MarkPrice,
    IndexPrice,
    FundingBps,
}

pub const SERIES_COUNT: usize = 12;

impl SeriesId {
    pub const ALL: [SeriesId; SERIES_COUNT] = [
        SeriesId::SpotMid,
        SeriesId::PerpMid,
        SeriesId::PremiumBps,
        SeriesId::SpotSpreadBps,
        SeriesId::PerpSpreadBps,
        SeriesId::SpotBid,
        SeriesId::SpotAsk,
        SeriesId::PerpBid,
        SeriesId::PerpAsk,
        SeriesId::MarkPrice,
        SeriesId::IndexPrice,
        SeriesId::FundingBps,
    ];

    /// Name used in strategy files.
    pub fn name(self) -> &'static str {
        match self {
            SeriesId::SpotMid => "spot_mid",
            SeriesId::PerpMid => "perp_mid",
            SeriesId::PremiumBps => "premium_bps",
            SeriesId::SpotSpreadBps => "spot_spread_bps",
            SeriesId::PerpSpreadBps => "perp_spread_bps",
            SeriesId::SpotBid => "spot_bid",
            SeriesId::SpotAsk => "spot_ask",
            SeriesId::PerpBid => "perp_bid",
            SeriesId::PerpAsk => "perp_ask",
            SeriesId::MarkPrice => "mark_price",
            SeriesId::IndexPrice => "index_price",
            SeriesId::FundingBps => "funding_bps",
        }
    }

    pub fn from_name(name: &str) -> Option<SeriesId> {
        SeriesId::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// One-line description for docs and `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            SeriesId::SpotMid => "spot (bid+ask)/2",
            SeriesId::PerpMid => "perp (bid+ask)/2",
            SeriesId::PremiumBps => "(spot_mid - perp_mid) / perp_mid * 10000",
            SeriesId::SpotSpreadBps => "spot (ask-bid)/mid * 10000",
            SeriesId::PerpSpreadBps => "perp (ask-bid)/mid * 10000",
            SeriesId::SpotBid => "spot best bid",
            SeriesId::SpotAsk => "spot best ask",
            SeriesId::PerpBid => "perp best bid",
            SeriesId::PerpAsk => "perp best ask",
            SeriesId::MarkPrice => "perp mark price (NaN until the first markPrice event)",
            SeriesId::IndexPrice => "perp index price (NaN until the first markPrice event)",
            SeriesId::FundingBps => "funding rate in bps (NaN until the first markPrice event)",
        }
    }
}

/// The value of every series at one instant. NaN means "not known yet".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub ts: TsNs,
    pub values: [f64; SERIES_COUNT],
}

impl Sample {
    #[inline]
    pub fn get(&self, id: SeriesId) -> f64 {
        self.values[id as usize]
    }
}

/// Last known quotes of both markets and the last mark price.
///
/// A sample pairs the two markets' last quotes only while both are fresh (no older than `max_age`). A market silent
/// for longer than that is a gap: no samples are taken until it quotes again, and the first sample after it is
/// flagged ([`MarketState::take_gap`]) so the indicators restart their warm-up there.
#[derive(Debug, Clone)]
pub struct MarketState {
    pub spot: Option<Quote>,
    pub perp: Option<Quote>,
    pub mark: Option<Mark>,
    /// Timestamps of the last quote of each market (feed staleness).
    pub spot_ts: Option<TsNs>,
    pub perp_ts: Option<TsNs>,
    /// Last perp mid in f64 (NaN until the first perp quote), for per-event estimates.
    pub perp_mid_f: f64,
    /// Last bid/ask of each market in f64 (converted once per quote).
    spot_f: [f64; 2],
    perp_f: [f64; 2],
    mark_f: [f64; 3],
    has_mark: bool,
    /// The series samples compute (the others stay NaN): what the strategy reads. All by default.
    needed: [bool; SERIES_COUNT],
    /// Whether a series beyond the mids and the premium is needed (then every series is computed).
    all_series: bool,
    /// The last sample, updated in place.
    sample: Sample,
    /// A quote older than this is stale: it is not paired into a sample (`max_feed_staleness`).
    max_age: TsNs,
    /// A gap (a market silent for longer than `max_age`) was seen since the last sample.
    gap: bool,
}

impl Default for MarketState {
    fn default() -> Self {
        MarketState::new()
    }
}

/// Bid and ask of a quote in f64, as the indicators use them (each the correctly rounded value of the decimal).
#[inline]
pub fn quote_prices(q: &Quote) -> [f64; 2] {
    [to_f64(q.bid), to_f64(q.ask)]
}

#[inline]
fn bps(num: f64, den: f64) -> f64 {
    num / den * 10_000.0
}

impl MarketState {
    pub fn new() -> Self {
        MarketState {
            spot: None,
            perp: None,
            mark: None,
            spot_ts: None,
            perp_ts: None,
            needed: [true; SERIES_COUNT],
            mark_f: [f64::NAN; 3],
            spot_f: [f64::NAN; 2],
            perp_f: [f64::NAN; 2],
            has_mark: false,
            perp_mid_f: f64::NAN,
            all_series: true,
            sample: Sample {
                ts: 0,
                values: [f64::NAN; SERIES_COUNT],
            },
            max_age: TsNs::MAX,
            gap: false,
        }
    }

    /// Quotes older than `max_age` are stale (never paired into a sample); unlimited by default.
    pub fn set_max_age(&mut self, max_age: TsNs) {
        self.max_age = max_age.max(0);
    }

    /// Whether the sample just taken is the first after a gap (or the first ever); clears the flag.
    #[inline]
    pub fn take_gap(&mut self) -> bool {
        std::mem::take(&mut self.gap)
    }

    /// Timestamp of the older of the two markets' last quotes (`TsNs::MIN` until both have quoted).
    #[inline]
    pub fn oldest_quote_ts(&self) -> TsNs {
        match (self.spot_ts, self.perp_ts) {
            (Some(s), Some(p)) => s.min(p),
            _ => TsNs::MIN,
        }
    }

    /// Limits samples to the series in `needed` (the others are left NaN): a strategy's samples then cost only
    /// what it reads.
    pub fn set_needed(&mut self, needed: [bool; SERIES_COUNT]) {
        self.needed = needed;
        const CHEAP: [SeriesId; 3] = [SeriesId::SpotMid, SeriesId::PerpMid, SeriesId::PremiumBps];
        self.all_series = SeriesId::ALL
            .iter()
            .any(|&s| needed[s as usize] && !CHEAP.contains(&s));
        // What is not computed stays undefined.
        self.sample.values = [f64::NAN; SERIES_COUNT];
    }

    pub fn on_mark(&mut self, m: &Mark) {
        self.mark = Some(*m);
        self.mark_f = [
            to_f64(m.mark),
            to_f64(m.index),
            to_f64(m.funding_rate) * 10_000.0,
        ];
        self.has_mark = true;
    }

    /// Records a quote; returns the new sample when both markets have a quote.
    #[inline]
    pub fn on_quote(&mut self, ts: TsNs, q: &Quote) -> Option<Sample> {
        self.update_sample(ts, q, quote_prices(q))
            .then_some(self.sample)
    }

    /// Records a quote and, when the other market's last quote is fresh, updates [`MarketState::sample`] in place
    /// (only the series the strategy reads; the others stay NaN). Returns whether there is a new sample.
    #[inline]
    pub fn update_sample(&mut self, ts: TsNs, q: &Quote, f: [f64; 2]) -> bool {
        // The new prices are used from `f`, not read back from where they were just stored: a load that
        // straddles a store still in flight stalls until the store completes.
        let (spot_f, perp_f, own_prev, other_ts) = match q.venue {
            Venue::Spot => {
                let prev = self.spot_ts;
                self.spot = Some(*q);
                self.spot_ts = Some(ts);
                self.spot_f = f;
                (f, self.perp_f, prev, self.perp_ts)
            }
            Venue::Perp => {
                let prev = self.perp_ts;
                self.perp = Some(*q);
                self.perp_ts = Some(ts);
                self.perp_f = f;
                self.perp_mid_f = (f[0] + f[1]) * 0.5;
                (self.spot_f, f, prev, self.spot_ts)
            }
        };
        // This market was silent for longer than the limit (or never quoted): a gap ends here.
        self.gap |= ts.saturating_sub(own_prev.unwrap_or(TsNs::MIN)) > self.max_age;
        let Some(other_ts) = other_ts else {
            return false;
        };
        if ts.saturating_sub(other_ts) > self.max_age {
            // The other market is stale: its old quote is not paired with this one.
            self.gap = true;
            return false;
        }
        let ([sb, sa], [pb, pa]) = (spot_f, perp_f);
        let spot_mid = (sb + sa) * 0.5;
        let perp_mid = (pb + pa) * 0.5;
        let need = &self.needed;
        let v = &mut self.sample.values;
        self.sample.ts = ts;
        v[SeriesId::SpotMid as usize] = spot_mid;
        v[SeriesId::PerpMid as usize] = perp_mid;
        if need[SeriesId::PremiumBps as usize] {
            v[SeriesId::PremiumBps as usize] = bps(spot_mid - perp_mid, perp_mid);
        }
        if self.all_series {
            v[SeriesId::SpotSpreadBps as usize] = bps(sa - sb, spot_mid);
            v[SeriesId::PerpSpreadBps as usize] = bps(pa - pb, perp_mid);
            v[SeriesId::SpotBid as usize] = sb;
            v[SeriesId::SpotAsk as usize] = sa;
            v[SeriesId::PerpBid as usize] = pb;
            v[SeriesId::PerpAsk as usize] = pa;
            v[SeriesId::MarkPrice as usize] = self.mark_f[0];
            v[SeriesId::IndexPrice as usize] = self.mark_f[1];
            v[SeriesId::FundingBps as usize] = self.mark_f[2];
        }
        true
    }

    /// The last sample (valid once [`MarketState::update_sample`] returned true).
    #[inline]
    pub fn sample(&self) -> &Sample {
        &self.sample
    }

    /// Both markets have quoted.
    #[inline]
    pub fn ready(&self) -> bool {
        self.spot.is_some() && self.perp.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Decimal;
    use std::str::FromStr;

    fn q(venue: Venue, bid: &str, ask: &str) -> Quote {
        Quote {
            venue,
            bid: Decimal::from_str(bid).unwrap(),
            ask: Decimal::from_str(ask).unwrap(),
            bid_qty: Decimal::ONE,
            ask_qty: Decimal::ONE,
        }
    }

    #[test]
    fn samples_pair_only_fresh_quotes_and_flag_the_first_after_a_gap() {
        let mut m = MarketState::new();
        m.set_max_age(5);
        assert!(m.on_quote(0, &q(Venue::Spot, "100.0", "100.2")).is_none());
        assert!(m.on_quote(1, &q(Venue::Perp, "99.9", "100.1")).is_some());
        assert!(m.take_gap(), "the first sample starts the warm-up");
        // The spot quote is 5 old: fresh (the limit is inclusive).
        assert!(m.on_quote(5, &q(Venue::Perp, "99.9", "100.1")).is_some());
        assert!(!m.take_gap());
        // 6 old: stale, no sample.
        assert!(m.on_quote(6, &q(Venue::Perp, "99.8", "100.0")).is_none());
        assert_eq!(m.oldest_quote_ts(), 0);
        // The spot is back: a sample, flagged as the first after the gap.
        assert!(m.on_quote(7, &q(Venue::Spot, "100.0", "100.2")).is_some());
        assert!(m.take_gap());
        assert!(!m.take_gap());
        // A market back from a silence longer than the limit also ends a gap, even if no event saw it stale.
        // (The perp last quoted at 6; the spot at 8 keeps the pairing fresh, then the perp quotes at 13.)
        assert!(m.on_quote(8, &q(Venue::Spot, "100.0", "100.2")).is_some());
        assert!(!m.take_gap());
        assert!(m.on_quote(13, &q(Venue::Perp, "99.9", "100.1")).is_some());
        assert!(m.take_gap(), "the perp was silent from 6 to 13");
    }

    #[test]
    fn premium_needs_both_markets() {
        let mut m = MarketState::new();
        assert!(m.on_quote(1, &q(Venue::Spot, "100.0", "100.2")).is_none());
        let s = m.on_quote(2, &q(Venue::Perp, "99.9", "100.1")).unwrap();
        assert_eq!(s.get(SeriesId::SpotMid), 100.1);
        assert_eq!(s.get(SeriesId::PerpMid), 100.0);
        assert!((s.get(SeriesId::PremiumBps) - 10.0).abs() < 1e-9);
        assert!((s.get(SeriesId::PerpSpreadBps) - 20.0).abs() < 1e-9);
        assert!(s.get(SeriesId::MarkPrice).is_nan());
        assert_eq!(
            SeriesId::from_name("premium_bps"),
            Some(SeriesId::PremiumBps)
        );
        assert_eq!(SeriesId::ALL.len(), SERIES_COUNT);
    }
}
