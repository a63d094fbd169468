//! The synchronous trading engine: events in, actions out, no I/O.
//!
//! One [`Engine`] owns all trading state of one strategy — indicators, position, the pending order, risk — and handles
//! one [`Event`] at a time. Backtests call it in a loop; live runs call it from one task reading the event channel.
//! Its clock is the event timestamps: nothing inside reads the wall clock.

use std::collections::VecDeque;

use rust_decimal::prelude::*;

use crate::market::{MarketEvent, MarketKind};
use crate::model::{
    to_f64, Fill, JournalEntry, JournalKind, OrderRecord, OrderRequest, OrderState, OrderType,
    OrderUpdate, Position, Side, SymbolFilters, TsNs, Venue, NS_PER_MS, NS_PER_S,
};
use crate::risk::{
    DenyReason, Risk, RiskContext, RiskDecision, RiskLimits, StateChange, TradingState,
};
use crate::signal::{quote_prices, MarketState};
use crate::strategy::{Context, OrderSize, RuleAction, Signals, Strategy};

/// Everything that can happen to the engine.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // passed by reference; order updates are rare and boxing them buys nothing
pub enum Event {
    Market(MarketEvent),
    /// Progress of one of our orders (REST result, order query, user-data stream, or the simulator).
    Order(OrderUpdate),
    /// Time passes with no market data (live runs tick this so `max_hold` fires on a silent feed).
    Clock(TsNs),
    Control(Control, TsNs),
    /// A market's feed connection was lost (live runs): DEGRADED (no entries) until it is back and fresh.
    FeedDown(Venue, TsNs),
    /// A market's feed connection is back (its last quote must also be fresh before entries resume).
    FeedUp(Venue, TsNs),
}

/// Operator commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// No new entries (shutdown begins); exits still run.
    StopEntries,
    /// Close the open position now (`--flatten-on-exit`).
    Flatten,
    /// The exchange refuses every request until this time (a rate-limit `Retry-After` or an IP ban): decide
    /// nothing before it, as after a rejection, instead of writing an order that cannot be sent.
    HoldUntil(TsNs),
}

/// What the engine decided. The caller persists and executes these in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write the order (state INTENT) to the store, then send it.
    Place(OrderRecord),
    /// Cancel a resting order.
    Cancel { client_id: String, symbol: String },
    /// An order's record changed (store it).
    OrderChanged(OrderRecord),
    /// A fill was booked; the position after it (store both).
    Filled { fill: Fill, position: Position },
    /// The position changed without a fill (reconciliation with the exchange).
    PositionChanged(Position),
    /// Append to the decision journal.
    Journal(JournalEntry),
}

/// Engine settings that are not part of the strategy.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub filters: SymbolFilters,
    pub risk: RiskLimits,
    /// Prefix of client order ids; with a sequence number appended it must stay ≤ 36 chars, `[A-Za-z0-9_-]`.
    pub client_id_prefix: String,
    /// Fee rates used when an exchange reports an execution without its commission (REST results).
    pub taker_fee_rate: Decimal,
    pub maker_fee_rate: Decimal,
}

/// Counters for summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub events: u64,
    pub samples: u64,
    /// Decisions (approved orders) per entry/exit rule, indexed like `Strategy::rules`.
    pub rule_fires: Vec<u64>,
    /// Exits decided by built-in reason: max_hold, take_profit, stop_loss, flatten.
    pub exit_reasons: [u64; 4],
    pub orders: u64,
    pub fills: u64,
    /// Denial episodes: a decision denied for the same reason on consecutive evaluations counts once.
    pub denials: u64,
    pub rejects: u64,
}

const RECENT_ORDERS: usize = 16;

const EXIT_NAMES: [&str; 4] = ["max_hold", "take_profit", "stop_loss", "flatten"];

/// The engine.
pub struct Engine {
    strategy: Strategy,
    signals: Signals,
    market: MarketState,
    cfg: EngineConfig,
    risk: Risk,
    position: Position,
    /// The one order in flight, if any. While it exists no new action is taken.
    pending: Option<OrderRecord>,
    /// Recently finished orders, so late duplicate reports of their fills are recognised.
    recent: VecDeque<OrderRecord>,
    seq: u64,
    now: TsNs,
    stop_entries: bool,
    flatten_requested: bool,
    /// The decision denied at the last evaluation, if any: while the same one is denied for the same reason on
    /// every evaluation it is one denial episode (counted and journalled once).
    denial: Option<DenialKey>,
    /// Feeds reported down by the live runner (`FeedDown`/`FeedUp`), one bit per [`Venue`].
    feeds_down: u8,
    /// Feed health at the last check: `Some(true)` DEGRADED, `None` before both markets have quoted.
    degraded: Option<bool>,
    /// `take_profit_pct` / `stop_loss_pct` in f64 (NaN when not set), compared with [`pnl_pct`].
    take_profit_f: f64,
    stop_loss_f: f64,
    /// A rule reads `pnl_pct`: computed exactly at every decision while in a position.
    exact_pnl_in_rules: bool,
    /// The position in f64 (indicators and fast paths only; money stays in `position`).
    pos_f: PosF,
    /// The position or realised PnL changed since the last full kill-switch check.
    pnl_changed: bool,
    /// Flat and Active with no realised PnL at the last full check: the kill switch has nothing to act on.
    no_pnl_yet: bool,
    /// The last decision, still to be journalled.
    deferred: Option<Deferred>,
    defer_journal: bool,
    /// After a rejection no new order is decided before this time (no hammering an exchange that says no).
    cooldown_until: TsNs,
    stats: Stats,
}

