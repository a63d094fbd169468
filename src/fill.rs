//! The one fill model: when an order trades against the perp touch, at what price, as maker or taker, for what fee.
//! The backtest simulator ([`crate::sim`]) and the local exchange's account ([`crate::local_exchange::account`])
//! both match through it, so a backtest and a local replay of the same recording fill identically.
//!
//! - A market order trades at once at the touch: a buy at the ask, a sell at the bid, as taker.
//! - A limit order that is marketable when it arrives (a buy at or above the ask, a sell at or below the bid) trades
//!   at once at the touch, as taker. Otherwise it rests.
//! - A resting limit order trades at its own price, as maker, on the first touch that reaches it (a buy when the ask
//!   falls to or below its price, a sell when the bid rises to or above it). Resting orders fill in arrival order.
//! - The fee is quantity × price × the maker or taker rate, rounded to 8 decimals (a half to
//!   the even digit) as the exchange books commissions.
//! - A reduce-only order trades at most the position it closes; the rest expires.

use rust_decimal::Decimal;

use crate::model::Side;

/// Decimals the exchange books a commission to.
const FEE_DP: u32 = 8;

/// Best bid and ask of the perp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Touch {
    pub bid: Decimal,
    pub ask: Decimal,
}

impl Touch {
    /// The price a taker on `side` trades at: a buy takes the ask, a sell the bid.
    #[inline]
    pub fn taker_price(&self, side: Side) -> Decimal {
        match side {
            Side::Buy => self.ask,
            Side::Sell => self.bid,
        }
    }

    /// Does this touch reach a limit order on `side` at `price` (a marketable order, or a resting one that fills)?
    #[inline]
    pub fn reaches(&self, side: Side, price: Decimal) -> bool {
        match side {
            Side::Buy => self.ask <= price,
            Side::Sell => self.bid >= price,
        }
    }
}

/// Which side of the trade an order was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liquidity {
    /// The order rested and was traded against.
    Maker,
    /// The order traded against the book on arrival.
    Taker,
}

/// What happens to an order when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// It trades now at this price, as taker.
    Take(Decimal),
    /// A limit order the touch does not reach: it rests.
    Rest,
    /// A market order with no book to trade against.
    NoBook,
}

/// Decides what an arriving order does. `limit` is the limit price, `None` for a market order.
#[inline]
pub fn on_arrival(side: Side, limit: Option<Decimal>, touch: Option<Touch>) -> Arrival {
    match (limit, touch) {
        (None, Some(t)) => Arrival::Take(t.taker_price(side)),
        (None, None) => Arrival::NoBook,
        (Some(p), Some(t)) if t.reaches(side, p) => Arrival::Take(t.taker_price(side)),
        (Some(_), _) => Arrival::Rest,
    }
}

/// Maker and taker fee rates as fractions (0.0005 = 5 bps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeeRates {
    pub taker: Decimal,
    pub maker: Decimal,
}

impl FeeRates {
    /// The commission of a trade, in the quote asset.
    #[inline]
    pub fn fee(&self, qty: Decimal, price: Decimal, liquidity: Liquidity) -> Decimal {
        let rate = match liquidity {
            Liquidity::Maker => self.maker,
            Liquidity::Taker => self.taker,
        };
        (qty * price * rate).round_dp(FEE_DP)
    }
}

/// The part of an order on `side` for `qty` that closes the signed position `position` (the rest would open or add).
#[inline]
pub fn closing_qty(position: Decimal, side: Side, qty: Decimal) -> Decimal {
    let against = !position.is_zero() && (position.is_sign_positive() != (side == Side::Buy));
    if against {
        qty.min(position.abs())
    } else {
        Decimal::ZERO
    }
}

/// A resting limit order: `key` is whatever its owner finds it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Resting<K> {
    pub key: K,
    pub side: Side,
    pub price: Decimal,
}

/// Resting limit orders in arrival order.
#[derive(Debug, Clone)]
pub struct RestingBook<K> {
    orders: Vec<Resting<K>>,
}

impl<K> Default for RestingBook<K> {
    fn default() -> Self {
        RestingBook { orders: Vec::new() }
    }
}

impl<K> RestingBook<K> {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn add(&mut self, key: K, side: Side, price: Decimal) {
        self.orders.push(Resting { key, side, price });
    }

    /// Takes out the first order `is_it` picks (a cancel, an expiry).
    pub fn remove(&mut self, is_it: impl Fn(&K) -> bool) -> Option<Resting<K>> {
        let i = self.orders.iter().position(|r| is_it(&r.key))?;
        Some(self.orders.remove(i))
    }

