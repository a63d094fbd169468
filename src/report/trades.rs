//! Round trips reconstructed from fills (flat → flat per symbol, partial fills and flips included) and their totals.

use crate::model::{Decimal, Fill, Side, TsNs};

/// One round trip: from flat to flat on one symbol (or still open, when `exit_ts` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub symbol: String,
    /// `Buy` for a long trade, `Sell` for a short one.
    pub side: Side,
    /// Total quantity entered (equals the quantity exited once the trade is closed).
    pub qty: Decimal,
    pub entry_ts: TsNs,
    /// Timestamp of the fill that made the position flat; `None` while open.
    pub exit_ts: Option<TsNs>,
    /// Quantity-weighted average entry price.
    pub avg_entry: Decimal,
    /// Quantity-weighted average exit price of what was exited so far.
    pub avg_exit: Option<Decimal>,
    /// Quantity exited so far.
    pub exit_qty: Decimal,
    /// PnL before fees (for an open trade: realised so far, against the average entry).
    pub gross_pnl: Decimal,
    /// Fees of the trade's fills (a flipping fill's fee is split pro rata between the two trades).
    pub fees: Decimal,
    pub net_pnl: Decimal,
    /// Rule of the fill that opened the trade.
    pub entry_rule: String,
    /// Rule of the last exiting fill.
    pub exit_rule: Option<String>,
    /// Number of fills that made up the trade.
    pub fills: usize,
    /// Client order id of the fill that opened the trade.
    pub entry_client_id: String,
    /// Client order id of the last exiting fill.
    pub exit_client_id: Option<String>,
    /// Values journaled with the entry order's decision, by name (NaN: undefined); empty when the journal has no
    /// decision for that order. See [`TradeStats::attach_decisions`].
    pub entry_values: Vec<(String, f64)>,
    /// Values journaled with the decision of the last exiting order.
    pub exit_values: Vec<(String, f64)>,
}

impl Trade {
    pub fn is_closed(&self) -> bool {
        self.exit_ts.is_some()
    }
    pub fn is_win(&self) -> bool {
        self.net_pnl > Decimal::ZERO
    }
}

/// Trades and counts of one entry rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStats {
    pub rule: String,
    pub trades: usize,
    pub wins: usize,
    pub net_pnl: Decimal,
}

/// Closed trades and their totals. Totals cover closed trades only; `open` lists trades not yet flat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TradeStats {
    /// Closed trades, in the order they closed.
    pub trades: Vec<Trade>,
    /// Trades still open at the last fill, by symbol.
    pub open: Vec<Trade>,
    pub wins: usize,
    pub losses: usize,
    /// Wins / closed trades, 0..=1 (0 when there are none).
    pub win_rate: f64,
    pub gross_pnl: Decimal,
    /// Fees of the closed trades.
    pub fees: Decimal,
    /// Realised PnL of the closed trades, net of fees.
    pub realized_pnl: Decimal,
    /// Largest peak-to-trough fall of cumulative net PnL after each closed trade (starting at 0), positive.
    pub max_drawdown: Decimal,
    /// Closed trades per entry rule, in order of first appearance.
    pub by_rule: Vec<RuleStats>,
}

/// A trade being built.
struct Building {
    symbol: String,
    side: Side,
    open_qty: Decimal,
    entry_ts: TsNs,
    entry_rule: String,
    entry_qty: Decimal,
    entry_notional: Decimal,
    exit_qty: Decimal,
    exit_notional: Decimal,
    exit_ts: TsNs,
    exit_rule: Option<String>,
    fees: Decimal,
    fills: usize,
    entry_client_id: String,
    exit_client_id: Option<String>,
}

impl Building {
    fn open(fill: &Fill, qty: Decimal, fee: Decimal) -> Building {
        Building {
            symbol: fill.symbol.clone(),
            side: fill.side,
            open_qty: qty,
            entry_ts: fill.ts,
            entry_rule: fill.rule.clone(),
            entry_qty: qty,
            entry_notional: qty.saturating_mul(fill.price),
            exit_qty: Decimal::ZERO,
            exit_notional: Decimal::ZERO,
            exit_ts: fill.ts,
            exit_rule: None,
            fees: fee,
            fills: 1,
            entry_client_id: fill.client_id.clone(),
            exit_client_id: None,
        }
    }

