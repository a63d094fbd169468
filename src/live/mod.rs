//! `premia run`: the live trader. Feeds, the user-data stream and the order router are async tasks that talk to the
//! one engine task over a single bounded, ordered event channel; the engine is the same one backtests run.
//!
//! Start-up order: exchange rules and account checks → the store → reconciliation with the exchange (the exchange
//! wins) → feeds and user stream → trading. Shutdown (Ctrl-C, end of a local replay): stop entries, optionally
//! flatten, wait for the order in flight, flush the store, close sockets, print a summary.

pub mod latency;
pub mod reconcile;
pub mod router;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backtest::engine_config;
use crate::binance::error::BinanceError;
use crate::binance::feed::{spawn_feed, Clock, FeedConfig, FeedStatus};
use crate::binance::rest::{PositionMode, RestClient, RestConfig};
use crate::binance::sign::Credentials;
use crate::binance::user_stream::{spawn_user_stream, UserStreamConfig};
use crate::binance::user_wire::{UserEvent, STREAM_CONNECTED};
use crate::config::{Config, ExchangeMode};
use crate::engine::{Action, Control, Engine, Event};
use crate::market::MarketEvent;
use crate::model::NS_PER_MS;
use crate::persist::persist;
use crate::report::TradeStats;
use crate::store::{Durability, RunKind, RunMeta, Store};
use latency::{Latencies, LatencySummary};
use router::{run_router, RouterCmd};

/// Capacity of the engine's event channel. Feeds wait (back-pressure) rather than drop when the engine lags.
pub const EVENT_CHANNEL: usize = 8192;

/// Everything the engine task receives, in one ordered channel.
#[derive(Debug)]
pub enum Inbound {
    /// A market event and when its frame arrived (monotonic, for the latency histogram).
    Market(MarketEvent, Instant),
    Feed(FeedStatus),
    User(UserEvent),
    Order(crate::model::OrderUpdate),
}

impl From<MarketEvent> for Inbound {
    fn from(e: MarketEvent) -> Self {
        Inbound::Market(e, Instant::now())
    }
}