/// Who was denied: a rule (its index), or a built-in exit ([`EXIT_RULE`] minus its reason); and why.
type DenialKey = (usize, &'static str);

/// Denial keys of built-in exits count down from here (rule indices count up from 0).
const EXIT_RULE: usize = usize::MAX;

/// Which values explain a decision in the journal.
#[derive(Debug, Clone, Copy)]
enum ValuesOf {
    /// The series and functions of this rule.
    Rule(usize),
    /// A built-in exit: market values plus the position's PnL and age.
    Exit,
}

/// A decision whose journal entry is still to be written.
#[derive(Debug, Clone)]
struct Deferred {
    values_of: ValuesOf,
    ctx: Context,
    action: &'static str,
    rule: String,
    client_id: String,
    side: Side,
    qty: Decimal,
}

/// A denied decision, for [`Engine::deny`].
struct Denial {
    key: DenialKey,
    reason: DenyReason,
    rule: String,
    action: &'static str,
    values_of: ValuesOf,
}

/// f64 copy of the position for per-event estimates.
#[derive(Debug, Clone, Copy, Default)]
struct PosF {
    qty: f64,
    entry: f64,
    realized: f64,
}

/// Pause after an exchange rejection.
pub const REJECT_COOLDOWN_NS: TsNs = 2 * NS_PER_S;

impl Engine {
    pub fn new(strategy: Strategy, cfg: EngineConfig) -> Engine {
        let signals = Signals::new(&strategy);
        let stats = Stats {
            rule_fires: vec![0; strategy.rules.len()],
            ..Default::default()
        };
        let position = Position::flat(&strategy.symbol);
        let mut market = MarketState::new();
        market.set_needed(strategy.used_series());
        market.set_max_age(cfg.risk.max_feed_staleness_ns);
        let pct_f = |p: Option<Decimal>| p.map(to_f64).unwrap_or(f64::NAN);
        Engine {
            take_profit_f: pct_f(strategy.exit.take_profit_pct),
            stop_loss_f: pct_f(strategy.exit.stop_loss_pct),
            exact_pnl_in_rules: strategy.uses_pnl_pct(),
            risk: Risk::new(cfg.risk.clone()),
            strategy,
            signals,
            market,
            cfg,
            position,
            pending: None,
            recent: VecDeque::with_capacity(RECENT_ORDERS),
            seq: 0,
            now: i64::MIN,
            stop_entries: false,
            flatten_requested: false,
            denial: None,
            feeds_down: 0,
            degraded: None,
            cooldown_until: i64::MIN,
            pos_f: PosF::default(),
            pnl_changed: true,
            no_pnl_yet: false,
            deferred: None,
            defer_journal: false,
            stats,
        }
    }

    /// Restores the position loaded from the store (restart); orders in flight are resolved by reconciliation
    /// before trading, and client ids stay unique across runs through their run-id prefix.
    pub fn restore(&mut self, position: Position) {
        self.position = position;
        self.sync_pos_f();
    }

    /// Takes an order the store knows but never saw finish (restart reconciliation), so that the exchange's answer
    /// about it — fed back as an [`Event::Order`] — books its missing fills and moves its state like any update.
    pub fn adopt_unfinished(&mut self, rec: OrderRecord) {
        if self.recent.len() == RECENT_ORDERS {
            self.recent.pop_front();
        }
        self.recent.push_back(rec);
    }

    /// Replaces the exchange filters (live runs read them from exchangeInfo).
    pub fn set_filters(&mut self, filters: SymbolFilters) {
        self.cfg.filters = filters;
    }

    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }
    pub fn position(&self) -> &Position {
        &self.position
    }
    pub fn pending(&self) -> Option<&OrderRecord> {
        self.pending.as_ref()
    }
    pub fn market(&self) -> &MarketState {
        &self.market
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The trading state: the kill switch's REDUCING or HALTED when it tripped, else DEGRADED while a feed is
    /// down or stale (or before both markets have quoted), else ACTIVE.
    pub fn trading_state(&self) -> TradingState {
        match self.risk.state() {
            TradingState::Active if self.degraded != Some(false) => TradingState::Degraded,
            s => s,
        }
    }
    pub fn exit_reason_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        EXIT_NAMES
            .iter()
            .copied()
            .zip(self.stats.exit_reasons.iter().copied())
    }
    /// Decisions per rule (file order), then the built-in exits that fired, as `[exit] name`.
    pub fn rule_counts(&self) -> Vec<(String, u64)> {
        let rules = self
            .strategy
            .rules
            .iter()
            .zip(&self.stats.rule_fires)
            .map(|(r, n)| (r.name.clone(), *n));
        let exits = self
            .exit_reason_counts()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (format!("[exit] {k}"), n));
        rules.chain(exits).collect()
    }

    /// Last perp mid as an exact decimal.
    pub fn perp_mid(&self) -> Option<Decimal> {
        self.market.perp.map(|q| (q.bid + q.ask) / Decimal::TWO)
    }

    /// Realised + unrealised PnL in f64, for the kill switch's fast path only.
    #[inline]
    fn pnl_estimate(&self) -> f64 {
        let p = &self.pos_f;
        if p.qty == 0.0 {
            p.realized
        } else {
            p.realized + (self.market.perp_mid_f - p.entry) * p.qty
        }
    }

    /// Refreshes the f64 copy of the position after it changed.
    fn sync_pos_f(&mut self) {
        self.pnl_changed = true;
        self.pos_f = PosF {
            qty: to_f64(self.position.qty),
            entry: to_f64(self.position.entry_price),
            realized: to_f64(self.position.realized_pnl),
        };
    }

    /// Unrealised PnL of the open position at the perp mid.
    pub fn unrealized_pnl(&self) -> Decimal {
        match self.perp_mid() {
            Some(mid) if !self.position.is_flat() => self.position.unrealized(mid),
            _ => Decimal::ZERO,
        }
    }

    /// Handles one event; appends the resulting actions to `out` (which the caller clears and reuses).
    pub fn on_event(&mut self, event: &Event, out: &mut Vec<Action>) {
        self.handle(event, out);
        self.finish_event(out);
    }

    /// [`Engine::on_event`] for a market event borrowed from wherever it was parsed (no copy into an [`Event`]).
    #[inline]
    pub fn on_market_event(&mut self, m: &MarketEvent, out: &mut Vec<Action>) {
        self.on_market(m, None, out);
        self.finish_event(out);
    }

    /// [`Engine::on_market_event`] for a quote whose [`quote_prices`] the caller computed ahead (the backtest does a
    /// batch at a time); `prices` is ignored for other events.
    #[inline]
    pub fn on_market_event_with(
        &mut self,
        m: &MarketEvent,
        prices: [f64; 2],
        out: &mut Vec<Action>,
    ) {
        self.on_market(m, Some(prices), out);
        self.finish_event(out);
    }

    /// Journals the event's decision now unless the caller defers it (see [`Engine::defer_journal`]).
    #[inline]
    fn finish_event(&mut self, out: &mut Vec<Action>) {
        if self.deferred.is_some() && !self.defer_journal {
            self.flush_journal(out);
        }
    }

    fn handle(&mut self, event: &Event, out: &mut Vec<Action>) {
        match event {
            Event::Market(m) => self.on_market(m, None, out),
            Event::Order(u) => self.on_order_update(u, out),
            // Clock ticks only move time between market events: before the first one there is no market time.
            Event::Clock(ts) if self.stats.events > 0 => {
                if self.advance_clock(*ts) {
                    if self.market.ready() {
                        self.check_feed_health(out);
                    }
                    self.signals.advance(*ts);
                    self.decide(out);
                }
            }
            Event::Clock(_) => {}
            Event::FeedDown(venue, ts) | Event::FeedUp(venue, ts) => {
                self.advance_clock(*ts);
                let bit = 1u8 << (*venue as u8);
                if matches!(event, Event::FeedDown(..)) {
                    self.feeds_down |= bit;
                } else {
                    self.feeds_down &= !bit;
                }
                if self.market.ready() {
                    self.check_feed_health(out);
                }
            }
            Event::Control(c, ts) => {
                self.advance_clock(*ts);
                match c {
                    Control::StopEntries => self.stop_entries = true,
                    Control::Flatten => {
                        self.stop_entries = true;
                        self.flatten_requested = true;
                    }
                    Control::HoldUntil(until) => {
                        self.cooldown_until = self.cooldown_until.max(*until);
                    }
                }
                self.decide(out);
            }
        }
    }

    /// Moves the clock forward; returns false for an event from the past (its time is not used).
    fn advance_clock(&mut self, ts: TsNs) -> bool {
        if ts >= self.now {
            self.now = ts;
            true
        } else {
            false
        }
    }

    #[inline]
    fn on_market(&mut self, m: &MarketEvent, prices: Option<[f64; 2]>, out: &mut Vec<Action>) {
        self.stats.events += 1;
        // Out-of-order timestamps (merged files, clock skew) are clamped so windows stay monotonic.
        let ts = m.ts.max(self.now);
        self.now = ts;
        match &m.kind {
            MarketKind::Quote(q) => {
                let prices = prices.unwrap_or_else(|| quote_prices(q));
                if self.market.update_sample(ts, q, prices) {
                    self.stats.samples += 1;
                    if self.market.take_gap() {
                        // The first sample after a feed gap: no window may span the gap.
                        self.signals.restart(ts);
                    }
                    self.signals.on_sample(self.market.sample());
                } else {
                    self.signals.advance(ts);
                }
            }
            MarketKind::Mark(mk) => {
                self.market.on_mark(mk);
                self.signals.advance(ts);
            }
            MarketKind::Trade(_) | MarketKind::Liquidation(_) => self.signals.advance(ts),
        }
        if !self.market.ready() {
            return;
        }
        self.check_feed_health(out);
        self.check_kill_switch(out);
        self.decide(out);
    }

    /// DEGRADED while a feed is down or either market's last quote is older than `max_feed_staleness`; a change
    /// is logged and journalled (the first check, when both markets have just quoted, only sets the state).
    #[inline]
    fn check_feed_health(&mut self, out: &mut Vec<Action>) {
        let stale_before = self.now.saturating_sub(self.cfg.risk.max_feed_staleness_ns);
        let degraded = self.feeds_down != 0 || self.market.oldest_quote_ts() < stale_before;
        if self.degraded != Some(degraded) {
            self.feed_health_changed(degraded, out);
        }
    }

    #[cold]
    fn feed_health_changed(&mut self, degraded: bool, out: &mut Vec<Action>) {
        let first = self.degraded.is_none();
        self.degraded = Some(degraded);
        if first {
            return;
        }
        let (from, to) = if degraded {
            (TradingState::Active, TradingState::Degraded)
        } else {
            (TradingState::Degraded, TradingState::Active)
        };
        let reason = if degraded {
            self.degraded_reason()
        } else {
            "both feeds connected and fresh".to_string()
        };
        self.journal_state_change(StateChange { from, to, reason }, out);
    }

    /// Why the feeds are unhealthy, for the journal.
    fn degraded_reason(&self) -> String {
        let max = self.cfg.risk.max_feed_staleness_ns;
        let mut why = Vec::new();
        for (venue, ts) in [
            (Venue::Spot, self.market.spot_ts),
            (Venue::Perp, self.market.perp_ts),
        ] {
            if self.feeds_down & (1u8 << (venue as u8)) != 0 {
                why.push(format!("{} feed down", venue.as_str()));
            } else if let Some(t) = ts.filter(|t| self.now.saturating_sub(*t) > max) {
                why.push(format!(
                    "last {} quote {} ms old (max {} ms)",
                    venue.as_str(),
                    (self.now - t) / NS_PER_MS,
                    max / NS_PER_MS
                ));
            }
        }
        why.join(", ")
    }

    #[inline]
    fn check_kill_switch(&mut self, out: &mut Vec<Action>) {
        // Flat with the PnL unchanged since the last full check, same day: nothing can change.
        if self.pos_f.qty == 0.0
            && !self.pnl_changed
            && self.risk.state() == TradingState::Active
            && (self.no_pnl_yet || self.risk.quiet_while_flat(self.now))
        {
            return;
        }
        self.check_kill_switch_full(out);
    }

    fn check_kill_switch_full(&mut self, out: &mut Vec<Action>) {
        self.pnl_changed = false;
        self.no_pnl_yet = false;
        if self.position.is_flat()
            && self.risk.state() == TradingState::Active
            && self.position.realized_pnl.is_zero()
        {
            // Nothing to lose yet: quiet until the position or the PnL changes.
            self.no_pnl_yet = true;
            return;
        }
        // Fast path: in f64, a breach (or any transition) is clearly impossible on this event; the exact check
        // below runs otherwise. f64 errors here are ~1e-12 relative, far inside the margin `quiet` allows.
        if !self
            .risk
            .may_change(self.now, self.pnl_estimate(), self.position.is_flat())
        {
            return;
        }
        let change = self.risk.on_pnl(
            self.now,
            self.position.realized_pnl,
            self.unrealized_pnl(),
            self.position.is_flat(),
        );
        if let Some(c) = change {
            self.journal_state_change(c, out);
        }
    }

    fn journal_state_change(&mut self, c: StateChange, out: &mut Vec<Action>) {
        tracing::warn!(from = c.from.as_str(), to = c.to.as_str(), reason = %c.reason, "trading state changed");
        out.push(Action::Journal(JournalEntry {
            ts: self.now,
            kind: JournalKind::TradingState,
            rule: String::new(),
            action: c.to.as_str().to_string(),
            values: Vec::new(),
            risk: String::new(),
            client_id: None,
            note: c.reason,
        }));
    }

    /// The position's values for rules. `pnl_pct` is [`pnl_pct`] when a rule reads it; otherwise an f64 estimate
    /// that only tells the built-in exits whether a threshold is near (they then use [`pnl_pct`] too).
    fn context(&self) -> Context {
        if self.position.is_flat() {
            return Context::flat();
        }
        let hold_s = self
            .position
            .opened_ts
            .map(|t| (self.now - t) as f64 / NS_PER_S as f64)
            .unwrap_or(f64::NAN);
        let pnl_pct = if self.exact_pnl_in_rules {
            self.pnl_pct_now()
        } else {
            let dir = if self.pos_f.qty > 0.0 { 1.0 } else { -1.0 };
            (self.market.perp_mid_f / self.pos_f.entry - 1.0) * 100.0 * dir
        };
        Context { pnl_pct, hold_s }
    }

    /// [`pnl_pct`] of the open position at the current perp mid.
    fn pnl_pct_now(&self) -> f64 {
        match self.market.perp {
            Some(q) => pnl_pct(
                self.position.qty,
                self.position.entry_price,
                (q.bid + q.ask) / Decimal::TWO,
            ),
            None => f64::NAN,
        }
    }

    /// After each event: exits first when a position is open, else entries in file order; one action at most.
    fn decide(&mut self, out: &mut Vec<Action>) {
        // A denial episode lasts while the same decision is denied for the same reason at every evaluation.
        let episode = self.denial.take();
        if let Some(p) = &self.pending {
            let expired = expired_limit(p, self.now, self.strategy.order.limit_timeout_ns);
            self.check_limit_timeout(expired, out);
            return;
        }
        if !self.market.ready() || self.now < self.cooldown_until {
            return;
        }
        let ctx = self.context();
        if !self.position.is_flat() {
            if let Some((reason, rule_idx)) = self.exit_reason(&ctx) {
                self.place_exit(reason, rule_idx, &ctx, episode, out);
            }
            return;
        }
        if self.stop_entries
            || self.risk.state() != TradingState::Active
            || self.degraded != Some(false)
        {
            return;
        }
        let entry = self.signals.first_entry(self.now, &ctx);
        let side = entry.and_then(|i| self.strategy.rules.get(i)?.action.entry_side());
        if let (Some(i), Some(side)) = (entry, side) {
            self.place_entry(i, side, &ctx, episode, out);
        }
    }

    /// The first exit that applies: max_hold, take-profit, stop-loss, flatten, then exit rules in file order.
    fn exit_reason(&self, ctx: &Context) -> Option<(usize, Option<usize>)> {
        if self.flatten_requested {
            return Some((3, None));
        }
        let exit = &self.strategy.exit;
        if let (Some(max), Some(opened)) = (exit.max_hold_ns, self.position.opened_ts) {
            if self.now - opened >= max {
                return Some((0, None));
            }
        }
        // Take profit at `pnl_pct >= take_profit_pct`, stop loss at `pnl_pct <= -stop_loss_pct`: the comparisons a
        // rule on `pnl_pct` makes, on the same value. `ctx.pnl_pct` is exact when a rule reads it, else an estimate
        // within `NEAR` that rules out most events before the exact value is computed.
        const NEAR: f64 = 1e-6;
        let (tp, sl) = (self.take_profit_f, self.stop_loss_f);
        if ctx.pnl_pct >= tp - NEAR || ctx.pnl_pct <= -sl + NEAR {
            let pnl = if self.exact_pnl_in_rules {
                ctx.pnl_pct
            } else {
                self.pnl_pct_now()
            };
            if pnl >= tp {
                return Some((1, None));
            }
            if pnl <= -sl {
                return Some((2, None));
            }
        }
        (0..self.strategy.rules.len())
            .find(|&i| {
                self.strategy.rules[i].action == RuleAction::Exit
                    && self.signals.eval_rule(&self.strategy, i, self.now, ctx)
            })
            .map(|i| (usize::MAX, Some(i)))
    }

    fn next_client_id(&mut self) -> String {
        self.seq += 1;
        format!("{}{}", self.cfg.client_id_prefix, self.seq)
    }

    fn touch(&self, side: Side) -> Option<Decimal> {
        self.market
            .perp
            .map(|q| if side == Side::Buy { q.ask } else { q.bid })
    }

    fn rule_values(&self, rule: Option<usize>, ctx: &Context) -> Vec<(String, f64)> {
        let mut values = Vec::new();
        if let Some(i) = rule {
            self.signals
                .rule_values(&self.strategy, i, self.now, ctx, &mut values);
        }
        if let Some(s) = self.market_sample_values() {
            values.extend(s);
        }
        values
    }

    /// premium and mids at decision time, for the journal.
    fn market_sample_values(&self) -> Option<[(String, f64); 3]> {
        let (s, p) = (self.market.spot?, self.market.perp?);
        let sm = (to_f64(s.bid) + to_f64(s.ask)) * 0.5;
        let pm = (to_f64(p.bid) + to_f64(p.ask)) * 0.5;
        Some([
            ("spot_mid".to_string(), sm),
            ("perp_mid".to_string(), pm),
            ("premium_bps".to_string(), (sm - pm) / pm * 10_000.0),
        ])
    }

    fn place_entry(
        &mut self,
        rule: usize,
        side: Side,
        ctx: &Context,
        episode: Option<DenialKey>,
        out: &mut Vec<Action>,
    ) {
        let Some(book) = self.market.perp else {
            return;
        };
        let spec = &self.strategy.order;
        let (order_type, price) = match spec.order_type {
            OrderType::Market => (OrderType::Market, None),
            OrderType::Limit => {
                let raw = spec.limit_price(side, book.bid, book.ask);
                (
                    OrderType::Limit,
                    Some(self.cfg.filters.round_price(raw, side)),
                )
            }
        };
        let touch = if side == Side::Buy {
            book.ask
        } else {
            book.bid
        };
        let exec_price = price.unwrap_or(touch);
        let qty = match spec.size {
            OrderSize::Quantity(q) => self.cfg.filters.round_qty(q),
            OrderSize::NotionalUsdt(n) => {
                if exec_price.is_zero() {
                    return;
                }
                self.cfg.filters.round_qty(n / exec_price)
            }
        };
        let request = OrderRequest {
            client_id: String::new(),
            symbol: self.strategy.symbol.clone(),
            side,
            order_type,
            qty,
            price,
            reduce_only: false,
            rule: self.strategy.rules[rule].name.clone(),
            decided_ts: self.now,
        };
        let decision = match self.cfg.filters.check(qty, exec_price, order_type) {
            Err(e) => RiskDecision::Denied(DenyReason::Filter(e)),
            Ok(()) => {
                let rctx = self.risk_context(exec_price);
                self.risk.check(&request, &rctx)
            }
        };
        let action = self.strategy.rules[rule].action.as_str();
        match decision {
            RiskDecision::Approved => {
                self.stats.rule_fires[rule] += 1;
                self.submit(request, action, ValuesOf::Rule(rule), *ctx, out);
            }
            RiskDecision::Denied(reason) => {
                let denial = Denial {
                    key: (rule, reason.code()),
                    reason,
                    rule: request.rule,
                    action,
                    values_of: ValuesOf::Rule(rule),
                };
                self.deny(denial, episode, ctx, out);
            }
        }
    }

    fn risk_context(&self, exec_price: Decimal) -> RiskContext {
        RiskContext {
            now: self.now,
            perp_mid: self.perp_mid(),
            exec_price,
            position_qty: self.position.qty,
            spot_ts: self.market.spot_ts,
            perp_ts: self.market.perp_ts,
        }
    }

    /// A reduce-only market order for the whole position. Risk approves every exit (no limit may hold a position
    /// open); a denial, should a check ever apply to exits, goes through the same episode rule as entries.
    fn place_exit(
        &mut self,
        reason: usize,
        rule: Option<usize>,
        ctx: &Context,
        episode: Option<DenialKey>,
        out: &mut Vec<Action>,
    ) {
        let side = if self.position.qty.is_sign_positive() {
            Side::Sell
        } else {
            Side::Buy
        };
        let (name, values_of, who) = match rule {
            Some(i) => (self.strategy.rules[i].name.clone(), ValuesOf::Rule(i), i),
            None => (
                EXIT_NAMES[reason].to_string(),
                ValuesOf::Exit,
                EXIT_RULE - reason,
            ),
        };
        let request = OrderRequest {
            client_id: String::new(),
            symbol: self.strategy.symbol.clone(),
            side,
            order_type: OrderType::Market,
            qty: self.position.qty.abs(),
            price: None,
            reduce_only: true,
            rule: name,
            decided_ts: self.now,
        };
        let rctx = self.risk_context(self.touch(side).unwrap_or_default());
        // The journal shows the exact `pnl_pct` the exit was decided on.
        let ctx = Context {
            pnl_pct: self.pnl_pct_now(),
            ..*ctx
        };
        match self.risk.check(&request, &rctx) {
            RiskDecision::Approved => {
                match rule {
                    Some(i) => self.stats.rule_fires[i] += 1,
                    None => self.stats.exit_reasons[reason] += 1,
                }
                self.submit(request, "exit", values_of, ctx, out);
            }
            RiskDecision::Denied(reason) => {
                let denial = Denial {
                    key: (who, reason.code()),
                    reason,
                    rule: request.rule,
                    action: "exit",
                    values_of,
                };
                self.deny(denial, episode, &ctx, out);
            }
        }
    }

    /// Counts, logs and journals a denial once per episode: not again while the same decision keeps being denied
    /// for the same reason at consecutive evaluations (`episode` is the previous evaluation's denial).
    fn deny(
        &mut self,
        d: Denial,
        episode: Option<DenialKey>,
        ctx: &Context,
        out: &mut Vec<Action>,
    ) {
        self.denial = Some(d.key);
        if episode == Some(d.key) {
            return;
        }
        self.stats.denials += 1;
        tracing::info!(rule = %d.rule, action = d.action, reason = %d.reason, "decision denied by risk");
        let values = self.values_of(d.values_of, ctx);
        out.push(Action::Journal(JournalEntry {
            ts: self.now,
            kind: JournalKind::RiskDenied,
            rule: d.rule,
            action: d.action.to_string(),
            values,
            risk: d.reason.code().to_string(),
            client_id: None,
            note: d.reason.to_string(),
        }));
    }

    fn submit(
        &mut self,
        mut request: OrderRequest,
        action: &'static str,
        values_of: ValuesOf,
        ctx: Context,
        out: &mut Vec<Action>,
    ) {
        request.client_id = self.next_client_id();
        self.risk.on_order_sent(self.now);
        self.stats.orders += 1;
        let record = OrderRecord::new(request);
        self.pending = Some(record.clone());
        // The order first (its intent is stored, then it is sent); its log line and journal entry, with the values
        // that fired it, follow from `flush_journal` — right away, or after the order is out (live runs).
        self.deferred = Some(Deferred {
            values_of,
            ctx,
            action,
            rule: record.request.rule.clone(),
            client_id: record.request.client_id.clone(),
            side: record.request.side,
            qty: record.request.qty,
        });
        out.push(Action::Place(record));
    }

    /// Journals (and logs) the last decision. `on_event` does this itself unless [`Engine::defer_journal`] was
    /// set, in which case the caller calls this once the order is on its way (before the next event).
    pub fn flush_journal(&mut self, out: &mut Vec<Action>) {
        let Some(d) = self.deferred.take() else {
            return;
        };
        let values = self.values_of(d.values_of, &d.ctx);
        tracing::info!(
            rule = %d.rule,
            action = d.action,
            side = d.side.as_str(),
            qty = %d.qty,
            client_id = %d.client_id,
            values = %fmt_values(&values),
            "decision"
        );
        out.push(Action::Journal(JournalEntry {
            ts: self.now,
            kind: JournalKind::Decision,
            rule: d.rule,
            action: d.action.to_string(),
            values,
            risk: "approved".into(),
            client_id: Some(d.client_id),
            note: String::new(),
        }));
    }

    /// Leave decisions' journal entries to [`Engine::flush_journal`] (live runs: the order goes out first).
    pub fn defer_journal(&mut self, defer: bool) {
        self.defer_journal = defer;
    }

    fn values_of(&self, of: ValuesOf, ctx: &Context) -> Vec<(String, f64)> {
        match of {
            ValuesOf::Rule(i) => self.rule_values(Some(i), ctx),
            ValuesOf::Exit => {
                let mut v = self.rule_values(None, ctx);
                v.push(("pnl_pct".to_string(), ctx.pnl_pct));
                v.push(("hold_s".to_string(), ctx.hold_s));
                v
            }
        }
    }

    fn check_limit_timeout(&mut self, expired: Option<(String, String)>, out: &mut Vec<Action>) {
        if let Some((client_id, symbol)) = expired {
            if let Some(p) = &mut self.pending {
                if p.note.as_deref() != Some("cancel requested") {
                    p.note = Some("cancel requested".into());
                    out.push(Action::Cancel { client_id, symbol });
                }
            }
        }
    }

    fn on_order_update(&mut self, u: &OrderUpdate, out: &mut Vec<Action>) {
        self.advance_clock(u.ts);
        let (mut rec, was_pending) = match self.pending.take() {
            Some(p) if p.request.client_id == u.client_id => (p, true),
            other => {
                self.pending = other;
                match self
                    .recent
                    .iter()
                    .position(|r| r.request.client_id == u.client_id)
                {
                    Some(i) => match self.recent.remove(i) {
                        Some(r) => (r, false),
                        None => return,
                    },
                    None => {
                        tracing::warn!(client_id = %u.client_id, state = u.state.as_str(), "update for an order premia does not track; ignored");
                        out.push(Action::Journal(JournalEntry {
                            ts: self.now,
                            kind: JournalKind::Note,
                            rule: String::new(),
                            action: "untracked_order_update".into(),
                            values: Vec::new(),
                            risk: String::new(),
                            client_id: Some(u.client_id.clone()),
                            note: format!("state {} cum_qty {}", u.state.as_str(), u.cum_qty),
                        }));
                        return;
                    }
                }
            }
        };
        if let Some(id) = u.exchange_id {
            rec.exchange_id = Some(id);
        }
        rec.updated_ts = u.ts;
        // Fills are counted by cumulative quantity, so one reported by the REST result and again by the user-data
        // stream (in either order) is booked once.
        let cum = if u.cum_qty > Decimal::ZERO {
            u.cum_qty
        } else {
            rec.filled_qty + u.fill.as_ref().map(|f| f.qty).unwrap_or_default()
        };
        let delta = cum - rec.filled_qty;
        if delta > Decimal::ZERO {
            let fill = self.fill_from_update(&rec, u, delta, cum);
            let prev_notional = rec.avg_price.unwrap_or_default() * rec.filled_qty;
            rec.filled_qty = cum;
            rec.avg_price = Some((prev_notional + fill.price * fill.qty) / cum);
            let was_flat = self.position.is_flat();
            self.book_fill(fill, out);
            if was_flat && !self.position.is_flat() {
                self.position.opened_ts = Some(rec.request.decided_ts);
                if let Some(Action::Filled { position, .. }) = out.last_mut() {
                    position.opened_ts = self.position.opened_ts;
                }
            }
        }
        // States only move forward: a late NEW after PARTIALLY_FILLED or FILLED is ignored.
        if !rec.state.is_terminal() && state_rank(u.state) >= state_rank(rec.state) {
            rec.state = u.state;
        }
        if let Some(r) = &u.reason {
            rec.note = Some(r.clone());
        }
        if u.state == OrderState::Rejected && was_pending {
            self.stats.rejects += 1;
            self.cooldown_until = self.now.saturating_add(REJECT_COOLDOWN_NS);
            tracing::warn!(client_id = %rec.request.client_id, reason = u.reason.as_deref().unwrap_or(""), "order rejected");
        }
        out.push(Action::OrderChanged(rec.clone()));
        if rec.state.is_terminal() {
            if self.recent.len() == RECENT_ORDERS {
                self.recent.pop_front();
            }
            self.recent.push_back(rec);
        } else {
            self.pending = Some(rec);
        }
        self.check_kill_switch(out);
    }

    /// The execution an update reports: its own trade when it carries one for exactly the new quantity, else one
    /// derived from the change in cumulative quantity and average price (fee estimated at the configured rate).
    fn fill_from_update(
        &self,
        rec: &OrderRecord,
        u: &OrderUpdate,
        delta: Decimal,
        cum: Decimal,
    ) -> Fill {
        if let Some(f) = u.fill.as_ref().filter(|f| f.qty == delta) {
            let mut f = f.clone();
            if f.rule.is_empty() {
                f.rule = rec.request.rule.clone();
            }
            return f;
        }
        let price = match u.avg_price.filter(|p| !p.is_zero()) {
            Some(avg) => (avg * cum - rec.avg_price.unwrap_or_default() * rec.filled_qty) / delta,
            None => u
                .fill
                .as_ref()
                .map(|f| f.price)
                .or_else(|| self.touch(rec.request.side))
                .unwrap_or_default(),
        };
        let rate = if rec.request.order_type == OrderType::Limit {
            self.cfg.maker_fee_rate
        } else {
            self.cfg.taker_fee_rate
        };
        Fill {
            ts: u.ts,
            client_id: rec.request.client_id.clone(),
            symbol: rec.request.symbol.clone(),
            side: rec.request.side,
            qty: delta,
            price,
            fee: price * delta * rate,
            trade_id: None,
            rule: rec.request.rule.clone(),
        }
    }

    fn book_fill(&mut self, fill: Fill, out: &mut Vec<Action>) {
        self.stats.fills += 1;
        self.position
            .apply_fill(fill.side, fill.qty, fill.price, fill.fee);
        self.sync_pos_f();
        tracing::info!(
            client_id = %fill.client_id,
            side = fill.side.as_str(),
            qty = %fill.qty,
            price = %fill.price,
            fee = %fill.fee,
            position = %self.position.qty,
            realized_pnl = %self.position.realized_pnl.round_dp(4),
            "fill"
        );
        out.push(Action::Filled {
            fill,
            position: self.position.clone(),
        });
    }

    /// Replaces the position with the exchange's view (restart reconciliation: the exchange wins).
    pub fn reconcile_position(
        &mut self,
        qty: Decimal,
        entry_price: Decimal,
        now: TsNs,
        out: &mut Vec<Action>,
    ) {
        if self.position.qty == qty && (qty.is_zero() || self.position.entry_price == entry_price) {
            return;
        }
        let note = format!(
            "position {} @ {} in the store, {} @ {} on the exchange: exchange wins",
            self.position.qty, self.position.entry_price, qty, entry_price
        );
        tracing::warn!("{note}");
        self.position.qty = qty;
        self.position.entry_price = if qty.is_zero() {
            Decimal::ZERO
        } else {
            entry_price
        };
        if qty.is_zero() {
            self.position.opened_ts = None;
        } else if self.position.opened_ts.is_none() {
            self.position.opened_ts = Some(now);
        }
        out.push(Action::Journal(JournalEntry {
            ts: now,
            kind: JournalKind::Reconcile,
            rule: String::new(),
            action: "position".into(),
            values: Vec::new(),
            risk: String::new(),
            client_id: None,
            note,
        }));
        self.sync_pos_f();
        out.push(Action::PositionChanged(self.position.clone()));
    }
}