    fn avg_entry(&self) -> Decimal {
        self.entry_notional
            .checked_div(self.entry_qty)
            .unwrap_or(Decimal::ZERO)
    }

    fn finish(self, closed: bool) -> Trade {
        let avg_entry = self.avg_entry();
        let dir = self.side.sign();
        let gross = if closed {
            // Flat again: with average-cost accounting the gross PnL is exactly proceeds minus cost.
            dir.saturating_mul(self.exit_notional.saturating_sub(self.entry_notional))
        } else {
            dir.saturating_mul(
                self.exit_notional
                    .saturating_sub(avg_entry.saturating_mul(self.exit_qty)),
            )
        };
        let avg_exit = if self.exit_qty.is_zero() {
            None
        } else {
            self.exit_notional.checked_div(self.exit_qty)
        };
        Trade {
            symbol: self.symbol,
            side: self.side,
            qty: self.entry_qty,
            entry_ts: self.entry_ts,
            exit_ts: closed.then_some(self.exit_ts),
            avg_entry,
            avg_exit,
            exit_qty: self.exit_qty,
            gross_pnl: gross,
            fees: self.fees,
            net_pnl: gross.saturating_sub(self.fees),
            entry_rule: self.entry_rule,
            exit_rule: self.exit_rule,
            fills: self.fills,
            entry_client_id: self.entry_client_id,
            exit_client_id: self.exit_client_id,
            entry_values: Vec::new(),
            exit_values: Vec::new(),
        }
    }
}

impl TradeStats {
    /// Reconstructs round trips from fills. Fills are taken in timestamp order (stable for ties, so the recorded
    /// order decides between fills of the same timestamp). Fills with zero quantity are ignored.
    pub fn from_fills(fills: &[Fill]) -> TradeStats {
        let mut order: Vec<&Fill> = fills.iter().collect();
        order.sort_by_key(|f| f.ts);

        let mut building: Vec<Building> = Vec::new();
        let mut closed: Vec<Trade> = Vec::new();
        for fill in order {
            let qty = fill.qty.abs();
            if qty.is_zero() {
                continue;
            }
            let slot = building.iter().position(|b| b.symbol == fill.symbol);
            let Some(i) = slot else {
                building.push(Building::open(fill, qty, fill.fee));
                continue;
            };
            let b = &mut building[i];
            if b.side == fill.side {
                b.open_qty = b.open_qty.saturating_add(qty);
                b.entry_qty = b.entry_qty.saturating_add(qty);
                b.entry_notional = b
                    .entry_notional
                    .saturating_add(qty.saturating_mul(fill.price));
                b.fees = b.fees.saturating_add(fill.fee);
                b.fills += 1;
                continue;
            }
            let closing = qty.min(b.open_qty);
            let close_fee = if closing == qty {
                fill.fee
            } else {
                fill.fee
                    .saturating_mul(closing)
                    .checked_div(qty)
                    .unwrap_or(Decimal::ZERO)
            };
            b.open_qty = b.open_qty.saturating_sub(closing);
            b.exit_qty = b.exit_qty.saturating_add(closing);
            b.exit_notional = b
                .exit_notional
                .saturating_add(closing.saturating_mul(fill.price));
            b.exit_ts = fill.ts;
            b.exit_rule = Some(fill.rule.clone());
            b.exit_client_id = Some(fill.client_id.clone());
            b.fees = b.fees.saturating_add(close_fee);
            b.fills += 1;
            if b.open_qty.is_zero() {
                let done = building.swap_remove(i);
                closed.push(done.finish(true));
                let rest = qty.saturating_sub(closing);
                if !rest.is_zero() {
                    // A flip: the remainder opens the next trade at the same fill.
                    building.push(Building::open(
                        fill,
                        rest,
                        fill.fee.saturating_sub(close_fee),
                    ));
                }
            }
        }
        let mut open: Vec<Trade> = building.into_iter().map(|b| b.finish(false)).collect();
        open.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        TradeStats::from_trades(closed, open)
    }

