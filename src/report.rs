//! Summaries of a state dir — positions, orders, fills, trades, PnL, journal counts — as text and as JSON.
//!
//! Shared by `premia report` and the backtest summary, so a backtest reads exactly like a live run.

pub mod metrics;
pub mod text;
pub mod trades;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::model::{Decimal, Fill, JournalKind, OrderRecord, Position};
use crate::store::{RunMeta, Store, StoreError};

pub use trades::{RuleStats, Trade, TradeStats};

use text::{fixed, format_duration, format_ts, plain, signed, Align, Table};

/// Most trades the text report lists (the JSON has all of them).
const MAX_TRADE_ROWS: usize = 50;

/// Everything `premia report` shows about one state dir.
#[derive(Debug, Clone)]
pub struct Report {
    pub dir: PathBuf,
    pub meta: Option<RunMeta>,
    pub meta_values: BTreeMap<String, String>,
    pub positions: Vec<Position>,
    pub orders: Vec<OrderRecord>,
    pub fills: Vec<Fill>,
    /// Realised PnL net of fees as kept in the positions.
    pub realized_pnl: Decimal,
    pub journal_entries: usize,
    /// Decisions per rule, in order of first appearance.
    pub decisions: Vec<(String, usize)>,
    /// Risk denials per reason, in order of first appearance.
    pub denials: Vec<(String, usize)>,
    pub stats: TradeStats,
}

fn bump(counts: &mut Vec<(String, usize)>, key: &str) {
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key.to_string(), 1)),
    }
}

impl Report {
    /// Reads everything from the store.
    pub fn load(store: &Store) -> Result<Report, StoreError> {
        let fills = store.fills()?;
        let positions = store.positions()?;
        let journal = store.journal()?;
        let mut decisions = Vec::new();
        let mut denials = Vec::new();
        for e in &journal {
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
        let realized_pnl = positions
            .iter()
            .fold(Decimal::ZERO, |acc, p| acc.saturating_add(p.realized_pnl));
        Ok(Report {
            dir: store.dir().to_path_buf(),
            meta: store.meta()?,
            meta_values: store.meta_values()?,
            stats: TradeStats::from_fills(&fills),
            positions,
            orders: store.orders()?,
            fills,
            realized_pnl,
            journal_entries: journal.len(),
            decisions,
            denials,
        })
    }

    /// A human summary for a terminal.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        self.render_run(&mut out);
        self.render_positions(&mut out);
        render_trades(&self.stats, &mut out);
        out.push('\n');
        out.push_str(&self.stats.render_totals());
        self.render_activity(&mut out);
        out
    }

    fn render_run(&self, out: &mut String) {
        out.push_str(&format!("State dir  {}\n", self.dir.display()));
        let Some(m) = &self.meta else {
            out.push_str("Run        (no run information recorded)\n");
            return;
        };
        let mut run = m.kind.as_str().to_string();
        if !m.strategy_name.is_empty() {
            run.push_str(&format!(" · strategy {}", m.strategy_name));
        }
        if !m.strategy_file.is_empty() {
            run.push_str(&format!(" ({})", m.strategy_file));
        }
        if !m.symbol.is_empty() {
            run.push_str(&format!(" · {}", m.symbol));
        }
        out.push_str(&format!("Run        {run}\n"));
        let mut when = format!("{} UTC", format_ts(m.started_ts));
        if let Some(end) = m.ended_ts {
            when.push_str(&format!(
                " → {} UTC ({})",
                format_ts(end),
                format_duration(end.saturating_sub(m.started_ts))
            ));
        }
        out.push_str(&format!("Time       {when}\n"));
        if let Some(c) = &m.config_path {
            out.push_str(&format!("Config     {c}\n"));
        }
        if let Some(x) = &m.exchange {
            out.push_str(&format!("Exchange   {x}\n"));
        }
        if !m.data_inputs.is_empty() {
            out.push_str(&format!("Data       {}\n", m.data_inputs.join(", ")));
        }
        for (k, v) in &self.meta_values {
            out.push_str(&format!("{k:<10} {v}\n"));
        }
    }

