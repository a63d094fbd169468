//! Domain market events: what every data source (recording, CSV, live feed) turns exchange data into.

use crate::model::{Decimal, Side, TsNs, Venue};

/// Best bid/ask of one market.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quote {
    pub venue: Venue,
    pub bid: Decimal,
    pub ask: Decimal,
    pub bid_qty: Decimal,
    pub ask_qty: Decimal,
}

impl Quote {
    /// A zero spot quote: a placeholder for buffers that are filled in place.
    pub const EMPTY: Quote = Quote {
        venue: Venue::Spot,
        bid: Decimal::ZERO,
        ask: Decimal::ZERO,
        bid_qty: Decimal::ZERO,
        ask_qty: Decimal::ZERO,
    };
}

/// One public trade (or aggregate trade).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trade {
    pub venue: Venue,
    pub price: Decimal,
    pub qty: Decimal,
    /// Side of the aggressor (taker).
    pub taker_side: Side,
}

/// Perp mark price update (markPrice stream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub mark: Decimal,
    pub index: Decimal,
    /// Funding rate as a fraction (0.0001 = 1 bp).
    pub funding_rate: Decimal,
}

/// A liquidation order on the perp (forceOrder stream).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Liquidation {
    pub side: Side,
    pub price: Decimal,
    pub qty: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MarketKind {
    Quote(Quote),
    Trade(Trade),
    Mark(Mark),
    Liquidation(Liquidation),
}

/// A market event with its timestamp: local receive time for recordings and live feeds, the file's time for CSVs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarketEvent {
    pub ts: TsNs,
    pub kind: MarketKind,
}