    fn from_trades(trades: Vec<Trade>, open: Vec<Trade>) -> TradeStats {
        let mut s = TradeStats {
            open,
            ..TradeStats::default()
        };
        let mut peak = Decimal::ZERO;
        let mut equity = Decimal::ZERO;
        for t in &trades {
            if t.is_win() {
                s.wins += 1;
            } else {
                s.losses += 1;
            }
            s.gross_pnl = s.gross_pnl.saturating_add(t.gross_pnl);
            s.fees = s.fees.saturating_add(t.fees);
            equity = equity.saturating_add(t.net_pnl);
            peak = peak.max(equity);
            s.max_drawdown = s.max_drawdown.max(peak.saturating_sub(equity));
            let rule = match s.by_rule.iter().position(|r| r.rule == t.entry_rule) {
                Some(i) => &mut s.by_rule[i],
                None => {
                    s.by_rule.push(RuleStats {
                        rule: t.entry_rule.clone(),
                        trades: 0,
                        wins: 0,
                        net_pnl: Decimal::ZERO,
                    });
                    let last = s.by_rule.len() - 1;
                    &mut s.by_rule[last]
                }
            };
            rule.trades += 1;
            rule.wins += usize::from(t.is_win());
            rule.net_pnl = rule.net_pnl.saturating_add(t.net_pnl);
        }
        s.realized_pnl = equity;
        s.win_rate = if trades.is_empty() {
            0.0
        } else {
            s.wins as f64 / trades.len() as f64
        };
        s.trades = trades;
        s
    }

