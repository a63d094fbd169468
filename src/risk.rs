//! Pre-trade risk limits with typed denials, and the daily-loss kill switch (ACTIVE → REDUCING → HALTED).
//!
//! Exits (reduce-only orders) pass every limit, `max_orders_per_minute` included: a limit exists to stop new risk,
//! never to keep a position open. Exits still count in the per-minute window that limits entries.

use std::collections::VecDeque;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{FilterError, OrderRequest, TsNs, Venue, NS_PER_MS, NS_PER_S};

const DAY_NS: TsNs = 86_400 * NS_PER_S;
const MINUTE_NS: TsNs = 60 * NS_PER_S;

/// Limits from the `[risk]` section of the config. Notionals in USDT.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskLimits {
    pub max_order_notional: Decimal,
    pub max_position_notional: Decimal,
    pub max_orders_per_minute: u32,
    /// Limit prices must lie within this percentage of the last perp mid.
    pub price_band_pct: Decimal,
    /// Realised + unrealised loss since 00:00 UTC that trips the kill switch.
    pub max_daily_loss: Decimal,
    /// No entries while either market's last quote is older than this.
    pub max_feed_staleness_ns: TsNs,
    pub min_notional: Decimal,
}

impl Default for RiskLimits {
    fn default() -> Self {
        RiskLimits {
            max_order_notional: Decimal::from(5_000),
            max_position_notional: Decimal::from(5_000),
            max_orders_per_minute: 10,
            price_band_pct: Decimal::ONE,
            max_daily_loss: Decimal::from(250),
            max_feed_staleness_ns: 5 * NS_PER_S,
            min_notional: Decimal::from(100),
        }
    }
}

/// Whether new risk may be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradingState {
    /// Entries and exits allowed.
    Active,
    /// The daily loss limit was hit: exits only.
    Reducing,
    /// Flat after the daily loss limit: no orders until the next UTC day.
    Halted,
    /// A market's feed is down or its last quote is older than `max_feed_staleness`: no entries, exits run.
    /// Set by the engine from feed health (the kill switch's REDUCING and HALTED take precedence).
    Degraded,
}

impl TradingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "ACTIVE",
            TradingState::Reducing => "REDUCING",
            TradingState::Halted => "HALTED",
            TradingState::Degraded => "DEGRADED",
        }
    }
}

/// Why an order was not allowed. An expected outcome, journalled — not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum DenyReason {
    OrderNotional {
        notional: Decimal,
        max: Decimal,
    },
    PositionNotional {
        notional: Decimal,
        max: Decimal,
    },
    OrderRate {
        count: u32,
        max: u32,
    },
    PriceBand {
        price: Decimal,
        mid: Decimal,
        band_pct: Decimal,
    },
    TradingState(TradingState),
    FeedStale {
        venue: Venue,
        age_ms: i64,
        max_ms: i64,
    },
    MinNotional {
        notional: Decimal,
        min: Decimal,
    },
    Filter(FilterError),
    NoQuote,
}

