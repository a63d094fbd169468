//! Summaries of a state dir — positions, orders, fills, trades, PnL, metrics, journal counts — as text and as JSON.
//!
//! Shared by `premia report` and the backtest summary, so a backtest reads exactly like a live run.
//!
//! What each money figure means, in every view: **realised** PnL is the gross PnL of every quantity closed so far
//! minus every fee paid so far (an open position's entry fee included) — what the account has booked, as the
//! positions keep it and the run summaries print it. **Metrics** (and the trade totals) cover closed trades only:
//! their fees and net PnL leave out the open trade, whose share is shown next to them.

pub mod csv;
pub mod decisions;
pub mod metrics;
mod render;
pub mod text;
pub mod trades;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::model::{Decimal, Fill, JournalEntry, JournalKind, OrderRecord, Position};
use crate::store::{RunKind, RunMeta, Store, StoreError};

pub use metrics::{Metrics, MetricsInput};
pub use trades::{RuleStats, Trade, TradeStats};

/// Everything `premia report` shows about one state dir.
#[derive(Debug, Clone)]
pub struct Report {
    pub dir: PathBuf,
    /// The folder of runs `dir` was chosen from, when a folder of runs was named.
    pub chosen_from: Option<PathBuf>,
    pub meta: Option<RunMeta>,
    /// Records of earlier runs in the same state dir (binance mode reuses its state dir), the oldest first.
    pub previous_runs: Vec<RunMeta>,
    pub meta_values: BTreeMap<String, String>,
    pub positions: Vec<Position>,
    pub orders: Vec<OrderRecord>,
    pub fills: Vec<Fill>,
    /// Realised PnL net of every fee paid, as kept in the positions (see the module docs).
    pub realized_pnl: Decimal,
    /// Every fee paid, as kept in the positions.
    pub fees: Decimal,
    pub journal_entries: usize,
    /// Decisions per rule, most frequent first (ties by name).
    pub decisions: Vec<(String, usize)>,
    /// Risk denials per reason, most frequent first (ties by name).
    pub denials: Vec<(String, usize)>,
    pub stats: TradeStats,
    pub metrics: Metrics,
}

/// How much of the trade list the text report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TradeRows {
    /// Every trade.
    #[default]
    All,
    /// The last N closed trades (open trades are always shown).
    Last(usize),
}

impl std::str::FromStr for TradeRows {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(TradeRows::All);
        }
        s.parse::<usize>()
            .map(TradeRows::Last)
            .map_err(|_| format!("`{s}` is neither a number of trades nor `all`"))
    }
}

fn bump(counts: &mut Vec<(String, usize)>, key: &str) {
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key.to_string(), 1)),
    }
}

