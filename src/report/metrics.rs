//! Performance metrics of a run's closed trades: counts, PnL, drawdown, exposure, risk-adjusted ratios, splits.
//!
//! Money stays exact (`Decimal`); ratios are `f64`. Every figure is over closed trades, in the order they closed.
//! The formulas are stated for users in README "Reviewing a run"; this module is the one place they live.

use serde_json::{json, Value};

use super::trades::Trade;
use crate::model::{to_f64, Decimal, Side, TsNs, NS_PER_S};

const NS_PER_DAY: TsNs = 86_400 * NS_PER_S;
/// Crypto trades every day of the year: daily ratios are annualised with √365.
const DAYS_PER_YEAR: f64 = 365.0;
/// Below this many closed trades the ratios say little; the report warns.
pub const FEW_TRADES: usize = 30;

/// What the metrics are computed from.
#[derive(Debug, Clone, Copy)]
pub struct MetricsInput<'a> {
    /// Closed trades, in the order they closed.
    pub trades: &'a [Trade],
    /// Trades still open at the end (they count towards exposure only).
    pub open: &'a [Trade],
    /// Market time covered by the run (first and last event); `None` to use the trades' own span.
    pub span: Option<(TsNs, TsNs)>,
    /// The account's balance at the start, when known.
    pub starting_balance: Option<Decimal>,
}

/// Trades, wins and net PnL of one group of trades (a side, an entry rule, an exit reason).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub name: String,
    pub trades: usize,
    pub wins: usize,
    pub net_pnl: Decimal,
}

impl Group {
    fn add(&mut self, t: &Trade) {
        self.trades += 1;
        self.wins += usize::from(t.is_win());
        self.net_pnl = self.net_pnl.saturating_add(t.net_pnl);
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "trades": self.trades,
            "wins": self.wins,
            "win_rate": ratio(self.wins, self.trades),
            "net_pnl": super::num(self.net_pnl),
        })
    }
}

/// The metrics object of `premia report`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    pub trades: usize,
    pub wins: usize,
    pub losses: usize,
    pub win_rate: Option<f64>,
    pub gross_pnl: Decimal,
    pub fees: Decimal,
    pub net_pnl: Decimal,
    pub net_pnl_pct: Option<f64>,
    pub profit_factor: Option<f64>,
    pub expectancy: Option<Decimal>,
    pub avg_win: Option<Decimal>,
    pub avg_loss: Option<Decimal>,
    pub best_trade: Option<Decimal>,
    pub worst_trade: Option<Decimal>,
    pub longest_win_streak: usize,
    pub longest_loss_streak: usize,
    pub max_drawdown: Decimal,
    pub max_drawdown_pct: Option<f64>,
    pub max_drawdown_duration_s: f64,
    pub exposure_pct: Option<f64>,
    pub trades_per_day: Option<f64>,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub calmar: Option<f64>,
    /// The perp's own move over the span; premia keeps no prices in the state dir, so this is `None` for now.
    pub buy_and_hold_pct: Option<f64>,
    pub span_s: Option<f64>,
    pub starting_balance: Option<Decimal>,
    pub long: Group,
    pub short: Group,
    pub by_entry_rule: Vec<Group>,
    pub by_exit_reason: Vec<Group>,
}

/// Underwater stats of the closed-trade equity curve.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Drawdown {
    amount: Decimal,
    pct: Option<f64>,
    duration_ns: TsNs,
}

impl Metrics {
    pub fn compute(input: MetricsInput<'_>) -> Metrics {
        let trades = input.trades;
        let span = input.span.or_else(|| trades_span(trades, input.open));
        let span_ns = span.map(|(a, b)| b.saturating_sub(a).max(0));
        let mut m = Metrics {
            trades: trades.len(),
            span_s: span_ns.map(|ns| ns as f64 / NS_PER_S as f64),
            starting_balance: input.starting_balance,
            long: Group {
                name: "long".into(),
                ..Group::default()
            },
            short: Group {
                name: "short".into(),
                ..Group::default()
            },
            ..Metrics::default()
        };
        m.add_trades(trades);
        m.win_rate = ratio(m.wins, m.trades);
        let balance = input.starting_balance.filter(|b| *b > Decimal::ZERO);
        m.net_pnl_pct = balance.map(|b| pct(m.net_pnl, b));
        let dd = drawdown(trades, span, balance);
        m.max_drawdown = dd.amount;
        m.max_drawdown_pct = dd.pct;
        m.max_drawdown_duration_s = dd.duration_ns as f64 / NS_PER_S as f64;
        if let (Some((start, end)), Some(ns)) = (span, span_ns.filter(|ns| *ns > 0)) {
            let held = time_in_position(trades, input.open, end);
            m.exposure_pct = Some(held as f64 / ns as f64 * 100.0);
            let days = ns as f64 / NS_PER_DAY as f64;
            m.trades_per_day = Some(m.trades as f64 / days);
            let daily = daily_returns(trades, start, end, balance);
            m.sharpe = sharpe(&daily);
            m.sortino = sortino(&daily);
            // Annualising less than a day of returns gives numbers that mean nothing.
            m.calmar = match (m.net_pnl_pct, dd.pct) {
                (Some(ret), Some(ddp)) if ddp > 0.0 && days >= 1.0 => {
                    Some(ret / days * DAYS_PER_YEAR / ddp)
                }
                _ => None,
            };
        }
        m
    }