    /// Number of closed trades.
    pub fn count(&self) -> usize {
        self.trades.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn fill(ts: i64, sym: &str, side: Side, qty: &str, price: &str, fee: &str, rule: &str) -> Fill {
        Fill {
            ts,
            client_id: format!("c{ts}"),
            symbol: sym.into(),
            side,
            qty: d(qty),
            price: d(price),
            fee: d(fee),
            trade_id: None,
            rule: rule.into(),
        }
    }

    #[test]
    fn long_win_and_short_loss() {
        let fills = [
            fill(1, "BTCUSDT", Side::Buy, "0.010", "60000", "0.24", "up"),
            fill(
                2,
                "BTCUSDT",
                Side::Sell,
                "0.010",
                "60100",
                "0.24",
                "max_hold",
            ),
            fill(3, "BTCUSDT", Side::Sell, "0.020", "60000", "0.48", "down"),
            fill(
                4,
                "BTCUSDT",
                Side::Buy,
                "0.020",
                "60050",
                "0.48",
                "stop_loss",
            ),
        ];
        let s = TradeStats::from_fills(&fills);
        assert_eq!(s.count(), 2);
        let long = &s.trades[0];
        assert_eq!(
            (long.side, long.entry_ts, long.exit_ts),
            (Side::Buy, 1, Some(2))
        );
        assert_eq!(long.gross_pnl, d("1"));
        assert_eq!(long.fees, d("0.48"));
        assert_eq!(long.net_pnl, d("0.52"));
        assert_eq!(long.entry_rule, "up");
        assert_eq!(long.exit_rule.as_deref(), Some("max_hold"));
        let short = &s.trades[1];
        assert_eq!(short.side, Side::Sell);
        assert_eq!(short.gross_pnl, d("-1"));
        assert_eq!(short.net_pnl, d("-1.96"));
        assert_eq!((s.wins, s.losses), (1, 1));
        assert!((s.win_rate - 0.5).abs() < 1e-12);
        assert_eq!(s.fees, d("1.44"));
        assert_eq!(s.realized_pnl, d("-1.44"));
        assert_eq!(s.max_drawdown, d("1.96"));
        assert!(s.open.is_empty());
        assert_eq!(s.by_rule.len(), 2);
        assert_eq!(s.by_rule[0].rule, "up");
    }

    #[test]
    fn partial_fills_make_one_trade_with_weighted_prices() {
        let fills = [
            fill(1, "BTCUSDT", Side::Buy, "0.004", "100", "0.1", "r"),
            fill(2, "BTCUSDT", Side::Buy, "0.006", "110", "0.1", "r"),
            fill(3, "BTCUSDT", Side::Sell, "0.005", "120", "0.1", "x"),
            fill(4, "BTCUSDT", Side::Sell, "0.005", "100", "0.1", "x"),
        ];
        let s = TradeStats::from_fills(&fills);
        assert_eq!(s.count(), 1);
        let t = &s.trades[0];
        assert_eq!(t.qty, d("0.010"));
        assert_eq!(t.avg_entry, d("106"));
        assert_eq!(t.avg_exit, Some(d("110")));
        assert_eq!(t.gross_pnl, d("0.04"));
        assert_eq!(t.fees, d("0.4"));
        assert_eq!(t.fills, 4);
        assert_eq!((t.entry_ts, t.exit_ts), (1, Some(4)));
    }

    #[test]
    fn flip_closes_one_trade_and_opens_the_next_with_split_fee() {
        let fills = [
            fill(1, "BTCUSDT", Side::Buy, "1", "100", "1", "long"),
            fill(2, "BTCUSDT", Side::Sell, "3", "110", "3", "short"),
            fill(3, "BTCUSDT", Side::Buy, "2", "105", "2", "exit"),
        ];
        let s = TradeStats::from_fills(&fills);
        assert_eq!(s.count(), 2);
        let a = &s.trades[0];
        assert_eq!(
            (a.side, a.qty, a.gross_pnl, a.fees, a.net_pnl),
            (Side::Buy, d("1"), d("10"), d("2"), d("8"))
        );
        let b = &s.trades[1];
        assert_eq!((b.side, b.qty, b.entry_ts), (Side::Sell, d("2"), 2));
        assert_eq!(b.entry_rule, "short");
        assert_eq!(
            (b.avg_entry, b.gross_pnl, b.fees, b.net_pnl),
            (d("110"), d("10"), d("4"), d("6"))
        );
        assert_eq!(s.fees, d("6"));
        assert_eq!(s.realized_pnl, d("14"));
        assert_eq!(s.max_drawdown, Decimal::ZERO);
    }

    #[test]
    fn drawdown_is_peak_to_trough_of_cumulative_net() {
        // Net per trade: +5, -3, -4, +10, -6  → equity 5, 2, -2, 8, 2 → max drawdown 7 (5 → -2).
        let mut fills = Vec::new();
        for (i, pnl) in [5, -3, -4, 10, -6].into_iter().enumerate() {
            let ts = i as i64 * 10;
            fills.push(fill(ts, "BTCUSDT", Side::Buy, "1", "100", "0", "r"));
            fills.push(fill(
                ts + 1,
                "BTCUSDT",
                Side::Sell,
                "1",
                &(100 + pnl).to_string(),
                "0",
                "x",
            ));
        }
        let s = TradeStats::from_fills(&fills);
        assert_eq!(s.count(), 5);
        assert_eq!(s.max_drawdown, d("7"));
        assert_eq!(s.realized_pnl, d("2"));
        assert_eq!((s.wins, s.losses), (2, 3));
    }

    #[test]
    fn symbols_are_independent_and_open_trades_are_listed() {
        let fills = [
            fill(1, "BTCUSDT", Side::Buy, "1", "100", "0", "r"),
            fill(2, "ETHUSDT", Side::Sell, "2", "10", "0", "s"),
            fill(3, "BTCUSDT", Side::Sell, "1", "101", "0", "x"),
            fill(4, "ETHUSDT", Side::Buy, "1", "9", "0", "x"),
        ];
        let s = TradeStats::from_fills(&fills);
        assert_eq!(s.count(), 1);
        assert_eq!(s.trades[0].symbol, "BTCUSDT");
        assert_eq!(s.open.len(), 1);
        let o = &s.open[0];
        assert_eq!(
            (o.symbol.as_str(), o.exit_ts, o.exit_qty, o.gross_pnl),
            ("ETHUSDT", None, d("1"), d("1"))
        );
        assert_eq!(s.realized_pnl, d("1"));
    }

    #[test]
    fn no_fills_no_trades() {
        let s = TradeStats::from_fills(&[]);
        assert_eq!(s.count(), 0);
        assert_eq!(s.win_rate, 0.0);
        assert_eq!(s.max_drawdown, Decimal::ZERO);
    }
}
