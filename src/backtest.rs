//! `premia backtest`: recorded market data through the same engine the live path runs, fills from the simulator,
//! state in a sled dir that `premia report` reads like a live run's.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rust_decimal::Decimal;
use serde_json::json;

use crate::config::Config;
use crate::engine::{Action, Engine, Event};
use crate::market::event::{MarketEvent, MarketKind, Quote};
use crate::model::{Fill, OrderUpdate, TsNs};
use crate::persist::{persist, PersistError};
use crate::report::TradeStats;
use crate::sim::SimExchange;
use crate::store::{warn_if_crashed, Durability, EndedHow, RunKind, RunMeta, Store};
use crate::strategy::Strategy;

/// Events read per batch: few enough to stay in the L1/L2 caches, enough to keep each loop hot (256 measured a few
/// percent faster than 64 here; 1024 no faster).
const READ_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Data(#[from] crate::market::DataError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("cannot write the fills CSV {path}: {source}")]
    FillsCsv {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What to backtest.
pub struct BacktestOptions {
    pub data: Vec<String>,
    pub strategy: Strategy,
    pub config: Config,
    pub state_dir: PathBuf,
    pub fills_csv: Option<PathBuf>,
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// The outcome of a backtest.
#[derive(Debug, Clone)]
pub struct BacktestResult {
    pub events: u64,
    pub samples: u64,
    pub malformed_lines: u64,
    pub first_ts: Option<TsNs>,
    pub last_ts: Option<TsNs>,
    pub elapsed_s: f64,
    pub orders: u64,
    pub fills: u64,
    pub denials: u64,
    pub stats: TradeStats,
    pub realized_pnl: Decimal,
    pub open_qty: Decimal,
    pub rule_counts: Vec<(String, u64)>,
    pub state_dir: PathBuf,
    pub strategy: String,
}

impl BacktestResult {
    pub fn events_per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.events as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Market time covered, in seconds.
    pub fn span_s(&self) -> f64 {
        match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e9,
            _ => 0.0,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let num = |d: Decimal| {
            serde_json::Number::from_f64(crate::model::to_f64(d)).map(serde_json::Value::Number)
        };
        json!({
            "strategy": self.strategy,
            "events": self.events,
            "samples": self.samples,
            "malformed_lines": self.malformed_lines,
            "span_s": self.span_s(),
            "first_ts_ns": self.first_ts,
            "last_ts_ns": self.last_ts,
            "elapsed_s": self.elapsed_s,
            "events_per_s": self.events_per_s(),
            "orders": self.orders,
            "fills": self.fills,
            "risk_denials": self.denials,
            "trades": self.stats.count(),
            "wins": self.stats.wins,
            "win_rate": self.stats.win_rate,
            "realized_pnl": num(self.realized_pnl),
            "fees": num(self.stats.total_fees()),
            "max_drawdown": num(self.stats.max_drawdown),
            "open_position_qty": num(self.open_qty),
            "rules": self.rule_counts.iter().map(|(k, v)| json!({"rule": k, "decisions": v})).collect::<Vec<_>>(),
            "state_dir": self.state_dir.display().to_string(),
        })
    }

    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let secs = self.span_s();
        s.push_str(&format!("backtest of {}\n", self.strategy));
        s.push_str(&format!(
            "  events       {:>12}   ({} samples, {:.1} s of market time{})\n",
            self.events,
            self.samples,
            secs,
            if self.malformed_lines > 0 {
                format!(", {} malformed lines skipped", self.malformed_lines)
            } else {
                String::new()
            }
        ));
        s.push_str(&format!(
            "  speed        {:>12.0} events/s ({:.3} s)\n",
            self.events_per_s(),
            self.elapsed_s
        ));
        s.push_str(&format!(
            "  orders       {:>12}   fills {}   risk denials {}\n",
            self.orders, self.fills, self.denials
        ));
        s.push_str(&format!(
            "  trades       {:>12}   wins {}   win rate {:.1} %\n",
            self.stats.count(),
            self.stats.wins,
            self.stats.win_rate * 100.0
        ));
        s.push_str(&format!(
            "  realised PnL {:>12} USDT (net of {} USDT fees)\n",
            self.realized_pnl.round_dp(4),
            self.stats.total_fees().round_dp(4)
        ));
        s.push_str(&format!(
            "  max drawdown {:>12} USDT\n",
            self.stats.max_drawdown.round_dp(4)
        ));
        if !self.open_qty.is_zero() {
            s.push_str(&format!(
                "  open position {} at the end of the data\n",
                self.open_qty
            ));
        }
        s.push_str("  decisions per rule:\n");
        for (rule, n) in &self.rule_counts {
            s.push_str(&format!("    {n:>6}  {rule}\n"));
        }
        s.push_str(&format!(
            "  state: {}   (premia report --state {})\n",
            self.state_dir.display(),
            self.state_dir.display()
        ));
        s
    }
}

/// Writes `ts_ns,symbol,side,qty,price,fee,rule` lines.
struct FillsCsv {
    out: BufWriter<File>,
    path: String,
}

impl FillsCsv {
    fn create(path: &Path) -> Result<Self, BacktestError> {
        let p = path.display().to_string();
        let file = File::create(path).map_err(|source| BacktestError::FillsCsv {
            path: p.clone(),
            source,
        })?;
        let mut out = BufWriter::new(file);
        writeln!(out, "ts_ns,symbol,side,qty,price,fee,rule").map_err(|source| {
            BacktestError::FillsCsv {
                path: p.clone(),
                source,
            }
        })?;
        Ok(FillsCsv { out, path: p })
    }

    fn write(&mut self, f: &Fill) -> Result<(), BacktestError> {
        writeln!(
            self.out,
            "{},{},{},{},{},{},{}",
            f.ts,
            f.symbol,
            f.side.as_str(),
            f.qty,
            f.price,
            f.fee.normalize(),
            csv_field(&f.rule)
        )
        .map_err(|source| BacktestError::FillsCsv {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(mut self) -> Result<(), BacktestError> {
        self.out.flush().map_err(|source| BacktestError::FillsCsv {
            path: self.path.clone(),
            source,
        })
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn wall_clock_ns() -> TsNs {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    TsNs::try_from(since.as_nanos()).unwrap_or(TsNs::MAX)
}

/// Runs a backtest to the end of the data.
pub fn run(opts: BacktestOptions) -> Result<BacktestResult, BacktestError> {
    if opts.data.is_empty() {
        return Err(BacktestError::Invalid(
            "no data: give at least one --data PATH".into(),
        ));
    }
    let mut reader = crate::market::open(&opts.data)?;
    // Every input is opened before the state dir is made: a backtest that cannot start leaves no run behind.
    let mut fills_csv = opts
        .fills_csv
        .as_deref()
        .map(FillsCsv::create)
        .transpose()?;
    let store = Store::open_with(&opts.state_dir, Durability::Lazy)?;
    let started_ts = wall_clock_ns();
    let previous = store.begin_run(
        &RunMeta {
            kind: RunKind::Backtest,
            strategy_name: opts.strategy.name.clone(),
            strategy_file: opts.strategy.source.display().to_string(),
            symbol: opts.strategy.symbol.clone(),
            started_ts,
            ended_ts: None,
            ended_how: None,
            crash_detected_ts: None,
            market_first_ts: None,
            market_last_ts: None,
            starting_balance: Some(opts.config.local.balance_usdt),
            config_path: Some(opts.config.source.clone()),
            data_inputs: opts.data.clone(),
            exchange: Some("simulated".into()),
            premia_version: env!("CARGO_PKG_VERSION").into(),
        },
        started_ts,
    )?;
    warn_if_crashed(previous.as_ref(), &opts.state_dir);
    let strategy_name = format!(
        "{} ({})",
        opts.strategy.name,
        opts.strategy.source.display()
    );
    let mut engine = Engine::new(opts.strategy, opts.config.engine_config("bt-"));
    let mut sim = SimExchange::new(
        opts.config.filters.clone(),
        opts.config.fees.taker_rate,
        opts.config.fees.maker_rate,
    );

    let bar = progress_bar(opts.progress, reader.total_bytes());
    let started = Instant::now();
    let mut actions: Vec<Action> = Vec::with_capacity(16);
    let mut updates: Vec<OrderUpdate> = Vec::with_capacity(4);
    let (mut malformed, mut first_ts, mut last_ts) = (0u64, None, None);
    let mut batch = StoreBatch::new(&store);
    // In batches: the reader's loop and the engine's loop each stay hot in the caches.
    let placeholder = MarketEvent {
        ts: 0,
        kind: MarketKind::Quote(Quote::EMPTY),
    };
    let mut events = [placeholder; READ_BATCH];
    let mut prices = [[f64::NAN; 2]; READ_BATCH];
    loop {
        // The reader also gives each quote's f64 prices: converted there from the parsed digits, their divisions
        // overlap with parsing instead of stalling the engine one event at a time.
        let (read, error) = reader.fill(&mut events, &mut prices);
        if read == 0 && error.is_none() {
            break;
        }
        let batch_events = events.get(..read).unwrap_or(&[]);
        for (ev, &px) in batch_events.iter().zip(&prices) {
            if first_ts.is_none() {
                first_ts = Some(ev.ts);
            }
            last_ts = Some(ev.ts);
            sim.on_market(ev, &mut updates);
            if !updates.is_empty() {
                for u in updates.drain(..) {
                    engine.on_event(&Event::Order(u), &mut actions);
                }
            }
            engine.on_market_event_with(ev, px, &mut actions);
            if !actions.is_empty() {
                drain_actions(
                    &mut engine,
                    &mut sim,
                    &mut batch,
                    &mut fills_csv,
                    &mut actions,
                    &mut updates,
                    ev.ts,
                )?;
            }
        }
        if let Some(e) = error {
            malformed += 1;
            if malformed <= 10 {
                tracing::warn!("{e}; line skipped");
            }
        }
        if let Some(b) = &bar {
            b.set_position(reader.bytes_read());
        }
    }
    // The last writes count in the run's time.
    batch.write()?;
    let elapsed_s = started.elapsed().as_secs_f64();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if malformed > 10 {
        tracing::warn!("{malformed} malformed lines skipped in all");
    }
    if let Some(f) = fills_csv {
        f.finish()?;
    }
    store.finish_run(wall_clock_ns(), first_ts.zip(last_ts), EndedHow::Clean)?;
    store.flush()?;

    let fills = store.fills()?;
    let stats = TradeStats::from_fills(&fills);
    let es = engine.stats();
    let rule_counts = engine.rule_counts();

    Ok(BacktestResult {
        events: es.events,
        samples: es.samples,
        malformed_lines: malformed,
        first_ts,
        last_ts,
        elapsed_s,
        orders: es.orders,
        fills: es.fills,
        denials: es.denials,
        realized_pnl: engine.position().realized_pnl,
        open_qty: engine.position().qty,
        stats,
        rule_counts,
        state_dir: opts.state_dir,
        strategy: strategy_name,
    })
}

/// Carries out the engine's actions; orders go to the simulator, whose reports go straight back to the engine.
fn drain_actions(
    engine: &mut Engine,
    sim: &mut SimExchange,
    batch: &mut StoreBatch<'_>,
    fills_csv: &mut Option<FillsCsv>,
    actions: &mut Vec<Action>,
    updates: &mut Vec<OrderUpdate>,
    now: TsNs,
) -> Result<(), BacktestError> {
    let mut work: Vec<Action> = std::mem::take(actions);
    while !work.is_empty() {
        for action in work.drain(..) {
            match &action {
                Action::Place(rec) => sim.submit(rec, now, updates),
                Action::Cancel { client_id, .. } => sim.cancel(client_id, now, updates),
                Action::Filled { fill, .. } => {
                    if let Some(csv) = fills_csv {
                        csv.write(fill)?;
                    }
                }
                _ => {}
            }
            batch.push(action)?;
        }
        for u in updates.drain(..) {
            engine.on_event(&Event::Order(u), actions);
        }
        std::mem::swap(&mut work, actions);
    }
    Ok(())
}

/// The backtest's writes to its store, in order, in batches: a simulated run has no exchange to stay consistent
/// with and nothing reads its store before the end, so its actions are written [`StoreBatch::LEN`] at a time (and
/// at the end) instead of one sled insert per action in the middle of the event loop.
struct StoreBatch<'a> {
    store: &'a Store,
    pending: Vec<Action>,
}

impl<'a> StoreBatch<'a> {
    const LEN: usize = 4096;

    fn new(store: &'a Store) -> Self {
        StoreBatch {
            store,
            pending: Vec::new(),
        }
    }

    fn push(&mut self, action: Action) -> Result<(), BacktestError> {
        self.pending.push(action);
        if self.pending.len() >= Self::LEN {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), BacktestError> {
        for a in self.pending.drain(..) {
            persist(self.store, &a)?;
        }
        Ok(())
    }
}

impl Drop for StoreBatch<'_> {
    /// A run that stops on an error still leaves what it did in its state dir (a finished run has written all).
    fn drop(&mut self) {
        if let Err(e) = self.write() {
            tracing::warn!("backtest state not fully written: {e}");
        }
    }
}

fn progress_bar(enabled: bool, total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() || total == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
