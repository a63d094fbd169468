//! Simulated fills for backtests: market orders at the perp touch of the deciding event, limit orders when the touch
//! crosses them, with the same exchange filters the live path applies.

use rust_decimal::Decimal;

use crate::market::{MarketEvent, MarketKind, Quote};
use crate::model::{
    Fill, OrderRecord, OrderState, OrderType, OrderUpdate, Side, SymbolFilters, TsNs, Venue,
};

/// A resting limit order.
#[derive(Debug, Clone)]
struct Resting {
    client_id: String,
    symbol: String,
    side: Side,
    qty: Decimal,
    price: Decimal,
    rule: String,
}

/// The backtest's exchange.
#[derive(Debug)]
pub struct SimExchange {
    filters: SymbolFilters,
    taker_rate: Decimal,
    maker_rate: Decimal,
    perp: Option<Quote>,
    resting: Vec<Resting>,
    next_trade_id: i64,
}

impl SimExchange {
    pub fn new(filters: SymbolFilters, taker_rate: Decimal, maker_rate: Decimal) -> Self {
        SimExchange {
            filters,
            taker_rate,
            maker_rate,
            perp: None,
            resting: Vec::new(),
            next_trade_id: 1,
        }
    }

    /// Updates the book; resting limit orders the new touch crosses fill at their limit price (maker).
    #[inline]
    pub fn on_market(&mut self, ev: &MarketEvent, out: &mut Vec<OrderUpdate>) {
        let MarketKind::Quote(q) = &ev.kind else {
            return;
        };
        if q.venue != Venue::Perp {
            return;
        }
        self.perp = Some(*q);
        if self.resting.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.resting.len() {
            let r = &self.resting[i];
            let crossed = match r.side {
                Side::Buy => q.ask <= r.price,
                Side::Sell => q.bid >= r.price,
            };
            if crossed {
                let r = self.resting.swap_remove(i);
                let fee = r.qty * r.price * self.maker_rate;
                out.push(self.fill_update(
                    ev.ts,
                    &r.client_id,
                    &r.symbol,
                    r.side,
                    r.qty,
                    r.price,
                    fee,
                    &r.rule,
                ));
            } else {
                i += 1;
            }
        }
    }

    /// Accepts an order: market orders fill at once at the touch (buy at ask, sell at bid); limit orders that cross
    /// fill at the touch as takers, others rest. Orders failing the filters are rejected as the exchange would.
    pub fn submit(&mut self, rec: &OrderRecord, now: TsNs, out: &mut Vec<OrderUpdate>) {
        let req = &rec.request;
        let reject = |reason: String| OrderUpdate {
            ts: now,
            client_id: req.client_id.clone(),
            symbol: req.symbol.clone(),
            exchange_id: None,
            state: OrderState::Rejected,
            fill: None,
            cum_qty: Decimal::ZERO,
            avg_price: None,
            reason: Some(reason),
        };
        let Some(book) = self.perp else {
            out.push(reject("no perp quote to trade against".into()));
            return;
        };
        let touch = if req.side == Side::Buy {
            book.ask
        } else {
            book.bid
        };
        let ref_price = req.price.unwrap_or(touch);
        if self.filters.round_qty(req.qty) != req.qty {
            out.push(reject(format!(
                "-1111 quantity {} is not a multiple of the step {}",
                req.qty, self.filters.step_size
            )));
            return;
        }
        if !req.reduce_only {
            if let Err(e) = self.filters.check(req.qty, ref_price, req.order_type) {
                out.push(reject(e.to_string()));
                return;
            }
        }
        let crosses = match (req.order_type, req.price) {
            (OrderType::Market, _) => true,
            (OrderType::Limit, Some(p)) => {
                (req.side == Side::Buy && touch <= p) || (req.side == Side::Sell && touch >= p)
            }
            (OrderType::Limit, None) => {
                out.push(reject("limit order without a price".into()));
                return;
            }
        };
        if crosses {
            let fee = req.qty * touch * self.taker_rate;
            out.push(self.fill_update(
                now,
                &req.client_id,
                &req.symbol,
                req.side,
                req.qty,
                touch,
                fee,
                &req.rule,
            ));
        } else {
            self.resting.push(Resting {
                client_id: req.client_id.clone(),
                symbol: req.symbol.clone(),
                side: req.side,
                qty: req.qty,
                price: ref_price,
                rule: req.rule.clone(),
            });
            out.push(OrderUpdate {
                ts: now,
                client_id: req.client_id.clone(),
                symbol: req.symbol.clone(),
                exchange_id: None,
                state: OrderState::New,
                fill: None,
                cum_qty: Decimal::ZERO,
                avg_price: None,
                reason: None,
            });
        }
    }

    /// Cancels a resting order (no-op when it already filled).
    pub fn cancel(&mut self, client_id: &str, now: TsNs, out: &mut Vec<OrderUpdate>) {
        if let Some(i) = self.resting.iter().position(|r| r.client_id == client_id) {
            let r = self.resting.swap_remove(i);
            out.push(OrderUpdate {
                ts: now,
                client_id: r.client_id,
                symbol: r.symbol,
                exchange_id: None,
                state: OrderState::Canceled,
                fill: None,
                cum_qty: Decimal::ZERO,
                avg_price: None,
                reason: Some("canceled".into()),
            });
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
    ) -> OrderUpdate {
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        OrderUpdate {
            ts,
            client_id: client_id.to_string(),
            symbol: symbol.to_string(),
            exchange_id: Some(trade_id),
            state: OrderState::Filled,
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
