//! The text form of a [`Report`]: run, positions, trades, account, metrics and activity, for a terminal.

use crate::model::{Decimal, Side, NS_PER_S};
use crate::store::{EndedHow, RunMeta};

use super::decisions::values_text;
use super::metrics::{Group, Metrics, FEW_TRADES};
use super::text::{fixed, format_duration, format_ts, plain, signed, Align, Table};
use super::{Report, Trade, TradeRows, TradeStats};

impl Report {
    /// A human summary for a terminal; `rows` limits the trade list.
    pub fn render_text_with(&self, rows: TradeRows) -> String {
        let mut out = String::new();
        self.render_run(&mut out);
        self.render_positions(&mut out);
        render_trades(&self.stats, rows, &mut out);
        self.render_account(&mut out);
        render_metrics(&self.metrics, &mut out);
        self.render_activity(&mut out);
        out
    }

    fn render_run(&self, out: &mut String) {
        out.push_str(&format!("State dir  {}\n", self.dir.display()));
        if let Some(from) = &self.chosen_from {
            out.push_str(&format!(
                "           (the run started most recently in {})\n",
                from.display()
            ));
        }
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
        out.push_str(&format!("Time       {}\n", run_time_text(m)));
        if let (Some(a), Some(b)) = (m.market_first_ts, m.market_last_ts) {
            out.push_str(&format!("Market     {}\n", span_text(Some(a), Some(b))));
        }
        if let Some(c) = &m.config_path {
            out.push_str(&format!("Config     {c}\n"));
        }
        if let Some(x) = &m.exchange {
            out.push_str(&format!("Exchange   {x}\n"));
        }
        if let Some(b) = m.starting_balance {
            out.push_str(&format!("Balance    {} USDT at the start\n", plain(b)));
        }
        if !m.data_inputs.is_empty() {
            out.push_str(&format!("Data       {}\n", m.data_inputs.join(", ")));
        }
        for (k, v) in &self.meta_values {
            out.push_str(&format!("{k:<10} {v}\n"));
        }
        for p in self.previous_runs.iter().rev() {
            out.push_str(&format!(
                "Earlier    {} run {}\n",
                p.kind.as_str(),
                run_time_text(p)
            ));
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

    /// The account's figures, reconciled with the closed trades and the open trade's share.
    fn render_account(&self, out: &mut String) {
        out.push_str(&format!(
            "\nRealised   {} USDT net of {} USDT fees (every fee paid, as in Positions)\n",
            signed(self.realized_pnl, 4),
            fixed(self.fees, 4)
        ));
        if !self.stats.open.is_empty() {
            let open_net = self
                .stats
                .open
                .iter()
                .fold(Decimal::ZERO, |acc, t| acc.saturating_add(t.net_pnl));
            let open_fees = self.stats.total_fees().saturating_sub(self.stats.fees);
            out.push_str(&format!(
                "           = closed trades {} (fees {}) + open trade {} so far (fees {})\n",
                signed(self.stats.realized_pnl, 4),
                fixed(self.stats.fees, 4),
                signed(open_net, 4),
                fixed(open_fees, 4)
            ));
        }
    }

    fn render_activity(&self, out: &mut String) {
        let open = self
            .orders
            .iter()
            .filter(|o| !o.state.is_terminal())
            .count();
        let mut by_state: Vec<(String, usize)> = Vec::new();
        for o in &self.orders {
            super::bump(&mut by_state, o.state.as_str());
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
}

/// `start → end (duration)` in UTC; an unknown start or a missing end said in words.
fn span_text(start: Option<i64>, end: Option<i64>) -> String {
    let Some(start) = start else {
        return "(start not recorded)".to_string();
    };
    match end {
        Some(end) => format!(
            "{} UTC → {} UTC ({})",
            format_ts(start),
            format_ts(end),
            format_duration(end.saturating_sub(start))
        ),
        None => format!("{} UTC →", format_ts(start)),
    }
}

/// The run's wall-clock span and how it ended.
fn run_time_text(m: &RunMeta) -> String {
    let start = Some(m.started_ts).filter(|t| *t > 0);
    format!("{} {}", span_text(start, m.ended_ts), ended_text(m))
}

/// How a run ended, in words.
fn ended_text(m: &RunMeta) -> String {
    match m.ended_how {
        Some(EndedHow::Clean) => "ended cleanly".into(),
        Some(EndedHow::Signal) => "ended by a signal (SIGINT/SIGTERM), cleanly".into(),
        Some(EndedHow::Error) => "ended on an error, after saving its state".into(),
        Some(EndedHow::Crashed) => format!(
            "crashed: its process died without recording an end (found when the next run opened the state dir{})",
            m.crash_detected_ts
                .map(|t| format!(" at {} UTC", format_ts(t)))
                .unwrap_or_default()
        ),
        // Written by a premia that recorded the end but not how.
        None if m.ended_ts.is_some() => "ended (how is not recorded)".into(),
        None => "ended uncleanly (no end recorded: the process died or is still running)".into(),
    }
}

fn render_trades(stats: &TradeStats, rows: TradeRows, out: &mut String) {
    out.push_str(&format!("\nTrades ({} closed)\n", stats.count()));
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
        ("FEES", Align::Right),
        ("NET PNL", Align::Right),
        ("RULE", Align::Left),
        ("EXIT", Align::Left),
    ]);
    let skip = match rows {
        TradeRows::All => 0,
        TradeRows::Last(n) => stats.trades.len().saturating_sub(n),
    };
    let shown: Vec<(String, &Trade)> = stats
        .trades
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, tr)| ((i + 1).to_string(), tr))
        .chain(stats.open.iter().map(|tr| ("open".to_string(), tr)))
        .collect();
    for (label, tr) in &shown {
        t.row(trade_row(label.clone(), tr));
    }
    if skip > 0 {
        out.push_str(&format!(
            "  (the first {skip} trades are not shown: --trades all lists every one)\n"
        ));
    }
    let mut table = String::new();
    t.render("  ", &mut table);
    push_with_values(&table, shown.iter().map(|(_, tr)| *tr), out);
}

