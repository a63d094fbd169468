//! The live trader, step by step: [`LiveTrader::start`] (start-up), [`LiveTrader::run`] (spawn the tasks, then one
//! loop that handles each inbound event and executes the engine's actions), and the shutdown that ends it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::latency::{Latencies, OrderStamps};
use super::local::{endpoints, Endpoints};
use super::router::{run_router, RouterCmd};
use super::{startup, Inbound, LiveError, LiveOptions, LiveSummary, EVENT_CHANNEL};
use crate::binance::feed::{spawn_feed, FeedConfig, FeedStatus};
use crate::binance::rest::RestClient;
use crate::binance::routing::Route;
use crate::binance::user_stream::{spawn_user_stream, UserStreamConfig};
use crate::binance::user_wire::{UserEvent, STREAM_CONNECTED};
use crate::clock::Clock;
use crate::engine::{Action, Control, Engine, Event};
use crate::local_exchange::ReplayPhase;
use crate::model::{Venue, NS_PER_MS};
use crate::persist::{persist, persist_intent, PersistError};
use crate::report::TradeStats;
use crate::store::{BackgroundFlush, EndedHow, Store};

/// How long orders in flight may take to settle once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Feed connection counts and which feeds are down.
#[derive(Debug, Default, Clone)]
struct Feeds {
    /// Per connection (spot, perp book data, perp `/market` data): connected at least once, and down now.
    ever_up: [bool; 3],
    down: [bool; 3],
    /// A connection attempt failed since the feed was last up (the outage is logged once).
    failing: [bool; 3],
    disconnects: u64,
    reconnects: u64,
    connect_failures: u64,
    /// Streams that went silent on a live connection (the latest warning per stream), for status and summary.
    silent_streams: Vec<(String, String)>,
}

/// The connection a feed status is about: spot, the perp's book data (routed `/public`, or the one legacy
/// connection) or the perp's routed `/market` data (mark price, liquidations).
fn slot(v: Venue, route: Option<Route>) -> usize {
    match (v, route) {
        (Venue::Spot, _) => 0,
        (Venue::Perp, Some(Route::Market)) => 2,
        (Venue::Perp, _) => 1,
    }
}

/// Only the quote-carrying connections gate entries: without mark prices a strategy's `mark_price` is merely stale.
fn carries_quotes(slot: usize) -> bool {
    slot < 2
}

/// A started live run: the engine reconciled with the exchange, ready to trade.
pub struct LiveTrader {
    opts: LiveOptions,
    ep: Endpoints,
    clock: Clock,
    rest: RestClient,
    store: Store,
    state_dir: PathBuf,
    engine: Engine,
    symbol: String,
    latency: Latencies,
    /// The engine's actions, reused from event to event.
    actions: Vec<Action>,
    /// The fsync of the last intent, running while its request is in flight (`sync_intents = false`).
    intent_flush: Option<BackgroundFlush>,
    /// The intents' encoding buffer, reused from order to order.
    intent_buf: Vec<u8>,
    feeds: Feeds,
}

/// The tasks of a running trader and the channels to them.
struct Tasks {
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
    rx: mpsc::Receiver<Inbound>,
    router: mpsc::Sender<RouterCmd>,
}

impl LiveTrader {
    /// Start-up: endpoints, the store, the exchange's rules and account checks, reconciliation.
    pub async fn start(opts: LiveOptions) -> Result<LiveTrader, LiveError> {
        let cfg = &opts.config;
        let strategy = crate::strategy::load_file(&cfg.strategy)?;
        let symbol = strategy.symbol.clone();
        let ep = endpoints(cfg, &symbol, opts.credentials.as_ref()).await?;
        let clock = opts.clock.clone().unwrap_or_else(|| ep.clock.clone());
        banner(&opts, &strategy, &ep);
        let (store, state_dir) = startup::open_store(&opts, &strategy, &ep, clock())?;
        let rest = startup::rest_client(&opts, &ep, &store).await?;
        let filters = startup::account_checks(&rest, &opts, &symbol).await?;
        let engine = startup::engine(&opts, strategy, filters, &rest, &store, clock()).await?;
        Ok(LiveTrader {
            opts,
            ep,
            clock,
            rest,
            store,
            state_dir,
            engine,
            symbol,
            latency: Latencies::default(),
            actions: Vec::with_capacity(16),
            intent_flush: None,
            intent_buf: Vec::with_capacity(512),
            feeds: Feeds::default(),
        })
    }

