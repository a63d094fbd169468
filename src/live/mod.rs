//! `premia run`: the live trader. Feeds, the user-data stream and the order router are async tasks that talk to the
//! one engine task over a single bounded, ordered event channel; the engine is the same one backtests run.
//!
//! Start-up order: exchange rules and account checks → the store → reconciliation with the exchange (the exchange
//! wins) → feeds and user stream → trading. Shutdown (Ctrl-C, end of a local replay): stop entries, optionally
//! flatten, wait for the order in flight, flush the store, close sockets, print a summary.
//!
//! Order intents: an intent is written to the store before its order is sent. With `storage.sync_intents = true`
//! it is also fsynced before the send; by default its fsync runs on a blocking thread while the request is in
//! flight and is awaited before the order's outcome (REST response or user-data event) is applied.
//!
//! The embedded local exchange (mode `local`) runs on its own thread and runtime, so that its replay and request
//! handling never queue in front of the bot's tasks.

pub mod latency;
pub mod reconcile;
pub mod router;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::binance::error::BinanceError;
use crate::binance::feed::{spawn_feed, FeedConfig, FeedStatus, Received};
use crate::binance::rest::{PositionMode, RestClient, RestConfig};
use crate::binance::sign::Credentials;
use crate::binance::user_stream::{spawn_user_stream, UserStreamConfig};
use crate::binance::user_wire::{UserEvent, STREAM_CONNECTED};
use crate::clock::Clock;
use crate::config::{Config, ExchangeMode};
use crate::engine::{Action, Control, Engine, Event};
use crate::local_exchange::{ReplayPhase, ReplayStatus};
use crate::market::MarketEvent;
use crate::model::NS_PER_MS;
use crate::persist::{persist, persist_intent, PersistError};
use crate::report::TradeStats;
use crate::store::{BackgroundFlush, Durability, RunKind, RunMeta, Store};
use latency::{Latencies, LatencySummary, OrderStamps, StageSummaries};
use router::{run_router, RouterCmd};

/// Capacity of the engine's event channel. Feeds wait (back-pressure) rather than drop when the engine lags.
pub const EVENT_CHANNEL: usize = 8192;

/// Everything the engine task receives, in one ordered channel.
#[derive(Debug)]
pub enum Inbound {
    /// A market event and when its frame was received, before parsing (monotonic, for the latency histogram).
    Market(MarketEvent, Instant),
    Feed(FeedStatus),
    User(UserEvent),
    Order(crate::model::OrderUpdate),
}

impl From<Received> for Inbound {
    fn from(r: Received) -> Self {
        Inbound::Market(r.event, r.at)
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
    /// Set when the embedded local exchange runs (on its own thread).
    local: Option<LocalThread>,
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
                clock: crate::clock::system_clock(),
                local: None,
            })
        }
        ExchangeMode::Local => {
            let (ex, info) = start_local_exchange(cfg, symbol).await?;
            Ok(Endpoints {
                rest_url: info.rest_url,
                user_ws_url: info.user_ws_url,
                spot_ws_url: if cfg.feeds.spot_ws_url.is_empty() {
                    info.spot_ws_url
                } else {
                    cfg.feeds.spot_ws_url.clone()
                },
                futures_ws_url: if cfg.feeds.futures_ws_url.is_empty() {
                    info.futures_ws_url
                } else {
                    cfg.feeds.futures_ws_url.clone()
                },
                creds: Credentials::new(info.keys.api_key.clone(), info.keys.secret.clone()),
                clock: info.clock,
                local: Some(ex),
            })
        }
    }
}

/// The embedded local exchange, running on its own thread and current-thread runtime: its replay pacing, websocket
/// fan-out and order handling then never queue in front of the bot's feeds, engine and router. Dropping this stops
/// the exchange too.
struct LocalThread {
    replay: tokio::sync::watch::Receiver<ReplayStatus>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// Closed when the thread has stopped the exchange and ended.
    done: tokio::sync::oneshot::Receiver<()>,
}

