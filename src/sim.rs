//! Simulated fills for backtests: the shared fill model ([`crate::fill`]) against the perp touch of each event, with
//! the same exchange filters the live path applies.

use rust_decimal::Decimal;

use crate::fill::{self, Arrival, FeeRates, Liquidity, Resting, RestingBook, Touch};
use crate::market::{MarketEvent, MarketKind};
use crate::model::{
    Fill, OrderRecord, OrderState, OrderType, OrderUpdate, Side, SymbolFilters, TsNs, Venue,
};

/// What the simulator keeps of a resting limit order.
#[derive(Debug, Clone)]
struct RestingOrder {
    client_id: String,
    symbol: String,
    qty: Decimal,
    reduce_only: bool,
    rule: String,
}

/// The backtest's exchange: the perp touch, the resting orders and the position, matched by [`crate::fill`].
#[derive(Debug)]
pub struct SimExchange {
    filters: SymbolFilters,
    rates: FeeRates,
    perp: Option<Touch>,
    resting: RestingBook<RestingOrder>,
    /// Orders the last touch reached; kept to reuse its allocation.
    reached: Vec<Resting<RestingOrder>>,
    /// Signed position, for the reduce-only rule.
    position: Decimal,
    next_trade_id: i64,
}

impl SimExchange {
    pub fn new(filters: SymbolFilters, taker_rate: Decimal, maker_rate: Decimal) -> Self {
        SimExchange {
            filters,
            rates: FeeRates {
                taker: taker_rate,
                maker: maker_rate,
            },
            perp: None,
            resting: RestingBook::default(),
            reached: Vec::new(),
            position: Decimal::ZERO,
            next_trade_id: 1,
        }
    }

    /// Updates the book; resting limit orders the new touch reaches fill at their limit price (maker).
    #[inline]
    pub fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<OrderUpdate>) {
        let MarketKind::Quote(q) = &ev.kind else {
            return;
        };
        if q.venue != Venue::Perp {
            return;
        }
        let touch = Touch {
            bid: q.bid,
            ask: q.ask,
        };
        self.perp = Some(touch);
        if self.resting.is_empty() {
            return;
        }
        let mut reached = std::mem::take(&mut self.reached);
        self.resting.take_reached(touch, &mut reached);
        for r in reached.drain(..) {
            let o = r.key;
            self.trade(
                ev.ts,
                Order {
                    client_id: &o.client_id,
                    symbol: &o.symbol,
                    side: r.side,
                    qty: o.qty,
                    reduce_only: o.reduce_only,
                    rule: &o.rule,
                },
                r.price,
                Liquidity::Maker,
                out,
            );
        }
        self.reached = reached;
    }

    /// Accepts an order: market orders and marketable limit orders trade at once at the touch (buy at ask, sell at
    /// bid) as takers, other limit orders rest. Orders failing the filters are rejected as the exchange would.
    pub fn submit(&mut self, rec: &OrderRecord, now: TsNs, out: &mut Vec<OrderUpdate>) {
        let req = &rec.request;
        let limit = match (req.order_type, req.price) {
            (OrderType::Market, _) => None,
            (OrderType::Limit, Some(p)) => Some(p),
            (OrderType::Limit, None) => {
                out.push(
                    update(now, &req.client_id, &req.symbol, OrderState::Rejected)
                        .with_reason("limit order without a price"),
                );
                return;
            }
        };
        let arrival = fill::on_arrival(req.side, limit, self.perp);
        if let Err(reason) = self.check(rec, limit, arrival) {
            out.push(
                update(now, &req.client_id, &req.symbol, OrderState::Rejected).with_reason(reason),
            );
            return;
        }
        let order = Order {
            client_id: &req.client_id,
            symbol: &req.symbol,
            side: req.side,
            qty: req.qty,
            reduce_only: req.reduce_only,
            rule: &req.rule,
        };
        match (arrival, limit) {
            (Arrival::Take(price), _) => self.trade(now, order, price, Liquidity::Taker, out),
            (_, Some(price)) => {
                self.resting.add(
                    RestingOrder {
                        client_id: req.client_id.clone(),
                        symbol: req.symbol.clone(),
                        qty: req.qty,
                        reduce_only: req.reduce_only,
                        rule: req.rule.clone(),
                    },
                    req.side,
                    price,
                );
                out.push(update(now, &req.client_id, &req.symbol, OrderState::New));
            }
            // `check` rejected a market order without a book.
            (_, None) => {}
        }
    }

    /// Why the exchange would refuse this order, if it would.
    fn check(
        &self,
        rec: &OrderRecord,
        limit: Option<Decimal>,
        arrival: Arrival,
    ) -> Result<(), String> {
        let req = &rec.request;
        let ref_price = match (limit, arrival) {
            (Some(p), _) | (None, Arrival::Take(p)) => p,
            (None, _) => return Err("no perp quote to trade against".into()),
        };
        if self.filters.round_qty(req.qty) != req.qty {
            return Err(format!(
                "-1111 quantity {} is not a multiple of the step {}",
                req.qty, self.filters.step_size
            ));
        }
        if req.reduce_only {
            if fill::closing_qty(self.position, req.side, req.qty).is_zero() {
                return Err(
                    "-2022 ReduceOnly Order is rejected (it would not reduce the position)".into(),
                );
            }
            return Ok(());
        }
        self.filters
            .check(req.qty, ref_price, req.order_type)
            .map_err(|e| e.to_string())
    }

    /// Cancels a resting order (no-op when it already filled).
    pub fn cancel(&mut self, client_id: &str, now: TsNs, out: &mut Vec<OrderUpdate>) {
        if let Some(r) = self.resting.remove(|o| o.client_id == client_id) {
            out.push(
                update(now, &r.key.client_id, &r.key.symbol, OrderState::Canceled)
                    .with_reason("canceled"),
            );
        }
    }

    /// Trades an order at `price`; a reduce-only order trades at most the position and the rest expires.
    fn trade(
        &mut self,
        ts: TsNs,
        o: Order<'_>,
        price: Decimal,
        liquidity: Liquidity,
        out: &mut Vec<OrderUpdate>,
    ) {
        let qty = if o.reduce_only {
            fill::closing_qty(self.position, o.side, o.qty)
        } else {
            o.qty
        };
        if qty.is_zero() {
            out.push(
                update(ts, o.client_id, o.symbol, OrderState::Expired)
                    .with_reason("reduce-only order would not reduce"),
            );
            return;
        }
        self.position += o.side.sign() * qty;
        let fee = self.rates.fee(qty, price, liquidity);
        let state = if qty < o.qty {
            OrderState::PartiallyFilled
        } else {
            OrderState::Filled
        };
        out.push(self.fill_update(
            ts,
            o.client_id,
            o.symbol,
            o.side,
            qty,
            price,
            fee,
            o.rule,
            state,
        ));
        if state == OrderState::PartiallyFilled {
            let mut expired = update(ts, o.client_id, o.symbol, OrderState::Expired)
                .with_reason("reduce-only order clipped to the position");
            expired.cum_qty = qty;
            expired.avg_price = Some(price);
            out.push(expired);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_update(
        &mut self,
        ts: TsNs,
        client_id: &str,
        symbol: &str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        rule: &str,
        state: OrderState,
    ) -> OrderUpdate {
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        OrderUpdate {
            ts,
            client_id: client_id.to_string(),
            symbol: symbol.to_string(),
            exchange_id: Some(trade_id),
            state,
            fill: Some(Fill {
                ts,
                client_id: client_id.to_string(),
                symbol: symbol.to_string(),
                side,
                qty,
                price,
                fee,
                trade_id: Some(trade_id),
                rule: rule.to_string(),
            }),
            cum_qty: qty,
            avg_price: Some(price),
            reason: None,
        }
    }
}

/// The parts of an order a trade needs.
struct Order<'a> {
    client_id: &'a str,
    symbol: &'a str,
    side: Side,
    qty: Decimal,
    reduce_only: bool,
    rule: &'a str,
}