    /// Trades until shutdown; returns the run's summary.
    pub async fn run(mut self, started: Instant) -> Result<LiveSummary, LiveError> {
        let mut tasks = self.spawn_tasks();
        let r = self.event_loop(&mut tasks).await;
        let how = r.as_ref().map_or(EndedHow::Error, |how| *how);
        let summary = self.shutdown(tasks, started, how).await;
        r?;
        summary
    }

    /// Feeds, user-data stream (forwarded into the one ordered channel), time resync and order router.
    fn spawn_tasks(&self) -> Tasks {
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel::<Inbound>(EVENT_CHANNEL);
        let (router_tx, router_rx) = mpsc::channel::<RouterCmd>(64);
        let mut handles = Vec::new();
        let silence = Duration::from_nanos(self.opts.config.feeds.silence_timeout_ns.max(1) as u64);
        for fc in [
            FeedConfig::spot(
                self.ep.spot_ws_url.clone(),
                &self.engine.strategy().spot_symbol,
            ),
            FeedConfig::perp(self.ep.futures_ws_url.clone(), &self.symbol),
        ] {
            let fc = FeedConfig {
                silence_timeout: silence,
                routing: self.opts.config.feeds.futures_routing,
                stream_silence: Duration::from_nanos(
                    self.opts.config.feeds.stream_silence_ns.max(1) as u64,
                ),
                ..fc
            };
            let (clock, tx) = (self.clock.clone(), tx.clone());
            handles.push(spawn_feed(fc, clock, tx, None, cancel.clone()));
        }
        let (user_tx, user_rx) = mpsc::channel::<UserEvent>(1024);
        let user_cfg = UserStreamConfig {
            routing: self.opts.config.feeds.user_stream_routing,
            ..UserStreamConfig::new(self.ep.user_ws_url.clone())
        };
        handles.push(spawn_user_stream(
            self.rest.clone(),
            user_cfg,
            user_tx,
            cancel.clone(),
        ));
        handles.push(tokio::spawn(forward_user(
            user_rx,
            tx.clone(),
            cancel.clone(),
        )));
        handles.push(tokio::spawn(resync_time(self.rest.clone(), cancel.clone())));
        let (rest, clock) = (self.rest.clone(), self.clock.clone());
        handles.push(tokio::spawn(run_router(
            rest,
            router_rx,
            tx,
            clock,
            cancel.clone(),
        )));
        Tasks {
            cancel,
            handles,
            rx,
            router: router_tx,
        }
    }

    /// Handles inbound events until shutdown has settled (or every sender is gone); returns how the run ended.
    async fn event_loop(&mut self, tasks: &mut Tasks) -> Result<EndedHow, LiveError> {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now();
        let stop = stop_requested(
            self.opts.shutdown.clone(),
            self.ep.local.as_ref().map(|l| l.replay.clone()),
            self.opts.max_duration,
        );
        tokio::pin!(stop);
        let mut stopping: Option<tokio::time::Instant> = None;
        let mut how = EndedHow::Clean;
        loop {
            let msg = tokio::select! {
                biased;
                (why, ended) = &mut stop, if stopping.is_none() => {
                    tracing::info!(reason = why, "stopping entries and shutting down");
                    how = ended;
                    stopping = Some(self.begin_shutdown());
                    None
                }
                m = tasks.rx.recv() => match m { Some(m) => Some(m), None => break },
                _ = tick.tick() => {
                    self.engine.on_event(&Event::Clock((self.clock)()), &mut self.actions);
                    if last_status.elapsed() >= Duration::from_secs(5) {
                        last_status = Instant::now();
                        self.status_line();
                    }
                    None
                }
            };
            let origin = match msg {
                Some(m) => self.handle_inbound(m, &tasks.router).await?,
                None => None,
            };
            self.execute_actions(origin, &tasks.router).await?;
            if stopping.is_some_and(|t| self.settled(t)) {
                break;
            }
        }
        Ok(how)
    }

