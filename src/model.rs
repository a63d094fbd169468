//! Domain types shared by every part of premia: sides, orders, fills, positions, exchange filters.
//!
//! Money is exact: prices and quantities are [`Decimal`]. Timestamps are nanoseconds since the Unix epoch (UTC).

use rust_decimal::prelude::*;
use serde::{Deserialize, Serialize};

pub use rust_decimal::Decimal;

/// Nanoseconds since the Unix epoch.
pub type TsNs = i64;

pub const NS_PER_MS: i64 = 1_000_000;
pub const NS_PER_S: i64 = 1_000_000_000;

/// Which market a quote or trade belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Venue {
    Spot,
    Perp,
}

impl Venue {
    pub fn as_str(self) -> &'static str {
        match self {
            Venue::Spot => "spot",
            Venue::Perp => "perp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    /// +1 for buys, -1 for sells.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderType {
    Market,
    Limit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MARKET",
            OrderType::Limit => "LIMIT",
        }
    }
}

/// Life cycle of an order as premia tracks it.
///
/// `Intent` is written to the store before the order is sent; `Unknown` means a send timed out or got a 5xx and
/// must be resolved by client order id before anything else is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    Intent,
    Sent,
    Unknown,
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
}

impl OrderState {
    /// No further fills can arrive.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Intent => "INTENT",
            OrderState::Sent => "SENT",
            OrderState::Unknown => "UNKNOWN",
            OrderState::New => "NEW",
            OrderState::PartiallyFilled => "PARTIALLY_FILLED",
            OrderState::Filled => "FILLED",
            OrderState::Canceled => "CANCELED",
            OrderState::Rejected => "REJECTED",
            OrderState::Expired => "EXPIRED",
        }
    }
}

/// What the engine wants sent to the exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub client_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: Decimal,
    /// Limit price; `None` for market orders.
    pub price: Option<Decimal>,
    pub reduce_only: bool,
    /// Rule (or exit reason) that decided this order.
    pub rule: String,
    /// Timestamp of the event that decided this order.
    pub decided_ts: TsNs,
}

/// An order as stored: the request plus its state and fill progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub request: OrderRequest,
    pub state: OrderState,
    #[serde(default)]
    pub exchange_id: Option<i64>,
    #[serde(default)]
    pub filled_qty: Decimal,
    #[serde(default)]
    pub avg_price: Option<Decimal>,
    #[serde(default)]
    pub updated_ts: TsNs,
    /// Last error or rejection text, if any.
    #[serde(default)]
    pub note: Option<String>,
}

impl OrderRecord {
    pub fn new(request: OrderRequest) -> Self {
        let ts = request.decided_ts;
        OrderRecord {
            request,
            state: OrderState::Intent,
            exchange_id: None,
            filled_qty: Decimal::ZERO,
            avg_price: None,
            updated_ts: ts,
            note: None,
        }
    }
}

/// One execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub ts: TsNs,
    pub client_id: String,
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    /// Fee in the quote asset (USDT), positive = paid.
    pub fee: Decimal,
    /// Exchange trade id when known; used to count a fill once when it arrives by REST and by stream.
    #[serde(default)]
    pub trade_id: Option<i64>,
    pub rule: String,
}

/// An order's progress as reported by an exchange (REST result, order query, or user-data stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdate {
    pub ts: TsNs,
    pub client_id: String,
    pub symbol: String,
    #[serde(default)]
    pub exchange_id: Option<i64>,
    pub state: OrderState,
    /// The execution this update reports, if it reports one (a trade on the user-data stream).
    #[serde(default)]
    pub fill: Option<Fill>,
    /// Cumulative filled quantity and average price of the order so far.
    #[serde(default)]
    pub cum_qty: Decimal,
    #[serde(default)]
    pub avg_price: Option<Decimal>,
    /// Rejection or error text.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A position as the exchange reports it (positionRisk or ACCOUNT_UPDATE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangePosition {
    pub symbol: String,
    /// Signed quantity (one-way mode).
    pub qty: Decimal,
    pub entry_price: Decimal,
    #[serde(default)]
    pub unrealized_pnl: Decimal,
}

/// A balance as the exchange reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    pub asset: String,
    pub wallet: Decimal,
    #[serde(default)]
    pub available: Option<Decimal>,
}

/// Net position of one symbol (one-way mode).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    pub symbol: String,
    /// Signed quantity: positive long, negative short.
    pub qty: Decimal,
    /// Average entry price of the open quantity (zero when flat).
    pub entry_price: Decimal,
    /// Realised PnL of this symbol, net of fees.
    pub realized_pnl: Decimal,
    /// Fees paid, included in `realized_pnl`.
    pub fees: Decimal,
    /// Decision timestamp of the entry that opened the current position.
    #[serde(default)]
    pub opened_ts: Option<TsNs>,
}

impl Position {
    pub fn flat(symbol: &str) -> Self {
        Position {
            symbol: symbol.to_string(),
            ..Default::default()
        }
    }