/// An update without a fill.
fn update(ts: TsNs, client_id: &str, symbol: &str, state: OrderState) -> OrderUpdate {
    OrderUpdate {
        ts,
        client_id: client_id.to_string(),
        symbol: symbol.to_string(),
        exchange_id: None,
        state,
        fill: None,
        cum_qty: Decimal::ZERO,
        avg_price: None,
        reason: None,
    }
}

trait WithReason {
    fn with_reason(self, reason: impl Into<String>) -> Self;
}

impl WithReason for OrderUpdate {
    fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Quote;
    use crate::model::OrderRequest;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn sim() -> SimExchange {
        SimExchange::new(SymbolFilters::default(), d("0.0005"), d("0.0002"))
    }

    fn quote(ts: TsNs, bid: &str, ask: &str) -> MarketEvent {
        MarketEvent {
            ts,
            kind: MarketKind::Quote(Quote {
                venue: Venue::Perp,
                bid: d(bid),
                ask: d(ask),
                bid_qty: Decimal::ONE,
                ask_qty: Decimal::ONE,
            }),
        }
    }

    fn order(
        id: &str,
        side: Side,
        qty: &str,
        price: Option<Decimal>,
        reduce_only: bool,
    ) -> OrderRecord {
        OrderRecord::new(OrderRequest {
            client_id: id.into(),
            symbol: "BTCUSDT".into(),
            side,
            order_type: if price.is_some() {
                OrderType::Limit
            } else {
                OrderType::Market
            },
            qty: d(qty),
            price,
            reduce_only,
            rule: "r".into(),
            decided_ts: 0,
        })
    }

    /// A limit price `bps` from the near side of the touch, toward the other side (strategies/README.md): a buy
    /// from the bid, a sell from the ask, rounded to the tick never more aggressively than asked.
    fn limit_at(side: Side, bps: i64, bid: &str, ask: &str) -> Decimal {
        let off = Decimal::new(bps, 4);
        let raw = match side {
            Side::Buy => d(bid) * (Decimal::ONE + off),
            Side::Sell => d(ask) * (Decimal::ONE - off),
        };
        SymbolFilters::default().round_price(raw, side)
    }

