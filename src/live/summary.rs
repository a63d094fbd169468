//! What a live run did: the summary printed at its end.

use std::path::PathBuf;

use rust_decimal::Decimal;

use super::latency::{LatencySummary, StageSummaries};
use crate::report::TradeStats;

/// What a run did.
#[derive(Debug, Clone)]
pub struct LiveSummary {
    pub state_dir: PathBuf,
    pub events: u64,
    pub orders: u64,
    pub fills: u64,
    pub denials: u64,
    pub rejects: u64,
    pub stats: TradeStats,
    pub realized_pnl: Decimal,
    pub position_qty: Decimal,
    pub exchange_position_qty: Option<Decimal>,
    pub rule_counts: Vec<(String, u64)>,
    /// Frame received (before parsing) → signed order request handed to the HTTP client: everything in the bot,
    /// including the intent's store write (and its fsync when `storage.sync_intents`).
    pub latency: LatencySummary,
    /// The same excluding the intent's fsync (equal to `latency` when the fsync overlaps the request).
    pub latency_processing: LatencySummary,
    /// How long the intents' fsyncs took, on the order path (`sync_intents`) or overlapping the request.
    pub intent_fsync: LatencySummary,
    /// `latency_processing` by stage.
    pub latency_stages: StageSummaries,
    /// `storage.sync_intents` of the run.
    pub sync_intents: bool,
    /// Feed connections that ended (either market).
    pub feed_disconnects: u64,
    /// Successful reconnects after a disconnect.
    pub feed_reconnects: u64,
    /// Connection attempts that failed (each one a reconnect attempt while a feed was down).
    pub feed_connect_failures: u64,
    /// Streams that pushed nothing on a live connection (one warning each: the routing may not match the server).
    pub stream_warnings: Vec<String>,
    /// The engine's trading state at the end (`ACTIVE`, `DEGRADED`, …).
    pub final_state: &'static str,
    pub elapsed_s: f64,
    pub peak_rss_kb: Option<u64>,
}

impl LiveSummary {
    pub fn render_text(&self) -> String {
        let mut s = String::from("run summary\n");
        s.push_str(&format!(
            "  elapsed        {:.1} s, {} market events\n",
            self.elapsed_s, self.events
        ));
        s.push_str(&format!(
            "  orders         {}   fills {}   rejects {}   risk denials {}\n",
            self.orders, self.fills, self.rejects, self.denials
        ));
        s.push_str(&format!(
            "  trades         {}   wins {}   win rate {:.1} %\n",
            self.stats.count(),
            self.stats.wins,
            self.stats.win_rate * 100.0
        ));
        s.push_str(&format!(
            "  realised PnL   {} USDT (fees {} USDT)\n",
            self.realized_pnl.round_dp(4),
            self.stats.total_fees().round_dp(4)
        ));
        s.push_str(&format!(
            "  position       {}{}\n",
            self.position_qty,
            self.exchange_position_qty
                .map(|q| format!(" (exchange: {q})"))
                .unwrap_or_default()
        ));
        for (rule, n) in &self.rule_counts {
            s.push_str(&format!("  {n:>6}  {rule}\n"));
        }
        s.push_str(&format!(
            "  latency        frame received → order request written: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} orders)\n",
            self.latency.p50_us, self.latency.p99_us, self.latency.max_us, self.latency.count
        ));
        s.push_str(&format!(
            "                 of which premia's own processing (without the intent's fsync): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs\n",
            self.latency_processing.p50_us, self.latency_processing.p99_us, self.latency_processing.max_us
        ));
        s.push_str(&format!(
            "                 intent fsync {}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs\n",
            if self.sync_intents {
                "before each send (storage.sync_intents = true)"
            } else {
                "overlapping the request in flight (storage.sync_intents = false)"
            },
            self.intent_fsync.p50_us,
            self.intent_fsync.p99_us,
            self.intent_fsync.max_us
        ));
        let st = &self.latency_stages;
        let stage = |name: &str, l: &LatencySummary| {
            format!("{name} {:.1} / {:.1} / {:.1}", l.p50_us, l.p99_us, l.max_us)
        };
        s.push_str(&format!(
            "                 by stage (p50 / p99 / max µs): {}; {}; {}; {}\n",
            stage("parse + hop to engine", &st.to_engine),
            stage("engine decision", &st.decision),
            stage("intent write", &st.intent),
            stage("request signed + handed over", &st.send),
        ));
        s.push_str(&format!(
            "  feeds          {} disconnects, {} reconnects ({} failed connection attempts)\n",
            self.feed_disconnects, self.feed_reconnects, self.feed_connect_failures
        ));
        for w in &self.stream_warnings {
            s.push_str(&format!("  stream warning {w}\n"));
        }
        s.push_str(&format!(
            "  trading state  {} at the end\n",
            self.final_state
        ));
        if let Some(kb) = self.peak_rss_kb {
            s.push_str(&format!("  peak RSS       {:.1} MB\n", kb as f64 / 1024.0));
        }
        s.push_str(&format!(
            "  state          {}   (premia report --state {})\n",
            self.state_dir.display(),
            self.state_dir.display()
        ));
        s
    }
}

/// Peak resident set size of this process (Linux `VmHWM`), in kB.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