impl From<FeedStatus> for Inbound {
    fn from(s: FeedStatus) -> Self {
        Inbound::Feed(s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Keys missing from the environment: the operator must export them (exit code 2).
    #[error("missing API keys: set the environment variable{} {} (see config `exchange.api_key_env` / `api_secret_env`)", if .0.len() == 1 { "" } else { "s" }, .0.join(" and "))]
    MissingKeys(Vec<String>),
    #[error(transparent)]
    Strategy(#[from] crate::strategy::StrategyError),
    #[error(transparent)]
    Exchange(#[from] BinanceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Persist(#[from] crate::persist::PersistError),
    #[error(transparent)]
    Local(#[from] crate::local_exchange::LocalExchangeError),
    #[error("the account is in hedge (dual-side) position mode; premia trades one-way mode: switch it in the exchange's settings")]
    HedgeMode,
    #[error("{0}")]
    Startup(String),
}

/// How `premia run` was asked to run.
#[derive(Clone)]
pub struct LiveOptions {
    pub config: Config,
    pub flatten_on_exit: bool,
    /// Stop after this long (tests, soak runs); `None` = until Ctrl-C or the end of a local replay.
    pub max_duration: Option<Duration>,
    /// Stop when this token is cancelled (tests; Ctrl-C is handled too).
    pub shutdown: CancellationToken,
    /// The engine's clock; `None` = the wall clock (binance mode) or the local exchange's replay clock (local mode).
    /// Tests driving an exchange they started themselves pass its replay clock here.
    pub clock: Option<Clock>,
}

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
    /// Frame received → order request written, including the intent's durable write.
    pub latency: LatencySummary,
    /// The same excluding the intent's store write (fsync).
    pub latency_processing: LatencySummary,
    pub feed_reconnects: u64,
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
            self.stats.fees.round_dp(4)
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
        s.push_str(&format!("  feed reconnects {}\n", self.feed_reconnects));
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

/// Where orders go and where market data comes from, resolved from the config (and the embedded exchange).
struct Endpoints {
    rest_url: String,
    user_ws_url: String,
    spot_ws_url: String,
    futures_ws_url: String,
    creds: Credentials,
    clock: Clock,
    /// Set when the embedded local exchange runs: resolves when its recording has been replayed.
    local: Option<crate::local_exchange::RunningExchange>,
}

async fn endpoints(cfg: &Config, symbol: &str) -> Result<Endpoints, LiveError> {
    match cfg.exchange.mode {
        ExchangeMode::Binance => {
            let creds =
                Credentials::from_env(&cfg.exchange.api_key_env, &cfg.exchange.api_secret_env)
                    .map_err(|e| match e {
                        crate::binance::sign::SignError::MissingEnv(vars) => {
                            LiveError::MissingKeys(vars)
                        }
                    })?;
            Ok(Endpoints {
                rest_url: cfg.exchange.rest_url.clone(),
                user_ws_url: cfg.exchange.ws_url.clone(),
                spot_ws_url: cfg.feeds.spot_ws_url.clone(),
                futures_ws_url: cfg.feeds.futures_ws_url.clone(),
                creds,
                clock: crate::binance::feed::system_clock(),
                local: None,
            })
        }
        ExchangeMode::Local => {
            let ex = start_local_exchange(cfg, symbol).await?;
            let keys = ex.keys();
            let clock = ex.clock();
            Ok(Endpoints {
                rest_url: ex.rest_url(),
                user_ws_url: ex.user_ws_url(),
                spot_ws_url: if cfg.feeds.spot_ws_url.is_empty() {
                    ex.spot_ws_url()
                } else {
                    cfg.feeds.spot_ws_url.clone()
                },
                futures_ws_url: if cfg.feeds.futures_ws_url.is_empty() {
                    ex.futures_ws_url()
                } else {
                    cfg.feeds.futures_ws_url.clone()
                },
                creds: Credentials::new(keys.api_key.clone(), keys.secret.clone()),
                clock,
                local: Some(ex),
            })
        }
    }
}

/// Starts the embedded local exchange from the config's `[local]`, `[fees]` and `[filters]`.
async fn start_local_exchange(
    cfg: &Config,
    symbol: &str,
) -> Result<crate::local_exchange::RunningExchange, LiveError> {
    use crate::local_exchange::{LocalExchange, LocalExchangeConfig};
    let listen = cfg.local.listen.parse().map_err(|_| {
        LiveError::Startup(format!(
            "local.listen `{}` is not an address",
            cfg.local.listen
        ))
    })?;
    let lcfg = LocalExchangeConfig {
        listen,
        data: cfg.local.data.clone(),
        speed: cfg.local.speed,
        starting_balance: cfg.local.balance_usdt,
        taker_fee: cfg.fees.taker_rate,
        maker_fee: cfg.fees.maker_rate,
        symbol: symbol.to_string(),
        filters: cfg.filters.clone(),
        min_subscribers: 2,
        ..LocalExchangeConfig::default()
    };
    Ok(LocalExchange::start(lcfg).await?)
}

/// A client-order-id prefix unique to this run: `pm` + base-36 start time in ms + `-` (the sequence follows).
fn client_id_prefix(now_ms: i64) -> String {
    let mut n = now_ms.max(0) as u64;
    let mut digits = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    digits.reverse();
    format!("pm{}-", String::from_utf8_lossy(&digits))
}

/// Runs the trader until shutdown; returns its summary.
pub async fn run(opts: LiveOptions) -> Result<LiveSummary, LiveError> {
    let started = Instant::now();
    let cfg = &opts.config;
    let strategy = crate::strategy::load_file(&cfg.strategy)?;
    let symbol = strategy.symbol.clone();
    let ep = endpoints(cfg, &symbol).await?;
    let clock = opts.clock.clone().unwrap_or_else(|| ep.clock.clone());

    // Exchange rules and account set-up.
    let mut rest_cfg = RestConfig::new(ep.rest_url.clone());
    rest_cfg.recv_window_ms = cfg.exchange.recv_window_ms;
    rest_cfg.timeout = Duration::from_millis(cfg.exchange.timeout_ms);
    let rest = RestClient::new(rest_cfg, ep.creds.clone())?;
    let offset = rest.sync_time().await?;
    tracing::info!(rest = %ep.rest_url, offset_ms = offset, "connected to the exchange");
    let filters = rest.exchange_info(&symbol).await?;
    tracing::info!(%symbol, tick = %filters.tick_size, step = %filters.step_size, min_notional = %filters.min_notional, "exchange filters");
    if rest.position_mode().await? != PositionMode::OneWay {
        return Err(LiveError::HedgeMode);
    }
    let lev = rest.set_leverage(&symbol, cfg.exchange.leverage).await?;
    tracing::info!(leverage = lev, "leverage set");

    // State: local runs get a fresh folder each time (the local exchange starts empty); real accounts keep theirs.
    let state_dir = match cfg.exchange.mode {
        ExchangeMode::Local => fresh_subdir(&cfg.state_dir),
        ExchangeMode::Binance => cfg.state_dir.clone(),
    };
    let store = Store::open_with(&state_dir, Durability::Sync)?;
    let now_ms = clock() / NS_PER_MS;
    store.put_meta(&RunMeta {
        kind: RunKind::Live,
        strategy_name: strategy.name.clone(),
        strategy_file: strategy.source.display().to_string(),
        symbol: symbol.clone(),
        started_ts: clock(),
        ended_ts: None,
        config_path: Some(cfg.source.clone()),
        data_inputs: vec![ep.spot_ws_url.clone(), ep.futures_ws_url.clone()],
        exchange: Some(match cfg.exchange.mode {
            ExchangeMode::Local => format!("local ({})", ep.rest_url),
            ExchangeMode::Binance => ep.rest_url.clone(),
        }),
        premia_version: env!("CARGO_PKG_VERSION").into(),
    })?;
    let mut engine = Engine::new(strategy, engine_config(cfg, &client_id_prefix(now_ms)));
    engine.set_filters(filters);
    engine.defer_journal(true);

    // Reconcile with the exchange before trading.
    let mut actions: Vec<Action> = Vec::with_capacity(16);
    reconcile::reconcile(&rest, &store, &mut engine, clock(), &mut actions).await?;
    for a in actions.drain(..) {
        persist(&store, &a)?;
    }
    store.flush()?;

    // Tasks.
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<Inbound>(EVENT_CHANNEL);
    let (router_tx, router_rx) = mpsc::channel::<RouterCmd>(64);
    let latency = Latencies::default();
    let mut tasks = Vec::new();
    let silence = Duration::from_nanos(cfg.feeds.silence_timeout_ns.max(1) as u64);
    for fc in [
        FeedConfig::spot(ep.spot_ws_url.clone(), &engine.strategy().spot_symbol),
        FeedConfig::perp(ep.futures_ws_url.clone(), &symbol),
    ] {
        let fc = FeedConfig {
            silence_timeout: silence,
            ..fc
        };
        tasks.push(spawn_feed(
            fc,
            clock.clone(),
            tx.clone(),
            None,
            cancel.clone(),
        ));
    }
    let (user_tx, mut user_rx) = mpsc::channel::<UserEvent>(1024);
    tasks.push(spawn_user_stream(
        rest.clone(),
        UserStreamConfig::new(ep.user_ws_url.clone()),
        user_tx,
        cancel.clone(),
    ));
    {
        // Forward user-data events into the one ordered channel.
        let tx = tx.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    ev = user_rx.recv() => match ev {
                        Some(ev) => if tx.send(Inbound::User(ev)).await.is_err() { break },
                        None => break,
                    }
                }
            }
        }));
    }
    tasks.push(tokio::spawn(run_router(
        rest.clone(),
        router_rx,
        tx.clone(),
        latency.clone(),
        clock.clone(),
        cancel.clone(),
    )));
    drop(tx);