    pub fn is_flat(&self) -> bool {
        self.qty.is_zero()
    }

    /// Applies a fill; returns the PnL realised by it (gross of fee; the fee is booked too).
    pub fn apply_fill(
        &mut self,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
    ) -> Decimal {
        let signed = side.sign() * qty;
        let mut realized = Decimal::ZERO;
        if self.qty.is_zero() || self.qty.is_sign_positive() == signed.is_sign_positive() {
            // Opening or adding: weighted average entry.
            let new_qty = self.qty + signed;
            if !new_qty.is_zero() {
                self.entry_price =
                    (self.entry_price * self.qty.abs() + price * qty) / new_qty.abs();
            }
            self.qty = new_qty;
        } else {
            // Reducing, closing or flipping.
            let closing = qty.min(self.qty.abs());
            let dir = if self.qty.is_sign_positive() {
                Decimal::ONE
            } else {
                Decimal::NEGATIVE_ONE
            };
            realized = (price - self.entry_price) * closing * dir;
            self.qty += signed;
            if self.qty.is_zero() {
                self.entry_price = Decimal::ZERO;
                self.opened_ts = None;
            } else if self.qty.is_sign_positive() != dir.is_sign_positive() {
                // Flipped: the remainder opens at this price.
                self.entry_price = price;
            }
        }
        self.realized_pnl += realized - fee;
        self.fees += fee;
        realized
    }

    /// Unrealised PnL at `mark`.
    pub fn unrealized(&self, mark: Decimal) -> Decimal {
        (mark - self.entry_price) * self.qty
    }
}

/// What kind of entry a journal line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalKind {
    /// A rule or exit fired and an order was decided.
    Decision,
    /// A decided order was denied by a risk limit.
    RiskDenied,
    /// Trading state changed (ACTIVE / REDUCING / HALTED).
    TradingState,
    /// Restart reconciliation corrected local state to match the exchange.
    Reconcile,
    /// Anything else worth keeping (exchange errors, unknown orders resolved, ...).
    Note,
}

/// One line of the decision journal: why premia did (or did not do) something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub ts: TsNs,
    pub kind: JournalKind,
    /// Rule name or exit reason ("max_hold", "take_profit", "stop_loss", ...).
    #[serde(default)]
    pub rule: String,
    /// "enter_long", "enter_short", "exit", or a state name.
    #[serde(default)]
    pub action: String,
    /// Indicator values that fired the rule, by the name used in the strategy file (NaN: undefined, stored as null).
    #[serde(default, with = "crate::store::values")]
    pub values: Vec<(String, f64)>,
    /// "approved" or the denial reason.
    #[serde(default)]
    pub risk: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub note: String,
}

/// Exchange trading rules for one symbol (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolFilters {
    pub tick_size: Decimal,
    pub step_size: Decimal,
    pub min_qty: Decimal,
    pub max_qty: Decimal,
    /// Market orders may have their own lot limits on Binance.
    #[serde(default)]
    pub market_max_qty: Option<Decimal>,
    pub min_notional: Decimal,
    #[serde(default)]
    pub min_price: Decimal,
    #[serde(default)]
    pub max_price: Decimal,
}

impl Default for SymbolFilters {
    /// BTCUSDT USD-M perpetual as Binance lists it (2024–2026).
    fn default() -> Self {
        SymbolFilters {
            tick_size: Decimal::new(10, 2),
            step_size: Decimal::new(1, 3),
            min_qty: Decimal::new(1, 3),
            max_qty: Decimal::new(1000, 0),
            market_max_qty: Some(Decimal::new(120, 0)),
            min_notional: Decimal::new(100, 0),
            min_price: Decimal::new(2610, 1),
            max_price: Decimal::new(809484, 0),
        }
    }
}

/// Why an order does not pass the exchange filters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("quantity {qty} is below the minimum {min}")]
    QtyTooSmall { qty: Decimal, min: Decimal },
    #[error("quantity {qty} is above the maximum {max}")]
    QtyTooLarge { qty: Decimal, max: Decimal },
    #[error("notional {notional} is below the minimum {min}")]
    NotionalTooSmall { notional: Decimal, min: Decimal },
    #[error("price {price} is outside [{min}, {max}]")]
    PriceOutOfRange {
        price: Decimal,
        min: Decimal,
        max: Decimal,
    },
}

impl SymbolFilters {
    /// Rounds a quantity down to the step size.
    pub fn round_qty(&self, qty: Decimal) -> Decimal {
        floor_to(qty, self.step_size)
    }

    /// Rounds a price to the tick: down for buys, up for sells (never more aggressive than asked).
    pub fn round_price(&self, price: Decimal, side: Side) -> Decimal {
        match side {
            Side::Buy => floor_to(price, self.tick_size),
            Side::Sell => ceil_to(price, self.tick_size),
        }
    }