/// Most frequent first, ties by name: the same order on every run.
fn sort_counts(counts: &mut [(String, usize)]) {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// Counts by name, in a fixed order.
type Counts = Vec<(String, usize)>;

/// Decisions per rule and risk denials per reason.
fn journal_counts(journal: &[JournalEntry]) -> (Counts, Counts) {
    let mut decisions = Vec::new();
    let mut denials = Vec::new();
    for e in journal {
        match e.kind {
            JournalKind::Decision => bump(&mut decisions, &e.rule),
            JournalKind::RiskDenied => {
                let reason = if e.risk.is_empty() {
                    "unspecified"
                } else {
                    e.risk.as_str()
                };
                bump(&mut denials, reason);
            }
            _ => {}
        }
    }
    sort_counts(&mut decisions);
    sort_counts(&mut denials);
    (decisions, denials)
}

/// The market time a run covered: a backtest's data span; for a live run (whose events are stamped on arrival) its
/// wall-clock start and end.
fn run_span(m: &RunMeta) -> Option<(i64, i64)> {
    m.market_first_ts.zip(m.market_last_ts).or(match m.kind {
        RunKind::Live if m.started_ts > 0 => m.ended_ts.map(|end| (m.started_ts, end)),
        _ => None,
    })
}

impl Report {
    /// Reads everything from the store.
    pub fn load(store: &Store) -> Result<Report, StoreError> {
        let fills = store.fills()?;
        let positions = store.positions()?;
        let journal = store.journal()?;
        let (decisions, denials) = journal_counts(&journal);
        let sum = |f: fn(&Position) -> Decimal| {
            positions
                .iter()
                .fold(Decimal::ZERO, |acc, p| acc.saturating_add(f(p)))
        };
        let (realized_pnl, fees) = (sum(|p| p.realized_pnl), sum(|p| p.fees));
        let meta = store.meta()?;
        let mut stats = TradeStats::from_fills(&fills);
        stats.attach_decisions(&journal);
        let metrics = Metrics::compute(MetricsInput {
            trades: &stats.trades,
            open: &stats.open,
            span: meta.as_ref().and_then(run_span),
            starting_balance: meta.as_ref().and_then(|m| m.starting_balance),
        });
        Ok(Report {
            dir: store.dir().to_path_buf(),
            chosen_from: None,
            meta,
            previous_runs: store.previous_runs()?,
            meta_values: store.meta_values()?,
            positions,
            orders: store.orders()?,
            fills,
            realized_pnl,
            fees,
            journal_entries: journal.len(),
            decisions,
            denials,
            stats,
            metrics,
        })
    }

    /// A human summary for a terminal, with every trade.
    pub fn render_text(&self) -> String {
        self.render_text_with(TradeRows::All)
    }

    /// One JSON object for scripts. Decimals are JSON numbers (via f64), sides "BUY"/"SELL", states "FILLED" etc.
    /// `realized_pnl` and `fees` are the account's (see the module docs); `metrics` covers closed trades.
    pub fn to_json(&self) -> Value {
        let positions: Vec<Value> = self
            .positions
            .iter()
            .map(|p| {
                json!({
                    "symbol": p.symbol,
                    "qty": num(p.qty),
                    "entry_price": num(p.entry_price),
                    "realized_pnl": num(p.realized_pnl),
                    "fees": num(p.fees),
                    "opened_ts_ns": p.opened_ts,
                })
            })
            .collect();
        let open_orders = self
            .orders
            .iter()
            .filter(|o| !o.state.is_terminal())
            .count();
        let mut obj = Map::new();
        obj.insert("state_dir".into(), json!(self.dir.display().to_string()));
        obj.insert(
            "chosen_from".into(),
            json!(self.chosen_from.as_ref().map(|p| p.display().to_string())),
        );
        obj.insert("meta".into(), self.meta_json());
        obj.insert(
            "previous_runs".into(),
            self.previous_runs
                .iter()
                .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                .collect(),
        );
        obj.insert("positions".into(), Value::Array(positions));
        obj.insert(
            "orders".into(),
            self.orders.iter().map(order_json).collect(),
        );
        obj.insert("open_orders".into(), json!(open_orders));
        obj.insert("fills".into(), self.fills.iter().map(fill_json).collect());
        obj.insert("realized_pnl".into(), num(self.realized_pnl));
        obj.insert("fees".into(), num(self.fees));
        obj.insert(
            "trades".into(),
            self.stats.trades.iter().map(trade_json).collect(),
        );
        obj.insert(
            "open_trades".into(),
            self.stats.open.iter().map(trade_json).collect(),
        );
        obj.insert("metrics".into(), self.metrics.to_json());
        obj.insert("journal_entries".into(), json!(self.journal_entries));
        obj.insert("decisions".into(), counts_json(&self.decisions));
        obj.insert("risk_denials".into(), counts_json(&self.denials));
        Value::Object(obj)
    }

    fn meta_json(&self) -> Value {
        let mut m = match &self.meta {
            Some(meta) => match serde_json::to_value(meta) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
            None => Map::new(),
        };
        if let Some(b) = self.meta.as_ref().and_then(|m| m.starting_balance) {
            m.insert("starting_balance".into(), num(b));
        }
        for (k, v) in &self.meta_values {
            m.entry(k.clone()).or_insert_with(|| json!(v));
        }
        Value::Object(m)
    }
}

impl TradeStats {
    /// Fees of every trade, the open ones included: what the account has paid.
    pub fn total_fees(&self) -> Decimal {
        self.open
            .iter()
            .fold(self.fees, |acc, t| acc.saturating_add(t.fees))
    }
}

/// A decimal as a JSON number (through f64; `null` if it cannot be represented).
pub fn num(d: Decimal) -> Value {
    serde_json::Number::from_f64(crate::model::to_f64(d)).map_or(Value::Null, Value::Number)
}

pub(crate) fn opt_num(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, num)
}

fn counts_json(counts: &[(String, usize)]) -> Value {
    Value::Object(counts.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
}

/// One order for scripts.
pub fn order_json(o: &OrderRecord) -> Value {
    let r = &o.request;
    json!({
        "client_id": r.client_id,
        "symbol": r.symbol,
        "side": r.side.as_str(),
        "type": r.order_type.as_str(),
        "qty": num(r.qty),
        "price": opt_num(r.price),
        "reduce_only": r.reduce_only,
        "state": o.state.as_str(),
        "open": !o.state.is_terminal(),
        "filled_qty": num(o.filled_qty),
        "avg_price": opt_num(o.avg_price),
        "exchange_id": o.exchange_id,
        "rule": r.rule,
        "decided_ts_ns": r.decided_ts,
        "updated_ts_ns": o.updated_ts,
        "note": o.note,
    })
}

/// One fill for scripts.
pub fn fill_json(f: &Fill) -> Value {
    json!({
        "ts_ns": f.ts,
        "symbol": f.symbol,
        "side": f.side.as_str(),
        "qty": num(f.qty),
        "price": num(f.price),
        "fee": num(f.fee),
        "rule": f.rule,
        "client_id": f.client_id,
        "trade_id": f.trade_id,
    })
}

/// One trade for scripts.
pub fn trade_json(t: &Trade) -> Value {
    json!({
        "symbol": t.symbol,
        "side": t.side.as_str(),
        "qty": num(t.qty),
        "entry_ts_ns": t.entry_ts,
        "exit_ts_ns": t.exit_ts,
        "entry_price": num(t.avg_entry),
        "exit_price": opt_num(t.avg_exit),
        "avg_entry": num(t.avg_entry),
        "avg_exit": opt_num(t.avg_exit),
        "exit_qty": num(t.exit_qty),
        "gross_pnl": num(t.gross_pnl),
        "fees": num(t.fees),
        "net_pnl": num(t.net_pnl),
        "entry_rule": t.entry_rule,
        "exit_reason": t.exit_rule,
        "exit_rule": t.exit_rule,
        "entry_values": decisions::values_json(&t.entry_values),
        "exit_values": decisions::values_json(&t.exit_values),
        "entry_premium_bps": t.entry_premium_bps(),
        "exit_premium_bps": t.exit_premium_bps(),
        "entry_client_id": t.entry_client_id,
        "exit_client_id": t.exit_client_id,
        "fills": t.fills,
    })
}