impl DenyReason {
    /// Short stable name, for counters and reports.
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::OrderNotional { .. } => "max_order_notional",
            DenyReason::PositionNotional { .. } => "max_position_notional",
            DenyReason::OrderRate { .. } => "max_orders_per_minute",
            DenyReason::PriceBand { .. } => "price_band",
            DenyReason::TradingState(_) => "trading_state",
            DenyReason::FeedStale { .. } => "feed_stale",
            DenyReason::MinNotional { .. } => "min_notional",
            DenyReason::Filter(_) => "exchange_filter",
            DenyReason::NoQuote => "no_quote",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::OrderNotional { notional, max } => {
                write!(
                    f,
                    "max_order_notional: order notional {} USDT > {max}",
                    notional.round_dp(2)
                )
            }
            DenyReason::PositionNotional { notional, max } => {
                write!(
                    f,
                    "max_position_notional: position would be {} USDT > {max}",
                    notional.round_dp(2)
                )
            }
            DenyReason::OrderRate { count, max } => write!(
                f,
                "max_orders_per_minute: {count} orders in the last minute (max {max})"
            ),
            DenyReason::PriceBand {
                price,
                mid,
                band_pct,
            } => {
                write!(
                    f,
                    "price_band: price {price} is more than {band_pct}% from the perp mid {}",
                    mid.round_dp(2)
                )
            }
            DenyReason::TradingState(s) => {
                write!(f, "trading_state: {} (entries not allowed)", s.as_str())
            }
            DenyReason::FeedStale {
                venue,
                age_ms,
                max_ms,
            } => {
                write!(
                    f,
                    "feed_stale: last {} quote is {age_ms} ms old (max {max_ms} ms)",
                    venue.as_str()
                )
            }
            DenyReason::MinNotional { notional, min } => {
                write!(
                    f,
                    "min_notional: order notional {} USDT < {min}",
                    notional.round_dp(2)
                )
            }
            DenyReason::Filter(e) => write!(f, "exchange_filter: {e}"),
            DenyReason::NoQuote => write!(f, "no_quote: no perp quote yet"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RiskDecision {
    Approved,
    Denied(DenyReason),
}

/// What the risk check needs to know about the market and the book.
#[derive(Debug, Clone, Copy)]
pub struct RiskContext {
    pub now: TsNs,
    /// Last perp mid (exact).
    pub perp_mid: Option<Decimal>,
    /// Price the order is expected to execute at (limit price, or the touch for market orders).
    pub exec_price: Decimal,
    /// Current signed position quantity.
    pub position_qty: Decimal,
    pub spot_ts: Option<TsNs>,
    pub perp_ts: Option<TsNs>,
}

/// Risk state: limits, the order-rate window and the kill switch.
#[derive(Debug, Clone)]
pub struct Risk {
    pub limits: RiskLimits,
    state: TradingState,
    sent: VecDeque<TsNs>,
    day: i64,
    /// Realised PnL total at the start of the current UTC day.
    day_start_realized: Decimal,
    /// f64 copies for the per-event fast path.
    day_start_f: f64,
    limit_f: f64,
}

/// A trading-state transition, to be journalled and logged.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub from: TradingState,
    pub to: TradingState,
    pub reason: String,
}

impl Risk {
    pub fn new(limits: RiskLimits) -> Self {
        let limit_f = crate::model::to_f64(limits.max_daily_loss);
        Risk {
            limits,
            state: TradingState::Active,
            sent: VecDeque::with_capacity(64),
            day: i64::MIN,
            day_start_realized: Decimal::ZERO,
            day_start_f: 0.0,
            limit_f,
        }
    }

    pub fn state(&self) -> TradingState {
        self.state
    }

    /// Pre-trade check. Orders that only reduce the position (`reduce_only`: built-in exits and exit rules) are
    /// always approved: no limit may hold a position open. Entries are checked against every limit, the order
    /// rate first (its window counts exits too, see [`Risk::on_order_sent`]).
    pub fn check(&mut self, req: &OrderRequest, ctx: &RiskContext) -> RiskDecision {
        use RiskDecision::Denied;
        if req.reduce_only {
            return RiskDecision::Approved;
        }
        self.prune(ctx.now);
        if self.sent.len() as u32 >= self.limits.max_orders_per_minute {
            return Denied(DenyReason::OrderRate {
                count: self.sent.len() as u32,
                max: self.limits.max_orders_per_minute,
            });
        }
        if self.state != TradingState::Active {
            return Denied(DenyReason::TradingState(self.state));
        }
        let Some(mid) = ctx.perp_mid else {
            return Denied(DenyReason::NoQuote);
        };
        let max_age = self.limits.max_feed_staleness_ns;
        for (venue, ts) in [(Venue::Spot, ctx.spot_ts), (Venue::Perp, ctx.perp_ts)] {
            let age = ts.map(|t| ctx.now - t).unwrap_or(i64::MAX);
            if age > max_age {
                return Denied(DenyReason::FeedStale {
                    venue,
                    age_ms: if age == i64::MAX { -1 } else { age / NS_PER_MS },
                    max_ms: max_age / NS_PER_MS,
                });
            }
        }
        let notional = req.qty * ctx.exec_price;
        if notional < self.limits.min_notional {
            return Denied(DenyReason::MinNotional {
                notional,
                min: self.limits.min_notional,
            });
        }
        if notional > self.limits.max_order_notional {
            return Denied(DenyReason::OrderNotional {
                notional,
                max: self.limits.max_order_notional,
            });
        }
        let new_pos = ctx.position_qty + req.side.sign() * req.qty;
        let pos_notional = new_pos.abs() * ctx.exec_price;
        if pos_notional > self.limits.max_position_notional {
            return Denied(DenyReason::PositionNotional {
                notional: pos_notional,
                max: self.limits.max_position_notional,
            });
        }
        if !mid.is_zero() {
            let dev_pct = ((ctx.exec_price - mid) / mid).abs() * Decimal::ONE_HUNDRED;
            if dev_pct > self.limits.price_band_pct {
                return Denied(DenyReason::PriceBand {
                    price: ctx.exec_price,
                    mid,
                    band_pct: self.limits.price_band_pct,
                });
            }
        }
        RiskDecision::Approved
    }