    // The engine task (this one).
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    let mut reconnects = 0u64;
    let deadline = opts.max_duration.map(|d| tokio::time::Instant::now() + d);
    let replay_watch = ep.local.as_ref().map(|l| l.replay_watch());
    let replay_done = async move {
        match replay_watch {
            Some(mut w) => {
                let _ = w
                    .wait_for(|s| s.phase == crate::local_exchange::ReplayPhase::Finished)
                    .await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(replay_done);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut ctrl_c, if stopping.is_none() => {
                tracing::info!("Ctrl-C: stopping entries and shutting down");
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            _ = opts.shutdown.cancelled(), if stopping.is_none() => {
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            _ = &mut replay_done, if stopping.is_none() => {
                tracing::info!("the recording has been replayed to its end");
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } }, if stopping.is_none() => {
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            m = rx.recv() => match m { Some(m) => Some(m), None => break },
            _ = tick.tick() => {
                engine.on_event(&Event::Clock(clock()), &mut actions);
                if last_status.elapsed() >= Duration::from_secs(5) {
                    last_status = Instant::now();
                    status_line(&engine, clock());
                }
                None
            }
        };
        let mut origin = None;
        match msg {
            Some(Inbound::Market(ev, t)) => {
                origin = Some(t);
                engine.on_event(&Event::Market(ev), &mut actions);
            }
            Some(Inbound::Order(u)) => engine.on_event(&Event::Order(u), &mut actions),
            Some(Inbound::User(UserEvent::Order(u))) if u.symbol == engine.strategy().symbol => {
                engine.on_event(&Event::Order(u), &mut actions);
            }
            Some(Inbound::User(UserEvent::Account { positions, .. })) => {
                for p in positions
                    .iter()
                    .filter(|p| p.symbol == engine.strategy().symbol)
                {
                    if p.qty != engine.position().qty && engine.pending().is_none() {
                        tracing::warn!(exchange = %p.qty, local = %engine.position().qty, "ACCOUNT_UPDATE position differs from premia's");
                    }
                }
            }
            Some(Inbound::User(UserEvent::Other(STREAM_CONNECTED))) => {
                // The stream was (re)connected: anything it missed about the order in flight is asked for.
                if let Some(p) = engine.pending() {
                    let cmd = RouterCmd::Query {
                        client_id: p.request.client_id.clone(),
                        symbol: p.request.symbol.clone(),
                    };
                    let _ = router_tx.send(cmd).await;
                }
            }
            Some(Inbound::User(other)) => tracing::debug!(event = ?other, "user-data event"),
            Some(Inbound::Feed(FeedStatus::Disconnected { venue, reason, .. })) => {
                reconnects += 1;
                tracing::warn!(
                    venue = venue.as_str(),
                    ?reason,
                    "feed disconnected; reconnecting"
                );
            }
            Some(Inbound::Feed(FeedStatus::Connected { venue, .. })) => {
                tracing::info!(venue = venue.as_str(), "feed connected")
            }
            None => {}
        }
        for a in actions.drain(..) {
            let t = Instant::now();
            persist(&store, &a)?;
            let intent_write = t.elapsed();
            match a {
                Action::Place(record) => {
                    let cmd = RouterCmd::Place {
                        record,
                        origin,
                        intent_write,
                    };
                    if router_tx.send(cmd).await.is_err() {
                        tracing::error!("order router stopped");
                    }
                    // The router sends the request before anything else here is done (journal, logs).
                    tokio::task::yield_now().await;
                }
                Action::Cancel { client_id, symbol } => {
                    let _ = router_tx
                        .send(RouterCmd::Cancel { client_id, symbol })
                        .await;
                }
                _ => {}
            }
        }
        // The decision's journal entry, now that its order is on its way.
        engine.flush_journal(&mut actions);
        for a in actions.drain(..) {
            persist(&store, &a)?;
        }
        if let Some(t) = stopping {
            // Done when nothing is in flight (and flat, when flattening) or after a grace period.
            let settled = engine.pending().is_none()
                && (!opts.flatten_on_exit || engine.position().is_flat());
            if settled || tokio::time::Instant::now() >= t {
                if !settled {
                    tracing::warn!("shutdown grace period over with an order in flight; it stays in the store and is reconciled at the next start");
                }
                break;
            }
        }
    }

    cancel.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    store.flush()?;
    let exchange_position_qty = rest.position_risk(Some(&symbol)).await.ok().map(|ps| {
        ps.iter()
            .filter(|p| p.symbol == symbol)
            .map(|p| p.qty)
            .sum::<Decimal>()
    });
    if let Some(l) = ep.local {
        l.shutdown().await;
    }
    let fills = store.fills()?;
    let es = engine.stats();
    let rule_counts = engine.rule_counts();

    Ok(LiveSummary {
        state_dir,
        events: es.events,
        orders: es.orders,
        fills: es.fills,
        denials: es.denials,
        rejects: es.rejects,
        stats: TradeStats::from_fills(&fills),
        realized_pnl: engine.position().realized_pnl,
        position_qty: engine.position().qty,
        exchange_position_qty,
        rule_counts,
        latency: latency.total.summary(),
        latency_processing: latency.processing.summary(),
        feed_reconnects: reconnects,
        elapsed_s: started.elapsed().as_secs_f64(),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Stops entries (and flattens when asked); returns the deadline for orders in flight to settle.
fn begin_shutdown(
    engine: &mut Engine,
    opts: &LiveOptions,
    clock: &Clock,
    out: &mut Vec<Action>,
) -> tokio::time::Instant {
    let c = if opts.flatten_on_exit {
        Control::Flatten
    } else {
        Control::StopEntries
    };
    engine.on_event(&Event::Control(c, clock()), out);
    tokio::time::Instant::now() + Duration::from_secs(10)
}

/// One status line: premium, position, unrealised PnL, feed health.
fn status_line(engine: &Engine, now: i64) {
    let m = engine.market();
    let premium = match (m.spot, m.perp) {
        (Some(s), Some(p)) => {
            let sm = (s.bid + s.ask) / Decimal::TWO;
            let pm = (p.bid + p.ask) / Decimal::TWO;
            if pm.is_zero() {
                String::from("-")
            } else {
                format!(
                    "{:.2}",
                    ((sm - pm) / pm * Decimal::from(10_000)).round_dp(2)
                )
            }
        }
        _ => String::from("-"),
    };
    let age = |ts: Option<i64>| {
        ts.map(|t| format!("{}ms", (now - t).max(0) / NS_PER_MS))
            .unwrap_or_else(|| "-".into())
    };
    let pos = engine.position();
    tracing::info!(
        premium_bps = %premium,
        position = %pos.qty,
        entry = %pos.entry_price,
        upnl = %engine.unrealized_pnl().round_dp(4),
        realized = %pos.realized_pnl.round_dp(4),
        spot_age = %age(m.spot_ts),
        perp_age = %age(m.perp_ts),
        state = engine.trading_state().as_str(),
        "status"
    );
}

/// `dir/run-<UTC time>` (a new folder per local run).
fn fresh_subdir(dir: &std::path::Path) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut p = dir.join(format!("run-{}", now.as_millis()));
    let mut i = 2;
    while p.exists() {
        p = dir.join(format!("run-{}-{i}", now.as_millis()));
        i += 1;
    }
    p
}