    fn render_positions(&self, out: &mut String) {
        out.push_str("\nPositions\n");
        if self.positions.is_empty() {
            out.push_str("  none\n");
            return;
        }
        let mut t = Table::new(&[
            ("SYMBOL", Align::Left),
            ("QTY", Align::Right),
            ("ENTRY", Align::Right),
            ("REALISED", Align::Right),
            ("FEES", Align::Right),
        ]);
        for p in &self.positions {
            let qty = if p.qty > Decimal::ZERO {
                format!("+{}", plain(p.qty))
            } else {
                plain(p.qty)
            };
            let entry = if p.is_flat() {
                "flat".to_string()
            } else {
                plain(p.entry_price)
            };
            t.row(vec![
                p.symbol.clone(),
                qty,
                entry,
                signed(p.realized_pnl, 4),
                fixed(p.fees, 4),
            ]);
        }
        t.render("  ", out);
    }

    fn render_activity(&self, out: &mut String) {
        let open = self
            .orders
            .iter()
            .filter(|o| !o.state.is_terminal())
            .count();
        let mut by_state: Vec<(String, usize)> = Vec::new();
        for o in &self.orders {
            bump(&mut by_state, o.state.as_str());
        }
        let states: Vec<String> = by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
        out.push_str(&format!("\nOrders     {}", self.orders.len()));
        if !states.is_empty() {
            out.push_str(&format!(" ({})", states.join(", ")));
        }
        out.push_str(&format!(", open {open}\n"));
        for o in self.orders.iter().filter(|o| !o.state.is_terminal()) {
            out.push_str(&format!(
                "  open: {} {} {} {} [{}]\n",
                o.request.client_id,
                o.request.side.as_str(),
                plain(o.request.qty),
                o.request.symbol,
                o.state.as_str()
            ));
        }
        out.push_str(&format!("Fills      {}\n", self.fills.len()));
        out.push_str(&format!("Journal    {} entries\n", self.journal_entries));
        render_counts("Decisions by rule", &self.decisions, out);
        render_counts("Risk denials", &self.denials, out);
    }

    /// One JSON object for scripts. Decimals are JSON numbers (via f64), sides "BUY"/"SELL", states "FILLED" etc.
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
        let orders: Vec<Value> = self.orders.iter().map(order_json).collect();
        let fills: Vec<Value> = self.fills.iter().map(fill_json).collect();
        let mut obj = Map::new();
        obj.insert("state_dir".into(), json!(self.dir.display().to_string()));
        obj.insert("meta".into(), self.meta_json());
        obj.insert("positions".into(), Value::Array(positions));
        obj.insert("orders".into(), Value::Array(orders));
        obj.insert(
            "open_orders".into(),
            json!(self
                .orders
                .iter()
                .filter(|o| !o.state.is_terminal())
                .count()),
        );
        obj.insert("fills".into(), Value::Array(fills));
        obj.insert("realized_pnl".into(), num(self.realized_pnl));
        if let Value::Object(stats) = self.stats.to_json() {
            obj.extend(stats);
        }
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
        for (k, v) in &self.meta_values {
            m.entry(k.clone()).or_insert_with(|| json!(v));
        }
        Value::Object(m)
    }
}

impl TradeStats {
    /// The totals as a few lines of text (also used by the backtest summary).
    pub fn render_totals(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Trades     {} closed · {} won · win rate {:.1}%\n",
            self.count(),
            self.wins,
            self.win_rate * 100.0
        ));
        out.push_str(&format!(
            "PnL        gross {} · fees {} · net {} USDT\n",
            signed(self.gross_pnl, 4),
            fixed(self.fees, 4),
            signed(self.realized_pnl, 4)
        ));
        out.push_str(&format!(
            "Drawdown   {} USDT (max, realised)\n",
            fixed(self.max_drawdown, 4)
        ));
        if !self.by_rule.is_empty() {
            out.push_str("\nTrades by entry rule\n");
            let mut t = Table::new(&[
                ("RULE", Align::Left),
                ("TRADES", Align::Right),
                ("WON", Align::Right),
                ("NET PNL", Align::Right),
            ]);
            for r in &self.by_rule {
                t.row(vec![
                    r.rule.clone(),
                    r.trades.to_string(),
                    r.wins.to_string(),
                    signed(r.net_pnl, 4),
                ]);
            }
            t.render("  ", &mut out);
        }
        out
    }

    /// `trades` (array), `trade_count`, `wins`, `win_rate` (0..1), `gross_pnl`, `fees`, `net_pnl`, `max_drawdown`,
    /// `open_trades` (array).
    pub fn to_json(&self) -> Value {
        json!({
            "trades": self.trades.iter().map(trade_json).collect::<Vec<_>>(),
            "trade_count": self.count(),
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": serde_json::Number::from_f64(self.win_rate).map_or(Value::Null, Value::Number),
            "gross_pnl": num(self.gross_pnl),
            "fees": num(self.fees),
            "net_pnl": num(self.realized_pnl),
            "max_drawdown": num(self.max_drawdown),
            "open_trades": self.open.iter().map(trade_json).collect::<Vec<_>>(),
            "by_rule": self.by_rule.iter().map(|r| json!({
                "rule": r.rule, "trades": r.trades, "wins": r.wins, "net_pnl": num(r.net_pnl),
            })).collect::<Vec<_>>(),
        })
    }
}