    /// Records an approved order, entry or exit, as sent (for the per-minute rate that limits entries).
    pub fn on_order_sent(&mut self, now: TsNs) {
        self.sent.push_back(now);
    }

    fn prune(&mut self, now: TsNs) {
        while self.sent.front().is_some_and(|t| *t <= now - MINUTE_NS) {
            self.sent.pop_front();
        }
    }

    /// Active, flat, and `now` in the same UTC day as the last [`Risk::on_pnl`]: with the PnL unchanged since
    /// then, nothing can change (the caller tracks that).
    #[inline]
    pub fn quiet_while_flat(&self, now: TsNs) -> bool {
        self.state == TradingState::Active && self.in_current_day(now)
    }

    /// `now` is in the UTC day of the last [`Risk::on_pnl`], `[day * DAY_NS, (day + 1) * DAY_NS)`: two compares
    /// instead of a division.
    #[inline]
    fn in_current_day(&self, now: TsNs) -> bool {
        let start = self.day.saturating_mul(DAY_NS);
        now >= start && now < start.saturating_add(DAY_NS)
    }

    /// Whether [`Risk::on_pnl`] could change anything now, judged from an f64 estimate of realised + unrealised
    /// PnL: false while the day is unchanged and the estimate is clearly away from the limit (or nothing can move).
    #[inline]
    pub fn may_change(&self, now: TsNs, pnl_estimate: f64, flat: bool) -> bool {
        if !self.in_current_day(now) {
            return true;
        }
        match self.state {
            TradingState::Active => {
                let limit = self.limit_f;
                let day_pnl = pnl_estimate - self.day_start_f;
                day_pnl <= -limit + 1e-6 * (1.0 + limit)
            }
            TradingState::Reducing => flat,
            // The kill switch is never DEGRADED (that state is the engine's, from feed health).
            TradingState::Halted | TradingState::Degraded => false,
        }
    }