    fn fill_of(u: &OrderUpdate) -> (Decimal, Decimal, Decimal) {
        let f = u.fill.as_ref().expect("a fill");
        (f.qty, f.price, f.fee)
    }

    #[test]
    fn market_orders_fill_at_the_touch_with_the_taker_fee() {
        let mut s = sim();
        let mut out = Vec::new();
        s.submit(&order("a", Side::Buy, "0.010", None, false), 1, &mut out);
        assert_eq!(out[0].state, OrderState::Rejected, "no book yet");
        out.clear();
        s.on_market(&quote(2, "60000.0", "60000.1"), &mut out);
        s.submit(&order("b", Side::Buy, "0.010", None, false), 3, &mut out);
        s.submit(&order("c", Side::Sell, "0.010", None, true), 3, &mut out);
        assert_eq!(fill_of(&out[0]), (d("0.010"), d("60000.1"), d("0.3000005")));
        assert_eq!(fill_of(&out[1]), (d("0.010"), d("60000.0"), d("0.300000")));
        assert!(out
            .iter()
            .all(|u| u.state == OrderState::Filled && u.ts == 3));
    }

    /// Offsets −1, 0, +1 bps from the touch, both sides: +1 crosses the spread and takes the touch (taker fee); 0
    /// and −1 rest and fill at their own price (maker fee) once the touch reaches them, not one tick before.
    #[test]
    fn limit_orders_at_offsets_take_or_rest_and_fill_as_maker() {
        let (bid, ask) = ("60000.0", "60000.1");
        for side in [Side::Buy, Side::Sell] {
            for (bps, taker) in [(1, true), (0, false), (-1, false)] {
                let mut s = sim();
                let mut out = Vec::new();
                s.on_market(&quote(1, bid, ask), &mut out);
                let price = limit_at(side, bps, bid, ask);
                s.submit(&order("l", side, "0.010", Some(price), false), 2, &mut out);
                let what = format!("{side:?} at {bps} bps ({price})");
                if taker {
                    let touch = if side == Side::Buy { d(ask) } else { d(bid) };
                    assert_eq!(out.len(), 1, "{what}");
                    let fee = (d("0.010") * touch * d("0.0005")).round_dp(8);
                    assert_eq!(fill_of(&out[0]), (d("0.010"), touch, fee), "{what}");
                    continue;
                }
                assert_eq!(out[0].state, OrderState::New, "{what}");
                out.clear();
                // One tick short of the order: nothing.
                let tick = d("0.1");
                // Reaching: the ask down to a buy's price, the bid up to a sell's.
                let (b, a) = match side {
                    Side::Buy => (price - tick, price),
                    Side::Sell => (price, price + tick),
                };
                let (b_short, a_short) = match side {
                    Side::Buy => (b + tick, a + tick),
                    Side::Sell => (b - tick, a - tick),
                };
                s.on_market(
                    &quote(3, &b_short.to_string(), &a_short.to_string()),
                    &mut out,
                );
                assert!(out.is_empty(), "{what}");
                s.on_market(&quote(4, &b.to_string(), &a.to_string()), &mut out);
                assert_eq!(out.len(), 1, "{what}");
                let fee = (d("0.010") * price * d("0.0002")).round_dp(8);
                assert_eq!(fill_of(&out[0]), (d("0.010"), price, fee), "{what}");
                assert_eq!(out[0].ts, 4, "{what}");
            }
        }
    }

    #[test]
    fn resting_orders_fill_oldest_first_and_cancel_only_while_resting() {
        let mut s = sim();
        let mut out = Vec::new();
        s.on_market(&quote(1, "60000.0", "60000.1"), &mut out);
        for id in ["x", "y", "z"] {
            s.submit(
                &order(id, Side::Buy, "0.010", Some(d("59990.0")), false),
                2,
                &mut out,
            );
        }
        s.cancel("y", 3, &mut out);
        out.clear();
        s.on_market(&quote(4, "59989.0", "59989.5"), &mut out);
        let ids: Vec<&str> = out.iter().map(|u| u.client_id.as_str()).collect();
        assert_eq!(ids, ["x", "z"]);
        out.clear();
        s.cancel("x", 5, &mut out);
        assert!(out.is_empty(), "already filled");
    }

    #[test]
    fn reduce_only_trades_at_most_the_position() {
        let mut s = sim();
        let mut out = Vec::new();
        s.on_market(&quote(1, "60000.0", "60000.1"), &mut out);
        s.submit(&order("flat", Side::Sell, "0.010", None, true), 2, &mut out);
        assert_eq!(out[0].state, OrderState::Rejected);
        out.clear();
        s.submit(&order("open", Side::Buy, "0.010", None, false), 2, &mut out);
        s.submit(
            &order("close", Side::Sell, "0.020", None, true),
            2,
            &mut out,
        );
        assert_eq!(out[1].state, OrderState::PartiallyFilled);
        assert_eq!(fill_of(&out[1]).0, d("0.010"));
        assert_eq!(out[2].state, OrderState::Expired);
        assert_eq!(out[2].cum_qty, d("0.010"));
    }
}