    /// One inbound event into the engine. Returns the instants of the event's order path (received, at the
    /// engine, decided) when a market event decided something.
    async fn handle_inbound(
        &mut self,
        msg: Inbound,
        router: &mpsc::Sender<RouterCmd>,
    ) -> Result<Option<(Instant, Instant, Instant)>, LiveError> {
        match msg {
            Inbound::Market(ev, t) => {
                let at_engine = Instant::now();
                self.engine.on_event(&Event::Market(ev), &mut self.actions);
                if !self.actions.is_empty() {
                    return Ok(Some((t, at_engine, Instant::now())));
                }
            }
            Inbound::Order(u) => self.apply_order(u).await?,
            Inbound::User(UserEvent::Order(u)) if u.symbol == self.symbol => {
                self.apply_order(u).await?
            }
            Inbound::User(UserEvent::Account { positions, .. }) => {
                for p in positions.iter().filter(|p| p.symbol == self.symbol) {
                    if p.qty != self.engine.position().qty && self.engine.pending().is_none() {
                        tracing::warn!(exchange = %p.qty, local = %self.engine.position().qty, "ACCOUNT_UPDATE position differs from premia's");
                    }
                }
            }
            Inbound::User(UserEvent::Other(STREAM_CONNECTED)) => {
                // The stream was (re)connected: anything it missed about the order in flight is asked for.
                if let Some(p) = self.engine.pending() {
                    let cmd = RouterCmd::Query {
                        client_id: p.request.client_id.clone(),
                        symbol: p.request.symbol.clone(),
                    };
                    let _ = router.send(cmd).await;
                }
            }
            Inbound::User(other) => tracing::debug!(event = ?other, "user-data event"),
            Inbound::Feed(status) => self.feed_status(status),
        }
        Ok(None)
    }

    /// An order's outcome, applied once its intent is on disk.
    async fn apply_order(&mut self, u: crate::model::OrderUpdate) -> Result<(), LiveError> {
        settle_intent_flush(&mut self.intent_flush, &self.latency).await?;
        // Its log lines (fills) carry the market time (a replay's, or the wall clock).
        let now = (self.clock)();
        let rejected = u.state == crate::model::OrderState::Rejected;
        let span = tracing::info_span!("order", market_ts = now);
        span.in_scope(|| self.engine.on_event(&Event::Order(u), &mut self.actions));
        // Refused because the exchange's rate-limit or ban window is open: nothing is decided until it closes (in
        // the engine's time; a faster replay ends the hold early, and the client's gate still sends nothing).
        if let Some(wait) = self.rest.blocked_for().filter(|_| rejected) {
            let until = now.saturating_add(wait.as_nanos().min(i64::MAX as u128) as i64);
            let hold = Event::Control(Control::HoldUntil(until), now);
            self.engine.on_event(&hold, &mut self.actions);
        }
        Ok(())
    }