    /// Moves every order `touch` reaches into `out`, in arrival order; each trades at its own price as maker.
    pub fn take_reached(&mut self, touch: Touch, out: &mut Vec<Resting<K>>) {
        if !self.orders.iter().any(|r| touch.reaches(r.side, r.price)) {
            return;
        }
        let mut kept = Vec::with_capacity(self.orders.len());
        for r in self.orders.drain(..) {
            if touch.reaches(r.side, r.price) {
                out.push(r);
            } else {
                kept.push(r);
            }
        }
        self.orders = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn touch() -> Touch {
        Touch {
            bid: d("60000.0"),
            ask: d("60000.1"),
        }
    }

    #[test]
    fn market_orders_take_the_touch_or_find_no_book() {
        assert_eq!(
            on_arrival(Side::Buy, None, Some(touch())),
            Arrival::Take(d("60000.1"))
        );
        assert_eq!(
            on_arrival(Side::Sell, None, Some(touch())),
            Arrival::Take(d("60000.0"))
        );
        assert_eq!(on_arrival(Side::Buy, None, None), Arrival::NoBook);
    }

    #[test]
    fn marketable_limits_take_at_the_touch_not_their_price_and_others_rest() {
        let t = Some(touch());
        // A buy at or above the ask trades at the ask.
        assert_eq!(
            on_arrival(Side::Buy, Some(d("60000.1")), t),
            Arrival::Take(d("60000.1"))
        );
        assert_eq!(
            on_arrival(Side::Buy, Some(d("60010.0")), t),
            Arrival::Take(d("60000.1"))
        );
        assert_eq!(on_arrival(Side::Buy, Some(d("60000.0")), t), Arrival::Rest);
        // A sell at or below the bid trades at the bid.
        assert_eq!(
            on_arrival(Side::Sell, Some(d("59990.0")), t),
            Arrival::Take(d("60000.0"))
        );
        assert_eq!(on_arrival(Side::Sell, Some(d("60000.1")), t), Arrival::Rest);
        // Without a book a limit order rests.
        assert_eq!(on_arrival(Side::Sell, Some(d("1")), None), Arrival::Rest);
    }

    #[test]
    fn fees_use_the_rate_of_the_liquidity_and_round_to_8_decimals() {
        let rates = FeeRates {
            taker: d("0.0005"),
            maker: d("0.0002"),
        };
        assert_eq!(
            rates.fee(d("0.010"), d("60000.1"), Liquidity::Taker),
            d("0.3000005")
        );
        assert_eq!(
            rates.fee(d("0.010"), d("60000.1"), Liquidity::Maker),
            d("0.1200002")
        );
        let odd = FeeRates {
            taker: d("0.00045"),
            maker: d("0"),
        };
        // 0.001 × 60000.3 × 0.00045 = 0.027000135: booked to 8 decimals, the half to the even digit.
        assert_eq!(
            odd.fee(d("0.001"), d("60000.3"), Liquidity::Taker),
            d("0.02700014")
        );
        assert_eq!(
            odd.fee(d("0.001"), d("60000.3"), Liquidity::Maker),
            Decimal::ZERO
        );
    }

    #[test]
    fn closing_qty_is_the_part_against_the_position() {
        assert_eq!(closing_qty(d("0.010"), Side::Sell, d("0.020")), d("0.010"));
        assert_eq!(closing_qty(d("0.010"), Side::Sell, d("0.004")), d("0.004"));
        assert_eq!(closing_qty(d("0.010"), Side::Buy, d("0.004")), d("0"));
        assert_eq!(closing_qty(d("-0.010"), Side::Buy, d("0.004")), d("0.004"));
        assert_eq!(closing_qty(d("0"), Side::Sell, d("0.004")), d("0"));
    }

    #[test]
    fn book_fills_reached_orders_in_arrival_order_and_keeps_the_rest() {
        let mut book = RestingBook::default();
        book.add(1, Side::Buy, d("59990.0"));
        book.add(2, Side::Sell, d("60020.0"));
        book.add(3, Side::Buy, d("59995.0"));
        book.add(4, Side::Buy, d("59980.0"));
        let mut out = Vec::new();
        // An ask one tick above the buy does not reach it.
        book.take_reached(
            Touch {
                bid: d("59990.0"),
                ask: d("59990.1"),
            },
            &mut out,
        );
        assert_eq!(out.iter().map(|r| r.key).collect::<Vec<_>>(), vec![3]);
        out.clear();
        book.take_reached(
            Touch {
                bid: d("59989.9"),
                ask: d("59990.0"),
            },
            &mut out,
        );
        assert_eq!(out.iter().map(|r| r.key).collect::<Vec<_>>(), vec![1]);
        assert_eq!(out[0].price, d("59990.0"));
        out.clear();
        assert_eq!(book.remove(|k| *k == 2).map(|r| r.side), Some(Side::Sell));
        assert!(book.remove(|k| *k == 2).is_none());
        assert_eq!(book.len(), 1);
        book.take_reached(
            Touch {
                bid: d("59979.9"),
                ask: d("59980.0"),
            },
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(book.is_empty());
    }
}