    /// Updates the kill switch from the PnL (realised total and current unrealised) and whether the book is flat.
    pub fn on_pnl(
        &mut self,
        now: TsNs,
        realized_total: Decimal,
        unrealized: Decimal,
        flat: bool,
    ) -> Option<StateChange> {
        let day = now.div_euclid(DAY_NS);
        if day != self.day {
            let first = self.day == i64::MIN;
            self.day = day;
            self.day_start_realized = realized_total;
            self.day_start_f = crate::model::to_f64(realized_total);
            if !first && self.state != TradingState::Active {
                let from = self.state;
                self.state = TradingState::Active;
                return Some(StateChange {
                    from,
                    to: TradingState::Active,
                    reason: "new UTC day: daily loss reset".into(),
                });
            }
        }
        let day_pnl = realized_total - self.day_start_realized + unrealized;
        match self.state {
            TradingState::Active if day_pnl <= -self.limits.max_daily_loss => {
                self.state = if flat {
                    TradingState::Halted
                } else {
                    TradingState::Reducing
                };
                Some(StateChange {
                    from: TradingState::Active,
                    to: self.state,
                    reason: format!(
                        "daily loss {} USDT reached the limit {}",
                        day_pnl.round_dp(2),
                        self.limits.max_daily_loss
                    ),
                })
            }
            TradingState::Reducing if flat => {
                self.state = TradingState::Halted;
                Some(StateChange {
                    from: TradingState::Reducing,
                    to: TradingState::Halted,
                    reason: "position closed after the daily loss limit".into(),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrderType, Side};

    fn req(side: Side, qty: i64, reduce_only: bool) -> OrderRequest {
        OrderRequest {
            client_id: "c1".into(),
            symbol: "BTCUSDT".into(),
            side,
            order_type: OrderType::Market,
            qty: Decimal::new(qty, 3),
            price: None,
            reduce_only,
            rule: "r".into(),
            decided_ts: 0,
        }
    }

    fn ctx(now: TsNs) -> RiskContext {
        RiskContext {
            now,
            perp_mid: Some(Decimal::from(60_000)),
            exec_price: Decimal::from(60_000),
            position_qty: Decimal::ZERO,
            spot_ts: Some(now),
            perp_ts: Some(now),
        }
    }

    #[test]
    fn denials_are_typed() {
        let mut r = Risk::new(RiskLimits::default());
        assert_eq!(
            r.check(&req(Side::Buy, 10, false), &ctx(0)),
            RiskDecision::Approved
        );
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 100, false), &ctx(0)) else {
            panic!()
        };
        assert_eq!(d.code(), "max_order_notional");
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 1, false), &ctx(0)) else {
            panic!()
        };
        assert_eq!(d.code(), "min_notional");
        let mut stale = ctx(10 * NS_PER_S);
        stale.spot_ts = Some(0);
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 10, false), &stale) else {
            panic!()
        };
        assert_eq!(
            d.to_string(),
            "feed_stale: last spot quote is 10000 ms old (max 5000 ms)"
        );
        // Exits pass even when stale.
        assert_eq!(
            r.check(&req(Side::Sell, 10, true), &stale),
            RiskDecision::Approved
        );
    }

    #[test]
    fn order_rate_window_slides() {
        let mut r = Risk::new(RiskLimits {
            max_orders_per_minute: 2,
            ..Default::default()
        });
        r.on_order_sent(0);
        r.on_order_sent(NS_PER_S);
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 10, false), &ctx(59 * NS_PER_S))
        else {
            panic!()
        };
        assert_eq!(d.code(), "max_orders_per_minute");
        // The order sent at t=0 leaves the window at t=60s.
        assert_eq!(
            r.check(&req(Side::Buy, 10, false), &ctx(60 * NS_PER_S)),
            RiskDecision::Approved
        );
    }

    #[test]
    fn exits_pass_the_order_rate_and_count_in_it() {
        let mut r = Risk::new(RiskLimits {
            max_orders_per_minute: 2,
            ..Default::default()
        });
        r.on_order_sent(0);
        r.on_order_sent(NS_PER_S);
        // The window is full: an entry is denied, an exit is not.
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 10, false), &ctx(2 * NS_PER_S))
        else {
            panic!()
        };
        assert_eq!(d.code(), "max_orders_per_minute");
        assert_eq!(
            r.check(&req(Side::Sell, 10, true), &ctx(2 * NS_PER_S)),
            RiskDecision::Approved
        );
        // The exit, once sent, counts: at t=60 s the first order left the window but the exit keeps it full.
        r.on_order_sent(2 * NS_PER_S);
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 10, false), &ctx(60 * NS_PER_S))
        else {
            panic!()
        };
        assert_eq!(
            d.to_string(),
            "max_orders_per_minute: 2 orders in the last minute (max 2)"
        );
        assert_eq!(
            r.check(&req(Side::Buy, 10, false), &ctx(61 * NS_PER_S)),
            RiskDecision::Approved
        );
    }

    #[test]
    fn kill_switch_active_reducing_halted() {
        let mut r = Risk::new(RiskLimits {
            max_daily_loss: Decimal::from(100),
            ..Default::default()
        });
        assert_eq!(r.on_pnl(0, Decimal::ZERO, Decimal::ZERO, true), None);
        let c = r
            .on_pnl(1, Decimal::from(-60), Decimal::from(-40), false)
            .unwrap();
        assert_eq!(
            (c.from, c.to),
            (TradingState::Active, TradingState::Reducing)
        );
        let RiskDecision::Denied(d) = r.check(&req(Side::Buy, 10, false), &ctx(2)) else {
            panic!()
        };
        assert_eq!(d, DenyReason::TradingState(TradingState::Reducing));
        assert_eq!(
            r.check(&req(Side::Sell, 10, true), &ctx(2)),
            RiskDecision::Approved
        );
        let c = r
            .on_pnl(3, Decimal::from(-110), Decimal::ZERO, true)
            .unwrap();
        assert_eq!(c.to, TradingState::Halted);
        let c = r
            .on_pnl(DAY_NS + 1, Decimal::from(-110), Decimal::ZERO, true)
            .unwrap();
        assert_eq!(c.to, TradingState::Active);
    }
}