    /// A feed went down or came back: the engine hears it (DEGRADED while a quote feed is down) and it is counted.
    fn feed_status(&mut self, status: FeedStatus) {
        let market_ts = (self.clock)();
        match status {
            FeedStatus::Disconnected {
                venue,
                route,
                reason,
                ts,
            } => {
                let i = slot(venue, route);
                self.feeds.disconnects += 1;
                self.feeds.down[i] = true;
                tracing::warn!(
                    venue = venue.as_str(),
                    route = route.map(|r| r.path()),
                    ?reason,
                    market_ts,
                    "feed disconnected; reconnecting"
                );
                if carries_quotes(i) {
                    self.engine
                        .on_event(&Event::FeedDown(venue, ts), &mut self.actions);
                }
            }
            FeedStatus::ConnectFailed {
                venue,
                route,
                ts,
                error,
            } => {
                let i = slot(venue, route);
                self.feeds.connect_failures += 1;
                if !self.feeds.failing[i] {
                    // Once per outage, not per attempt.
                    self.feeds.failing[i] = true;
                    tracing::warn!(venue = venue.as_str(), route = route.map(|r| r.path()), %error, market_ts, "feed cannot connect; retrying with back-off (logged again when it connects)");
                }
                if !self.feeds.down[i] {
                    self.feeds.down[i] = true;
                    if carries_quotes(i) {
                        self.engine
                            .on_event(&Event::FeedDown(venue, ts), &mut self.actions);
                    }
                }
            }
            FeedStatus::Connected { venue, route, ts } => {
                let i = slot(venue, route);
                if self.feeds.ever_up[i] {
                    self.feeds.reconnects += 1;
                }
                self.feeds.ever_up[i] = true;
                self.feeds.down[i] = false;
                self.feeds.failing[i] = false;
                tracing::info!(
                    venue = venue.as_str(),
                    route = route.map(|r| r.path()),
                    market_ts,
                    "feed connected"
                );
                if carries_quotes(i) {
                    self.engine
                        .on_event(&Event::FeedUp(venue, ts), &mut self.actions);
                }
            }
            ref s @ FeedStatus::StreamSilent { ref stream, .. } => {
                // The feed task has logged the warning; status and summary keep showing it.
                if let Some(w) = s.warning() {
                    match self
                        .feeds
                        .silent_streams
                        .iter_mut()
                        .find(|(st, _)| st == stream)
                    {
                        Some(entry) => entry.1 = w,
                        None => self.feeds.silent_streams.push((stream.clone(), w)),
                    }
                }
            }
        }
    }

    /// Persists every action (an intent before its order is sent), sends orders and cancels, then the decision's
    /// journal entry.
    async fn execute_actions(
        &mut self,
        origin: Option<(Instant, Instant, Instant)>,
        router: &mpsc::Sender<RouterCmd>,
    ) -> Result<(), LiveError> {
        let mut actions = std::mem::take(&mut self.actions);
        for a in actions.drain(..) {
            match a {
                Action::Place(record) => self.place(record, origin, router).await?,
                Action::Cancel { client_id, symbol } => {
                    let _ = router.send(RouterCmd::Cancel { client_id, symbol }).await;
                }
                a => persist(&self.store, &a)?,
            }
        }
        // The decision's journal entry, now that its order is on its way (its log line carries the market time;
        // a span only for events that acted, never on the plain per-event path).
        if origin.is_some() {
            let span = tracing::info_span!("decision", market_ts = (self.clock)());
            span.in_scope(|| self.engine.flush_journal(&mut actions));
        } else {
            self.engine.flush_journal(&mut actions);
        }
        for a in actions.drain(..) {
            persist(&self.store, &a)?;
        }
        self.actions = actions;
        Ok(())
    }