/// The rendered trade table, each trade's row followed by the values that fired its entry and its exit.
fn push_with_values<'a>(table: &str, trades: impl Iterator<Item = &'a Trade>, out: &mut String) {
    let mut lines = table.lines();
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (line, tr) in lines.zip(trades) {
        out.push_str(line);
        out.push('\n');
        for (tag, values) in [("in ", &tr.entry_values), ("out", &tr.exit_values)] {
            let text = values_text(values);
            if !text.is_empty() {
                out.push_str(&format!("        {tag} {text}\n"));
            }
        }
    }
}

fn trade_row(label: String, t: &Trade) -> Vec<String> {
    let side = match t.side {
        Side::Buy => "LONG",
        Side::Sell => "SHORT",
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
        fixed(t.fees, 4),
        signed(t.net_pnl, 4),
        t.entry_rule.clone(),
        t.exit_rule.clone().unwrap_or_else(|| "-".into()),
    ]
}

fn opt(d: Option<Decimal>) -> String {
    d.map_or_else(|| "-".into(), |d| signed(d, 4))
}

fn ratio(x: Option<f64>, dp: usize) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{x:.dp$}"))
}

fn render_metrics(m: &Metrics, out: &mut String) {
    out.push_str("\nMetrics (closed trades)\n");
    out.push_str(&format!(
        "  Trades        {} · {} won · {} lost · win rate {} · {} a day\n",
        m.trades,
        m.wins,
        m.losses,
        m.win_rate
            .map_or_else(|| "n/a".into(), |w| format!("{:.1}%", w * 100.0)),
        ratio(m.trades_per_day, 2)
    ));
    let pct = m
        .net_pnl_pct
        .map(|p| format!(" ({p:+.2}% of the starting balance)"))
        .unwrap_or_default();
    out.push_str(&format!(
        "  PnL           gross {} · fees {} · net {} USDT{pct}\n",
        signed(m.gross_pnl, 4),
        fixed(m.fees, 4),
        signed(m.net_pnl, 4)
    ));
    out.push_str(&format!(
        "  Per trade     expectancy {} · avg win {} · avg loss {} · best {} · worst {}\n",
        opt(m.expectancy),
        opt(m.avg_win),
        opt(m.avg_loss),
        opt(m.best_trade),
        opt(m.worst_trade)
    ));
    out.push_str(&format!(
        "  Profit factor {} · longest streaks {} won, {} lost\n",
        ratio(m.profit_factor, 2),
        m.longest_win_streak,
        m.longest_loss_streak
    ));
    let dd_pct = m
        .max_drawdown_pct
        .map(|p| format!(" ({p:.2}%)"))
        .unwrap_or_default();
    out.push_str(&format!(
        "  Drawdown      {} USDT{dd_pct} max · longest underwater {}\n",
        fixed(m.max_drawdown, 4),
        format_duration((m.max_drawdown_duration_s * NS_PER_S as f64) as i64)
    ));
    out.push_str(&format!(
        "  Exposure      {} of the time in a position\n",
        m.exposure_pct
            .map_or_else(|| "n/a".into(), |p| format!("{p:.1}%"))
    ));
    out.push_str(&format!(
        "  Ratios        Sharpe {} · Sortino {} · Calmar {} (daily, annualised over 365 days)\n",
        ratio(m.sharpe, 2),
        ratio(m.sortino, 2),
        ratio(m.calmar, 2)
    ));
    out.push_str(&format!(
        "  Buy and hold  {}\n",
        m.buy_and_hold_pct.map_or_else(
            || "n/a (no prices kept in the state dir)".into(),
            |p| format!("{p:+.2}%")
        )
    ));
    render_groups("By side", &[m.long.clone(), m.short.clone()], out);
    render_groups("By entry rule", &m.by_entry_rule, out);
    render_groups("By exit reason", &m.by_exit_reason, out);
    if m.few_trades() {
        out.push_str(&format!(
            "\nWarning: only {} closed trades (fewer than {FEW_TRADES}): these figures say little about the strategy.\n",
            m.trades
        ));
    }
}

fn render_groups(title: &str, groups: &[Group], out: &mut String) {
    if groups.iter().all(|g| g.trades == 0) {
        return;
    }
    out.push_str(&format!("\n{title}\n"));
    let mut t = Table::new(&[
        ("", Align::Left),
        ("TRADES", Align::Right),
        ("WON", Align::Right),
        ("WIN RATE", Align::Right),
        ("NET PNL", Align::Right),
    ]);
    for g in groups {
        let rate = if g.trades == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", g.wins as f64 / g.trades as f64 * 100.0)
        };
        t.row(vec![
            g.name.clone(),
            g.trades.to_string(),
            g.wins.to_string(),
            rate,
            signed(g.net_pnl, 4),
        ]);
    }
    t.render("  ", out);
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