/// Unrealised PnL of a position of signed `qty` entered at `entry`, at the perp mid `mid`, in percent of the entry
/// price and in the position's favour: the one definition behind `pnl_pct` in rules and the built-in
/// `take_profit_pct` / `stop_loss_pct`. Computed exactly in decimals and rounded once to f64, so an exact tie
/// (`mid = entry × 1.0005` against `0.05`) compares equal. NaN when flat or without an entry price.
pub fn pnl_pct(qty: Decimal, entry: Decimal, mid: Decimal) -> f64 {
    if qty.is_zero() || entry.is_zero() {
        return f64::NAN;
    }
    let pct = (mid - entry)
        .checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|x| x.checked_div(entry));
    match pct {
        Some(p) if qty.is_sign_negative() => to_f64(-p),
        Some(p) => to_f64(p),
        None => f64::NAN,
    }
}

/// Order of states in an order's life, for ignoring reports that arrive out of order.
fn state_rank(s: OrderState) -> u8 {
    match s {
        OrderState::Intent => 0,
        OrderState::Sent | OrderState::Unknown => 1,
        OrderState::New => 2,
        OrderState::PartiallyFilled => 3,
        OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired => 4,
    }
}

/// For a resting limit order older than the timeout: its ids, so the engine can cancel it.
fn expired_limit(order: &OrderRecord, now: TsNs, timeout: Option<i64>) -> Option<(String, String)> {
    let t = timeout?;
    (order.request.order_type == OrderType::Limit
        && matches!(order.state, OrderState::New | OrderState::PartiallyFilled)
        && now - order.request.decided_ts >= t)
        .then(|| {
            (
                order.request.client_id.clone(),
                order.request.symbol.clone(),
            )
        })
}

/// `name=value` pairs for log lines.
pub fn fmt_values(values: &[(String, f64)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in values.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("{k}={v:.4}"));
    }
    s
}

#[cfg(test)]
mod tests;