    /// One order: intent in the store (fsynced first with `sync_intents`), request signed and handed to the HTTP
    /// client here on the engine task, then to the router to wait for its outcome.
    async fn place(
        &mut self,
        record: crate::model::OrderRecord,
        origin: Option<(Instant, Instant, Instant)>,
        router: &mpsc::Sender<RouterCmd>,
    ) -> Result<(), LiveError> {
        let index = persist_intent(&self.store, &record, &mut self.intent_buf)?;
        let intent_at = Instant::now();
        let mut fsync = Duration::ZERO;
        let sync_intents = self.opts.config.sync_intents;
        if sync_intents {
            let t = Instant::now();
            self.store.flush()?;
            fsync = t.elapsed();
            self.latency.fsync.record(fsync);
        }
        let mut started = self.rest.start_order(&record.request);
        if let Ok(s) = &mut started {
            s.hand_over().await;
            if let Some((received, engine, decided)) = origin {
                let stamps = OrderStamps {
                    received,
                    engine,
                    decided,
                    intent: intent_at,
                };
                self.latency.record_order(&stamps, s.written, fsync);
            }
        }
        if router
            .send(RouterCmd::Place { record, started })
            .await
            .is_err()
        {
            tracing::error!("order router stopped");
        }
        // The HTTP connection writes the request before anything else here is done (index, fsync, journal, logs).
        tokio::task::yield_now().await;
        if let Some(p) = index {
            self.store.index_intent(p).map_err(|source| PersistError {
                what: "order index entry",
                source,
            })?;
        }
        if !sync_intents {
            // One flush in flight at a time (the engine has one order in flight).
            settle_intent_flush(&mut self.intent_flush, &self.latency).await?;
            self.intent_flush = Some(self.store.flush_in_background());
        }
        Ok(())
    }

    /// Stops entries (and flattens when asked); returns the deadline for orders in flight to settle.
    fn begin_shutdown(&mut self) -> tokio::time::Instant {
        let c = if self.opts.flatten_on_exit {
            Control::Flatten
        } else {
            Control::StopEntries
        };
        self.engine
            .on_event(&Event::Control(c, (self.clock)()), &mut self.actions);
        tokio::time::Instant::now() + SHUTDOWN_GRACE
    }

    /// Done stopping: nothing in flight (and flat, when flattening), or the grace period is over.
    fn settled(&self, deadline: tokio::time::Instant) -> bool {
        let settled = self.engine.pending().is_none()
            && (!self.opts.flatten_on_exit || self.engine.position().is_flat());
        if !settled && tokio::time::Instant::now() >= deadline {
            tracing::warn!("shutdown grace period over with an order in flight; it stays in the store and is reconciled at the next start");
            return true;
        }
        settled
    }