fn render_trades(stats: &TradeStats, out: &mut String) {
    out.push_str(&format!("\nTrades ({})\n", stats.count()));
    if stats.trades.is_empty() && stats.open.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let mut t = Table::new(&[
        ("#", Align::Right),
        ("SYMBOL", Align::Left),
        ("SIDE", Align::Left),
        ("QTY", Align::Right),
        ("ENTRY (UTC)", Align::Left),
        ("HOLD", Align::Right),
        ("ENTRY PX", Align::Right),
        ("EXIT PX", Align::Right),
        ("NET PNL", Align::Right),
        ("RULE", Align::Left),
        ("EXIT", Align::Left),
    ]);
    let skip = stats.trades.len().saturating_sub(MAX_TRADE_ROWS);
    for (i, tr) in stats.trades.iter().enumerate().skip(skip) {
        t.row(trade_row((i + 1).to_string(), tr));
    }
    for tr in &stats.open {
        t.row(trade_row("open".to_string(), tr));
    }
    if skip > 0 {
        out.push_str(&format!(
            "  (the first {skip} trades are not shown; --json lists all)\n"
        ));
    }
    t.render("  ", out);
}

fn trade_row(label: String, t: &Trade) -> Vec<String> {
    let side = match t.side {
        crate::model::Side::Buy => "LONG",
        crate::model::Side::Sell => "SHORT",
    };
    vec![
        label,
        t.symbol.clone(),
        side.to_string(),
        plain(t.qty),
        format_ts(t.entry_ts),
        t.exit_ts
            .map(|x| format_duration(x.saturating_sub(t.entry_ts)))
            .unwrap_or_else(|| "-".into()),
        plain(t.avg_entry.round_dp(8)),
        t.avg_exit
            .map(|p| plain(p.round_dp(8)))
            .unwrap_or_else(|| "-".into()),
        signed(t.net_pnl, 4),
        t.entry_rule.clone(),
        t.exit_rule.clone().unwrap_or_else(|| "-".into()),
    ]
}

fn render_counts(title: &str, counts: &[(String, usize)], out: &mut String) {
    if counts.is_empty() {
        return;
    }
    out.push_str(&format!("\n{title}\n"));
    let mut t = Table::new(&[("", Align::Left), ("", Align::Right)]);
    for (k, n) in counts {
        t.row(vec![k.clone(), n.to_string()]);
    }
    // Skip the empty header line.
    let mut body = String::new();
    t.render("  ", &mut body);
    for line in body.lines().skip(1) {
        out.push_str(line);
        out.push('\n');
    }
}

/// A decimal as a JSON number (through f64; `null` if it cannot be represented).
pub fn num(d: Decimal) -> Value {
    serde_json::Number::from_f64(crate::model::to_f64(d)).map_or(Value::Null, Value::Number)
}

fn opt_num(d: Option<Decimal>) -> Value {
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
        "avg_entry": num(t.avg_entry),
        "avg_exit": opt_num(t.avg_exit),
        "exit_qty": num(t.exit_qty),
        "gross_pnl": num(t.gross_pnl),
        "fees": num(t.fees),
        "net_pnl": num(t.net_pnl),
        "entry_rule": t.entry_rule,
        "exit_rule": t.exit_rule,
        "fills": t.fills,
    })
}