impl LocalThread {
    /// Stops the server, the replay and every websocket, and waits for the thread.
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// What the bot needs to know about the embedded exchange.
struct LocalInfo {
    rest_url: String,
    user_ws_url: String,
    spot_ws_url: String,
    futures_ws_url: String,
    keys: crate::local_exchange::ApiKeyPair,
    clock: Clock,
}

/// Starts the embedded local exchange from the config's `[local]`, `[fees]` and `[filters]`, on its own thread.
async fn start_local_exchange(
    cfg: &Config,
    symbol: &str,
) -> Result<(LocalThread, LocalInfo), LiveError> {
    use crate::local_exchange::{LocalExchange, LocalExchangeConfig};
    use tokio::sync::{oneshot, watch};
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
        // The feeds' legacy mode needs the old paths served; routed and auto work against mainnet routing.
        legacy_routing: cfg.feeds.futures_routing == crate::binance::routing::Routing::Legacy,
        ..LocalExchangeConfig::default()
    };
    type Ready = Result<(LocalInfo, watch::Receiver<ReplayStatus>), LiveError>;
    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("local-exchange".into())
        .spawn(move || {
            // Dropped last, when the exchange has stopped and its runtime is gone.
            let _done = done_tx;
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(LiveError::Startup(format!(
                        "cannot start the local exchange's runtime: {e}"
                    ))));
                    return;
                }
            };
            rt.block_on(async move {
                let ex = match LocalExchange::start(lcfg).await {
                    Ok(ex) => ex,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let info = LocalInfo {
                    rest_url: ex.rest_url(),
                    user_ws_url: ex.user_ws_url(),
                    spot_ws_url: ex.spot_ws_url(),
                    futures_ws_url: ex.futures_ws_url(),
                    keys: ex.keys().clone(),
                    clock: ex.clock(),
                };
                if ready_tx.send(Ok((info, ex.replay_watch()))).is_ok() {
                    // Until asked to stop, or until the bot's side is gone (an error ended the run).
                    let _ = stop_rx.await;
                }
                ex.shutdown().await;
            });
        })
        .map_err(|e| {
            LiveError::Startup(format!("cannot start the local exchange's thread: {e}"))
        })?;
    let (info, replay) = ready_rx.await.map_err(|_| {
        LiveError::Startup("the local exchange's thread ended before it started".into())
    })??;
    Ok((
        LocalThread {
            replay,
            stop: stop_tx,
            done: done_rx,
        },
        info,
    ))
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
    // Intents are flushed here: before the send (sync_intents) or overlapping the request in flight.
    let sync_intents = cfg.sync_intents;
    let store = Store::open_with(&state_dir, Durability::Deferred)?;
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
    let mut engine = Engine::new(strategy, cfg.engine_config(&client_id_prefix(now_ms)));
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
            routing: cfg.feeds.futures_routing,
            stream_silence: Duration::from_nanos(cfg.feeds.stream_silence_ns.max(1) as u64),
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
        UserStreamConfig {
            routing: cfg.feeds.user_stream_routing,
            ..UserStreamConfig::new(ep.user_ws_url.clone())
        },
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
    {
        // Keeps the server-time offset fresh off the order path (orders do not wait for a resync).
        let rest = rest.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = every.tick() => rest.resync_if_due().await,
                }
            }
        }));
    }
    tasks.push(tokio::spawn(run_router(
        rest.clone(),
        router_rx,
        tx.clone(),
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
    let replay_watch = ep.local.as_ref().map(|l| l.replay.clone());
    let replay_done = async move {
        match replay_watch {
            Some(mut w) => {
                let _ = w.wait_for(|s| s.phase == ReplayPhase::Finished).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(replay_done);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // Created once, not per event: polling them is then cheap on the event path.
    let shutdown_requested = opts.shutdown.cancelled();
    tokio::pin!(shutdown_requested);
    let deadline_passed = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline_passed);
    // The fsync of the last intent, running while its request is in flight (sync_intents = false).
    let mut intent_flush: Option<BackgroundFlush> = None;
    // The intents' encoding buffer, reused from order to order.
    let mut intent_buf: Vec<u8> = Vec::with_capacity(512);
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut ctrl_c, if stopping.is_none() => {
                tracing::info!("Ctrl-C: stopping entries and shutting down");
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            _ = &mut shutdown_requested, if stopping.is_none() => {
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            _ = &mut replay_done, if stopping.is_none() => {
                tracing::info!("the recording has been replayed to its end");
                stopping = Some(begin_shutdown(&mut engine, &opts, &clock, &mut actions));
                None
            }
            _ = &mut deadline_passed, if stopping.is_none() => {
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
        // The instants of the event's order path, when it decides an order (received, engine, decided).
        let mut origin = None;
        match msg {
            Some(Inbound::Market(ev, t)) => {
                let at_engine = Instant::now();
                engine.on_event(&Event::Market(ev), &mut actions);
                if !actions.is_empty() {
                    origin = Some((t, at_engine, Instant::now()));
                }
            }
            Some(Inbound::Order(u)) => {
                // The order's intent is on disk before its outcome is applied.
                settle_intent_flush(&mut intent_flush, &latency).await?;
                engine.on_event(&Event::Order(u), &mut actions);
            }
            Some(Inbound::User(UserEvent::Order(u))) if u.symbol == engine.strategy().symbol => {
                settle_intent_flush(&mut intent_flush, &latency).await?;
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
            // The feed has logged the warning; status and summary do not show it yet.
            Some(Inbound::Feed(FeedStatus::StreamSilent { .. })) => {}
            None => {}
        }
        for a in actions.drain(..) {
            // The intent (like every action) is in the store before the order is sent.
            let mut index = None;
            match &a {
                Action::Place(record) => index = persist_intent(&store, record, &mut intent_buf)?,
                a => persist(&store, a)?,
            }
            match a {
                Action::Place(record) => {
                    let intent_at = Instant::now();
                    let mut fsync = Duration::ZERO;
                    if sync_intents {
                        let t = Instant::now();
                        store.flush()?;
                        fsync = t.elapsed();
                        latency.fsync.record(fsync);
                    }
                    // Signed and handed to the HTTP client here, on the engine task (no hop to the router first);
                    // the router waits for the response.
                    let mut started = rest.start_order(&record.request);
                    if let Ok(s) = &mut started {
                        s.hand_over().await;
                        if let Some((received, engine, decided)) = origin {
                            let stamps = OrderStamps {
                                received,
                                engine,
                                decided,
                                intent: intent_at,
                            };
                            latency.record_order(&stamps, s.written, fsync);
                        }
                    }
                    if router_tx
                        .send(RouterCmd::Place { record, started })
                        .await
                        .is_err()
                    {
                        tracing::error!("order router stopped");
                    }
                    // The HTTP connection writes the request before anything else here is done (index, fsync,
                    // journal, logs).
                    tokio::task::yield_now().await;
                    if let Some(p) = index {
                        store.index_intent(p).map_err(|source| PersistError {
                            what: "order index entry",
                            source,
                        })?;
                    }
                    if !sync_intents {
                        // One flush in flight at a time (the engine has one order in flight).
                        settle_intent_flush(&mut intent_flush, &latency).await?;
                        intent_flush = Some(store.flush_in_background());
                    }
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
    settle_intent_flush(&mut intent_flush, &latency).await?;
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
        intent_fsync: latency.fsync.summary(),
        latency_stages: latency.stage_summaries(),
        sync_intents,
        feed_reconnects: reconnects,
        elapsed_s: started.elapsed().as_secs_f64(),
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Waits for the background fsync of the last intent, if one is running, and records how long it took.
async fn settle_intent_flush(
    pending: &mut Option<BackgroundFlush>,
    latency: &Latencies,
) -> Result<(), LiveError> {
    if let Some(f) = pending.take() {
        latency.fsync.record(f.wait().await?);
    }
    Ok(())
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