    fn add_trades(&mut self, trades: &[Trade]) {
        let (mut won, mut lost) = (Decimal::ZERO, Decimal::ZERO);
        let (mut win_run, mut loss_run) = (0usize, 0usize);
        for t in trades {
            if t.is_win() {
                self.wins += 1;
                won = won.saturating_add(t.net_pnl);
                win_run += 1;
                loss_run = 0;
            } else {
                self.losses += 1;
                lost = lost.saturating_add(t.net_pnl);
                loss_run += 1;
                win_run = 0;
            }
            self.longest_win_streak = self.longest_win_streak.max(win_run);
            self.longest_loss_streak = self.longest_loss_streak.max(loss_run);
            self.gross_pnl = self.gross_pnl.saturating_add(t.gross_pnl);
            self.fees = self.fees.saturating_add(t.fees);
            self.net_pnl = self.net_pnl.saturating_add(t.net_pnl);
            self.best_trade = Some(self.best_trade.map_or(t.net_pnl, |b| b.max(t.net_pnl)));
            self.worst_trade = Some(self.worst_trade.map_or(t.net_pnl, |w| w.min(t.net_pnl)));
            match t.side {
                Side::Buy => self.long.add(t),
                Side::Sell => self.short.add(t),
            }
            group(&mut self.by_entry_rule, &t.entry_rule).add(t);
            group(
                &mut self.by_exit_reason,
                t.exit_rule.as_deref().unwrap_or("-"),
            )
            .add(t);
        }
        self.expectancy = mean(self.net_pnl, self.trades);
        self.avg_win = mean(won, self.wins);
        self.avg_loss = mean(lost, self.losses);
        self.profit_factor = (!lost.is_zero()).then(|| to_f64(won) / to_f64(lost).abs());
    }

    /// Whether there are too few closed trades for the ratios to mean much.
    pub fn few_trades(&self) -> bool {
        self.trades < FEW_TRADES
    }

    /// The `metrics` object of `report --json`: snake_case keys, numbers (or `null` where undefined).
    pub fn to_json(&self) -> Value {
        let f = |x: Option<f64>| {
            x.and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number)
        };
        let d = |x: Option<Decimal>| x.map_or(Value::Null, super::num);
        json!({
            "trades": self.trades,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": f(self.win_rate),
            "gross_pnl": super::num(self.gross_pnl),
            "fees": super::num(self.fees),
            "net_pnl": super::num(self.net_pnl),
            "net_pnl_pct": f(self.net_pnl_pct),
            "starting_balance": d(self.starting_balance),
            "profit_factor": f(self.profit_factor),
            "expectancy": d(self.expectancy),
            "avg_win": d(self.avg_win),
            "avg_loss": d(self.avg_loss),
            "best_trade": d(self.best_trade),
            "worst_trade": d(self.worst_trade),
            "longest_win_streak": self.longest_win_streak,
            "longest_loss_streak": self.longest_loss_streak,
            "max_drawdown": super::num(self.max_drawdown),
            "max_drawdown_pct": f(self.max_drawdown_pct),
            "max_drawdown_duration_s": f(Some(self.max_drawdown_duration_s)),
            "exposure_pct": f(self.exposure_pct),
            "trades_per_day": f(self.trades_per_day),
            "sharpe": f(self.sharpe),
            "sortino": f(self.sortino),
            "calmar": f(self.calmar),
            "buy_and_hold_pct": f(self.buy_and_hold_pct),
            "span_s": f(self.span_s),
            "few_trades": self.few_trades(),
            "long": self.long.to_json(),
            "short": self.short.to_json(),
            "by_entry_rule": self.by_entry_rule.iter().map(Group::to_json).collect::<Vec<_>>(),
            "by_exit_reason": self.by_exit_reason.iter().map(Group::to_json).collect::<Vec<_>>(),
        })
    }
}

fn group<'a>(groups: &'a mut Vec<Group>, name: &str) -> &'a mut Group {
    let i = match groups.iter().position(|g| g.name == name) {
        Some(i) => i,
        None => {
            groups.push(Group {
                name: name.to_string(),
                ..Group::default()
            });
            groups.len() - 1
        }
    };
    &mut groups[i]
}