    /// Stops the tasks, flushes the store, asks the exchange for the final position and builds the summary.
    async fn shutdown(
        mut self,
        tasks: Tasks,
        started: Instant,
        how: EndedHow,
    ) -> Result<LiveSummary, LiveError> {
        tasks.cancel.cancel();
        drop(tasks.rx);
        for mut t in tasks.handles {
            if tokio::time::timeout(Duration::from_secs(3), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        settle_intent_flush(&mut self.intent_flush, &self.latency).await?;
        self.store.finish_run((self.clock)(), None, how)?;
        self.store.flush()?;
        let exchange_position_qty = tokio::time::timeout(
            Duration::from_secs(5),
            self.rest.position_risk(Some(&self.symbol)),
        )
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|ps| {
            ps.iter()
                .filter(|p| p.symbol == self.symbol)
                .map(|p| p.qty)
                .sum::<Decimal>()
        });
        if let Some(l) = self.ep.local.take() {
            l.shutdown().await;
        }
        // The store's last user besides this one: the state dir is free once the trader is gone.
        self.rest.on_block(None);
        self.summary(exchange_position_qty, started)
    }

    fn summary(
        &self,
        exchange_position_qty: Option<Decimal>,
        started: Instant,
    ) -> Result<LiveSummary, LiveError> {
        let fills = self.store.fills()?;
        let es = self.engine.stats();
        let l = &self.latency;
        Ok(LiveSummary {
            state_dir: self.state_dir.clone(),
            events: es.events,
            orders: es.orders,
            fills: es.fills,
            denials: es.denials,
            rejects: es.rejects,
            stats: TradeStats::from_fills(&fills),
            realized_pnl: self.engine.position().realized_pnl,
            position_qty: self.engine.position().qty,
            exchange_position_qty,
            rule_counts: self.engine.rule_counts(),
            latency: l.total.summary(),
            latency_processing: l.processing.summary(),
            intent_fsync: l.fsync.summary(),
            latency_stages: l.stage_summaries(),
            sync_intents: self.opts.config.sync_intents,
            feed_disconnects: self.feeds.disconnects,
            feed_reconnects: self.feeds.reconnects,
            feed_connect_failures: self.feeds.connect_failures,
            stream_warnings: self
                .feeds
                .silent_streams
                .iter()
                .map(|(_, w)| w.clone())
                .collect(),
            final_state: self.engine.trading_state().as_str(),
            elapsed_s: started.elapsed().as_secs_f64(),
            peak_rss_kb: super::peak_rss_kb(),
        })
    }

    /// One status line: premium, position, unrealised PnL, feed health, the trading state.
    fn status_line(&self) {
        let now = (self.clock)();
        let m = self.engine.market();
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
        let names = ["spot", "perp", "perp /market"];
        let down: Vec<&str> = (0..3)
            .filter(|&i| self.feeds.down[i])
            .map(|i| names[i])
            .collect();
        let feeds = if down.is_empty() {
            String::from("up")
        } else {
            format!("{} DOWN", down.join(", "))
        };
        let silent: Vec<&str> = self
            .feeds
            .silent_streams
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        let pos = self.engine.position();
        tracing::info!(
            market_ts = now,
            premium_bps = %premium,
            position = %pos.qty,
            entry = %pos.entry_price,
            upnl = %self.engine.unrealized_pnl().round_dp(4),
            realized = %pos.realized_pnl.round_dp(4),
            spot_age = %age(m.spot_ts),
            perp_age = %age(m.perp_ts),
            feeds = %feeds,
            silent_streams = %silent.join(","),
            state = self.engine.trading_state().as_str(),
            "status"
        );
    }
}

/// Resolves with the reason the run should stop and how the run record says it ended: the caller's shutdown (`main`
/// cancels it on SIGINT/SIGTERM), the end of a local replay, `max_duration`.
async fn stop_requested(
    shutdown: CancellationToken,
    replay: Option<tokio::sync::watch::Receiver<crate::local_exchange::ReplayStatus>>,
    max_duration: Option<Duration>,
) -> (&'static str, EndedHow) {
    let replay_done = async move {
        match replay {
            Some(mut w) => {
                let _ = w.wait_for(|s| s.phase == ReplayPhase::Finished).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let deadline = async {
        match max_duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => ("shutdown requested", EndedHow::Signal),
        _ = replay_done => ("the recording has been replayed to its end", EndedHow::Clean),
        _ = deadline => ("the run's time limit is reached", EndedHow::Clean),
    }
}

/// Forwards user-data events into the one ordered channel.
async fn forward_user(
    mut user_rx: mpsc::Receiver<UserEvent>,
    tx: mpsc::Sender<Inbound>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = user_rx.recv() => match ev {
                Some(ev) => if tx.send(Inbound::User(ev)).await.is_err() { break },
                None => break,
            }
        }
    }
}

/// Keeps the server-time offset fresh off the order path (orders do not wait for a resync).
async fn resync_time(rest: RestClient, cancel: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => rest.resync_if_due().await,
        }
    }
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

/// The start-up banner: strategy, data, exchange, speed.
fn banner(opts: &LiveOptions, strategy: &crate::strategy::Strategy, ep: &Endpoints) {
    let cfg = &opts.config;
    let local = ep.local.is_some();
    tracing::info!(
        strategy = %strategy.name,
        strategy_file = %strategy.source.display(),
        symbol = %strategy.symbol,
        exchange = if local { "local (embedded)" } else { "binance" },
        rest_url = %ep.rest_url,
        data = %if local { cfg.local.data.join(", ") } else { format!("live feeds {} / {}", ep.spot_ws_url, ep.futures_ws_url) },
        speed = %if local { format!("{}x", cfg.local.speed) } else { "real time".into() },
        state_dir = %cfg.state_dir.display(),
        "premia run starting"
    );
}