    /// Checks a (rounded) order against the filters. `ref_price` is the limit price or, for market orders, the
    /// price used to estimate notional.
    pub fn check(
        &self,
        qty: Decimal,
        ref_price: Decimal,
        order_type: OrderType,
    ) -> Result<(), FilterError> {
        if qty < self.min_qty || qty.is_zero() {
            return Err(FilterError::QtyTooSmall {
                qty,
                min: self.min_qty,
            });
        }
        let max = match (order_type, self.market_max_qty) {
            (OrderType::Market, Some(m)) => m.min(self.max_qty),
            _ => self.max_qty,
        };
        if qty > max {
            return Err(FilterError::QtyTooLarge { qty, max });
        }
        if order_type == OrderType::Limit
            && !self.max_price.is_zero()
            && (ref_price < self.min_price || ref_price > self.max_price)
        {
            return Err(FilterError::PriceOutOfRange {
                price: ref_price,
                min: self.min_price,
                max: self.max_price,
            });
        }
        let notional = qty * ref_price;
        if notional < self.min_notional {
            return Err(FilterError::NotionalTooSmall {
                notional,
                min: self.min_notional,
            });
        }
        Ok(())
    }
}

/// Largest multiple of `step` not above `x` (for positive `step`).
pub fn floor_to(x: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return x;
    }
    ((x / step).floor() * step).normalize_scale(step)
}

/// Smallest multiple of `step` not below `x`.
pub fn ceil_to(x: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return x;
    }
    ((x / step).ceil() * step).normalize_scale(step)
}

trait NormalizeScale {
    fn normalize_scale(self, step: Decimal) -> Decimal;
}

impl NormalizeScale for Decimal {
    /// Gives the result the step's number of decimals, so "0.010" steps print as "0.010", not "0.0100000".
    fn normalize_scale(self, step: Decimal) -> Decimal {
        let mut d = self;
        d.rescale(step.normalize().scale());
        d
    }
}

const POW10: [f64; 29] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28,
];

/// Converts a decimal to f64 for indicators (never for money).
///
/// Prices and sizes have mantissas below 2^53, where `mantissa / 10^scale` is one correctly rounded division —
/// several times faster than the general conversion, which this falls back to otherwise.
#[inline]
pub fn to_f64(d: Decimal) -> f64 {
    // The 96-bit mantissa as three 32-bit words plus the flags (scale, sign): no 128-bit arithmetic.
    let b = d.serialize();
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (flags, lo, mid, hi) = (word(0), word(4), word(8), word(12));
    let scale = ((flags >> 16) & 0xFF) as usize;
    if hi == 0 && mid < (1 << 21) && scale < POW10.len() {
        let m = ((u64::from(mid) << 32) | u64::from(lo)) as f64 / POW10[scale];
        if flags & 0x8000_0000 != 0 {
            -m
        } else {
            m
        }
    } else {
        d.to_f64().unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn rounding_follows_filters() {
        let f = SymbolFilters::default();
        assert_eq!(f.round_qty(d("0.01699")).to_string(), "0.016");
        assert_eq!(
            f.round_price(d("61234.567"), Side::Buy).to_string(),
            "61234.5"
        );
        assert_eq!(
            f.round_price(d("61234.51"), Side::Sell).to_string(),
            "61234.6"
        );
        assert_eq!(
            f.round_price(d("61234.50"), Side::Sell).to_string(),
            "61234.5"
        );
        assert!(matches!(
            f.check(d("0.001"), d("61000"), OrderType::Market),
            Err(FilterError::NotionalTooSmall { .. })
        ));
        assert!(f.check(d("0.002"), d("61000"), OrderType::Market).is_ok());
        assert!(matches!(
            f.check(d("0"), d("61000"), OrderType::Market),
            Err(FilterError::QtyTooSmall { .. })
        ));
    }

    #[test]
    fn fast_f64_conversion_matches_the_general_one() {
        for t in [
            "61234.56",
            "0.00000001",
            "-28136.10",
            "1e-3",
            "123456789012.123456",
            "0",
            "79228162514264337593543950335",
        ] {
            let x = Decimal::from_scientific(t)
                .or_else(|_| Decimal::from_str(t))
                .unwrap();
            assert_eq!(to_f64(x), x.to_f64().unwrap(), "{t}");
        }
    }

    #[test]
    fn position_pnl_long_short_flip() {
        let mut p = Position::flat("BTCUSDT");
        p.apply_fill(Side::Buy, d("0.010"), d("60000"), d("0.3"));
        assert_eq!(p.qty, d("0.010"));
        let r = p.apply_fill(Side::Sell, d("0.010"), d("60100"), d("0.3"));
        assert_eq!(r, d("1"));
        assert_eq!(p.realized_pnl, d("0.4"));
        assert!(p.is_flat());
        p.apply_fill(Side::Sell, d("0.02"), d("60000"), d("0"));
        let r = p.apply_fill(Side::Buy, d("0.03"), d("59900"), d("0"));
        assert_eq!(r, d("2"));
        assert_eq!(p.qty, d("0.01"));
        assert_eq!(p.entry_price, d("59900"));
    }
}