fn ratio(n: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

fn mean(sum: Decimal, n: usize) -> Option<Decimal> {
    (n > 0).then(|| sum.checked_div(Decimal::from(n)).unwrap_or(Decimal::ZERO))
}

fn pct(amount: Decimal, of: Decimal) -> f64 {
    to_f64(amount) / to_f64(of) * 100.0
}

/// From the first entry to the last exit (or the last open trade's entry) when the run's span is unknown.
fn trades_span(trades: &[Trade], open: &[Trade]) -> Option<(TsNs, TsNs)> {
    let all = trades.iter().chain(open);
    let start = all.clone().map(|t| t.entry_ts).min()?;
    let end = all.map(|t| t.exit_ts.unwrap_or(t.entry_ts)).max()?;
    Some((start, end))
}

/// Largest fall of the closed-trade equity curve (0 at the start) below its running peak: amount, as % of the
/// equity at that peak (starting balance + peak), and the longest time spent below a peak (until regained, or the
/// end of the span).
fn drawdown(trades: &[Trade], span: Option<(TsNs, TsNs)>, balance: Option<Decimal>) -> Drawdown {
    let mut out = Drawdown::default();
    let (mut equity, mut peak) = (Decimal::ZERO, Decimal::ZERO);
    let mut peak_ts = span.map_or(0, |s| s.0);
    let mut underwater = false;
    for t in trades {
        let ts = t.exit_ts.unwrap_or(t.entry_ts);
        equity = equity.saturating_add(t.net_pnl);
        if equity >= peak {
            if underwater {
                out.duration_ns = out.duration_ns.max(ts.saturating_sub(peak_ts));
                underwater = false;
            }
            peak = equity;
            peak_ts = ts;
            continue;
        }
        underwater = true;
        let fall = peak.saturating_sub(equity);
        if fall > out.amount {
            out.amount = fall;
        }
        if let Some(b) = balance {
            let p = pct(fall, b.saturating_add(peak));
            out.pct = Some(out.pct.map_or(p, |q: f64| q.max(p)));
        }
    }
    if underwater {
        let end = span.map_or(peak_ts, |s| s.1);
        out.duration_ns = out.duration_ns.max(end.saturating_sub(peak_ts));
    }
    if balance.is_some() && out.pct.is_none() {
        out.pct = Some(0.0);
    }
    out
}

/// Time with a position open (overlapping trades of several symbols counted once); open trades until `end`.
fn time_in_position(trades: &[Trade], open: &[Trade], end: TsNs) -> TsNs {
    let mut spans: Vec<(TsNs, TsNs)> = trades
        .iter()
        .chain(open)
        .map(|t| (t.entry_ts, t.exit_ts.unwrap_or(end).max(t.entry_ts)))
        .collect();
    spans.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(TsNs, TsNs)> = None;
    for (a, b) in spans {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + cur.map_or(0, |(a, b)| b - a)
}

/// Net PnL of the trades closed on each UTC calendar day of the span (days without trades count as 0), as a
/// fraction of the starting balance when known (the ratios built on them do not depend on that scale).
fn daily_returns(trades: &[Trade], start: TsNs, end: TsNs, balance: Option<Decimal>) -> Vec<f64> {
    let first = start.div_euclid(NS_PER_DAY);
    let days = (end.div_euclid(NS_PER_DAY) - first + 1).max(1) as usize;
    let mut pnl = vec![Decimal::ZERO; days];
    for t in trades {
        let day = t.exit_ts.unwrap_or(t.entry_ts).div_euclid(NS_PER_DAY) - first;
        let i = usize::try_from(day).unwrap_or(0).min(days - 1);
        pnl[i] = pnl[i].saturating_add(t.net_pnl);
    }
    let scale = balance.map_or(1.0, to_f64);
    pnl.into_iter().map(|p| to_f64(p) / scale).collect()
}

/// Mean daily return over its sample standard deviation, × √365. Needs two days and some variation.
fn sharpe(daily: &[f64]) -> Option<f64> {
    if daily.len() < 2 {
        return None;
    }
    let n = daily.len() as f64;
    let mean = daily.iter().sum::<f64>() / n;
    let var = daily.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = var.sqrt();
    (sd > 0.0).then(|| mean / sd * DAYS_PER_YEAR.sqrt())
}

/// Mean daily return over the downside deviation √(Σ min(r, 0)² / n), × √365. Needs two days and a losing day.
fn sortino(daily: &[f64]) -> Option<f64> {
    if daily.len() < 2 {
        return None;
    }
    let n = daily.len() as f64;
    let mean = daily.iter().sum::<f64>() / n;
    let down = (daily.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    (down > 0.0).then(|| mean / down * DAYS_PER_YEAR.sqrt())
}

#[cfg(test)]
mod tests;
