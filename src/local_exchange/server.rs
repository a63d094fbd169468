//! The running exchange: shared state (account, listen keys, faults, channels), the axum router, start-up and the
//! handle tests and `premia run` use to reach it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::account::{Account, ExecType, Execution};
use super::config::{ApiKeyPair, LocalExchangeConfig};
use super::error::LocalExchangeError;
use super::history::History;
use super::market::MarketData;
use super::recording::{Recording, SharedFrame};
use super::{render, replay, rest, rest_account, rest_market, streams, ws};
use crate::binance::user_wire::ListenKeyExpired;
use crate::binance::wire::encode;
use crate::model::{Decimal, TsNs, NS_PER_MS};

/// Faults the integration tests inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next `POST /fapi/v1/order` is placed, but its HTTP response is withheld (until shutdown): the client
    /// times out and must resolve the order by client id.
    DropNextOrderResponse,
    /// The next `POST /fapi/v1/order` is placed, and answered with HTTP 503 (execution status unknown).
    Http5xxNextOrder,
    /// The next `POST /fapi/v1/order` is NOT placed, and answered with HTTP 503.
    Http5xxNextOrderNotPlaced,
    /// Close every open market-stream websocket once (clients must reconnect).
    DropMarketStreams,
    /// Expire every issued listen key now: `listenKeyExpired` is sent and their user streams close.
    ExpireListenKey,
}

/// Where the replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPhase {
    /// Waiting for `min_subscribers` market-stream connections (or `start_replay`).
    Waiting,
    Running,
    /// The recording ended (or failed); the exchange keeps serving with the last book.
    Finished,
}

/// Replay progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayStatus {
    pub phase: ReplayPhase,
    /// Virtual time: receive time of the last replayed frame (plus the loop offset); `None` before the first one.
    pub virtual_ts: Option<TsNs>,
    pub frames_sent: u64,
    /// Completed passes over the recording (with `loop_replay`).
    pub loops: u64,
}

/// A message on the user-data channel.
#[derive(Debug, Clone)]
pub(crate) enum UserMsg {
    /// An event every user stream receives (one account).
    Event(Arc<str>),
    /// `listenKeyExpired` for one key; its streams close after sending it.
    Expired { key: Arc<str>, json: Arc<str> },
    /// The key was deleted: its streams close.
    Closed { key: Arc<str> },
}

/// The account's listen key (Binance: one active key per account; POST returns it and extends it).
#[derive(Debug, Default)]
pub(crate) struct ListenKeys {
    active: Option<(Arc<str>, tokio::time::Instant)>,
}

impl ListenKeys {
    pub(crate) fn is_valid(&self, key: &str) -> bool {
        matches!(&self.active, Some((k, exp)) if &**k == key && *exp > tokio::time::Instant::now())
    }
    pub(crate) fn active_key(&self) -> Option<&Arc<str>> {
        self.active.as_ref().map(|(k, _)| k)
    }
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.active.as_ref().map(|(_, e)| *e)
    }
}

/// Requests and orders in the current wall-clock minute (for `X-MBX-USED-WEIGHT-1M` / `X-MBX-ORDER-COUNT-1M`).
#[derive(Debug, Default)]
pub(crate) struct Usage {
    minute: u64,
    weight: u32,
    orders: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub drop_next_order_response: bool,
    pub http5xx_next_order: Option<bool>,
}

/// Everything behind the mutex: changed together, never held across an await.
pub(crate) struct Core {
    pub account: Account,
    pub keys: ListenKeys,
    pub faults: Faults,
    usage: Usage,
}

/// State shared by every handler and task.
pub(crate) struct Shared {
    pub cfg: LocalExchangeConfig,
    core: Mutex<Core>,
    pub market_tx: broadcast::Sender<SharedFrame>,
    pub user_tx: broadcast::Sender<UserMsg>,
    /// Open market-stream websockets.
    pub subscribers: watch::Sender<usize>,
    /// Bumped to close every market websocket once.
    pub drop_market: watch::Sender<u64>,
    /// Virtual time in ns (0 before the first frame).
    virtual_ns: AtomicI64,
    frames_sent: AtomicU64,
    pub status: watch::Sender<ReplayStatus>,
    pub speed: watch::Sender<f64>,
    /// The perp recording holds depth updates (else depth streams are derived from the touch).
    pub recorded_depth: bool,
    pub start_now: Notify,
    /// Woken when the listen key changes (the expiry task re-reads its deadline).
    pub keys_changed: Notify,
    pub shutdown: CancellationToken,
    pub faults: super::faults::Faults,
    /// Market data for the REST endpoints (the replay writes, handlers read).
    market: Mutex<MarketData>,
    /// Fills and income, booked as executions are published.
    history: Mutex<History>,
}

pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shared {
    pub(crate) fn market(&self) -> MutexGuard<'_, MarketData> {
        self.market.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock cannot leave the account half-updated in a way worse than stopping;
        // keep serving with the state as it is.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Virtual time for fills and events: the replay clock, or the wall clock before the first frame.
    pub(crate) fn now(&self) -> TsNs {
        match self.virtual_ns.load(Ordering::Relaxed) {
            0 => wall_ms() * NS_PER_MS,
            v => v,
        }
    }

    pub(crate) fn set_virtual(&self, ts: TsNs) {
        self.virtual_ns.store(ts, Ordering::Relaxed);
    }

    pub(crate) fn count_frame(&self) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn status_now(&self) -> ReplayStatus {
        let s = *self.status.borrow();
        let v = self.virtual_ns.load(Ordering::Relaxed);
        ReplayStatus {
            virtual_ts: (v != 0).then_some(v),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            ..s
        }
    }

    pub(crate) fn set_phase(&self, phase: ReplayPhase, loops: u64) {
        let st = ReplayStatus {
            phase,
            loops,
            ..self.status_now()
        };
        self.status.send_replace(st);
    }

    /// Publishes executions on the user stream: ORDER_TRADE_UPDATE each, then one ACCOUNT_UPDATE if any traded.
    /// Called with the core locked so events leave in the order they happened.
    pub(crate) fn publish(&self, core: &Core, execs: &[Execution]) {
        self.faults.record_executions(execs);
        self.history().record(execs);
        let mut traded = false;
        let mut change = Decimal::ZERO;
        let mut last_ms = 0;
        for e in execs {
            if let Ok(json) = encode("ORDER_TRADE_UPDATE", &render::order_trade_update(e)) {
                let _ = self.user_tx.send(UserMsg::Event(json.into()));
            }
            if e.exec == ExecType::Trade {
                traded = true;
                change += e.realized - e.fee;
                last_ms = e.ts_ms;
            }
        }
        if traded {
            let upd = render::account_update(&core.account, last_ms, change);
            if let Ok(json) = encode("ACCOUNT_UPDATE", &upd) {
                let _ = self.user_tx.send(UserMsg::Event(json.into()));
            }
        }
    }

    /// Counts a request's weight (and an order); returns the minute's totals.
    pub(crate) fn use_weight(&self, weight: u32, order: bool) -> (u32, u32) {
        let minute = (wall_ms() / 60_000) as u64;
        let mut core = self.core();
        let u = &mut core.usage;
        if u.minute != minute {
            *u = Usage {
                minute,
                ..Usage::default()
            };
        }
        u.weight += weight;
        if order {
            u.orders += 1;
        }
        (u.weight, u.orders)
    }

    /// POST /fapi/v1/listenKey: the active key (extended) or a new one.
    pub(crate) fn issue_listen_key(&self) -> Arc<str> {
        let mut core = self.core();
        let exp = tokio::time::Instant::now() + self.cfg.listen_key_ttl;
        let key = match &core.keys.active {
            Some((k, e)) if *e > tokio::time::Instant::now() => k.clone(),
            _ => new_listen_key(),
        };
        core.keys.active = Some((key.clone(), exp));
        drop(core);
        self.keys_changed.notify_one();
        key
    }

    /// PUT /fapi/v1/listenKey: extends the active key; false when there is none (-1125).
    pub(crate) fn keep_alive(&self, key: Option<&str>) -> bool {
        let mut core = self.core();
        let now = tokio::time::Instant::now();
        let ttl = self.cfg.listen_key_ttl;
        let ok = match &mut core.keys.active {
            Some((k, e)) if *e > now && key.is_none_or(|key| key == &**k) => {
                *e = now + ttl;
                true
            }
            _ => false,
        };
        drop(core);
        self.keys_changed.notify_one();
        ok
    }

    /// DELETE /fapi/v1/listenKey.
    pub(crate) fn delete_listen_key(&self) {
        let old = self.core().keys.active.take();
        if let Some((key, _)) = old {
            let _ = self.user_tx.send(UserMsg::Closed { key });
        }
        self.keys_changed.notify_one();
    }

    /// Expires the active key now (or when its deadline passed): listenKeyExpired to its streams.
    pub(crate) fn expire_listen_key(&self, only_if_due: bool) {
        let mut core = self.core();
        let due = match &core.keys.active {
            Some((_, e)) => !only_if_due || *e <= tokio::time::Instant::now(),
            None => false,
        };
        if !due {
            return;
        }
        let Some((key, _)) = core.keys.active.take() else {
            return;
        };
        drop(core);
        let ms = self.now() / NS_PER_MS;
        if let Ok(json) = encode("listenKeyExpired", &ListenKeyExpired::new(&key, ms)) {
            let _ = self.user_tx.send(UserMsg::Expired {
                key,
                json: json.into(),
            });
        }
        self.keys_changed.notify_one();
    }

    pub(crate) fn listen_key_deadline(&self) -> Option<tokio::time::Instant> {
        self.core().keys.deadline()
    }
}

fn new_listen_key() -> Arc<str> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let s: String = (0..64)
        .map(|_| {
            let i = fastrand::usize(..CHARS.len());
            CHARS.get(i).copied().unwrap_or(b'x') as char
        })
        .collect();
    s.into()
}

/// Expires the listen key 60 min (configurable) after its last POST/PUT, on the tokio clock.
async fn listen_key_expiry(shared: Arc<Shared>) {
    loop {
        let changed = shared.keys_changed.notified();
        let deadline = shared.listen_key_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = changed => {}
            _ = sleep => shared.expire_listen_key(true),
        }
    }
}

/// The local exchange.
pub struct LocalExchange;

impl LocalExchange {
    /// Binds `cfg.listen`, opens the recordings and starts serving; the replay starts once `min_subscribers`
    /// market-stream websockets are connected.
    pub async fn start(cfg: LocalExchangeConfig) -> Result<RunningExchange, LocalExchangeError> {
        cfg.validate()?;
        // Open now, so a bad path fails the start rather than the replay.
        let recording = Recording::open(&cfg.data)?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| LocalExchangeError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(LocalExchangeError::Serve)?;
        let (market_tx, _) = broadcast::channel(cfg.stream_buffer);
        let (user_tx, _) = broadcast::channel(1024);
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                account: Account::new(cfg.account()),
                keys: ListenKeys::default(),
                faults: Faults::default(),
                usage: Usage::default(),
            }),
            market_tx,
            user_tx,
            subscribers: watch::Sender::new(0),
            drop_market: watch::Sender::new(0),
            // Before the first frame, the clock stands just before the recording starts (never at the wall
            // clock, which a bot would then see jump back years).
            virtual_ns: AtomicI64::new(recording.first_ts().map(|t| t - 1).unwrap_or(0)),
            frames_sent: AtomicU64::new(0),
            status: watch::Sender::new(ReplayStatus {
                phase: ReplayPhase::Waiting,
                virtual_ts: None,
                frames_sent: 0,
                loops: 0,
            }),
            speed: watch::Sender::new(cfg.speed),
            recorded_depth: streams::recording_has_depth(&cfg.data),
            start_now: Notify::new(),
            keys_changed: Notify::new(),
            shutdown: shutdown.clone(),
            faults: super::faults::Faults::new(&cfg.faults),
            market: Mutex::new(MarketData::default()),
            history: Mutex::new(History::default()),
            cfg,
        });
        let funded_ms = shared.now() / NS_PER_MS;
        shared.core().account.set_funded_at(funded_ms);
        let app = router(shared.clone());
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "local exchange server stopped");
            }
        });
        let replay = tokio::spawn(replay::run(shared.clone(), recording));
        let expiry = tokio::spawn(listen_key_expiry(shared.clone()));
        tracing::info!(%addr, "local exchange listening");
        Ok(RunningExchange {
            shared,
            addr,
            tasks: vec![server, replay, expiry],
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/fapi/v1/ping", get(rest::ping))
        .route("/fapi/v1/time", get(rest::time))
        .route("/fapi/v1/exchangeInfo", get(rest_market::exchange_info))
        .route("/fapi/v1/ticker/24hr", get(rest_market::ticker_24h))
        .route("/fapi/v1/ticker/price", get(rest_market::ticker_price))
        .route("/fapi/v2/ticker/price", get(rest_market::ticker_price))
        .route("/fapi/v1/ticker/bookTicker", get(rest_market::book_ticker))
        .route("/fapi/v1/depth", get(rest_market::depth))
        .route("/fapi/v1/klines", get(rest_market::klines))
        .route("/fapi/v1/continuousKlines", get(rest_market::klines))
        .route("/fapi/v1/markPriceKlines", get(rest_market::klines))
        .route("/fapi/v1/indexPriceKlines", get(rest_market::klines))
        .route("/fapi/v1/aggTrades", get(rest_market::agg_trades))
        .route("/fapi/v1/trades", get(rest_market::trades))
        .route("/fapi/v1/premiumIndex", get(rest_market::premium_index))
        .route("/fapi/v1/fundingRate", get(rest_market::funding_rate))
        .route("/fapi/v1/openInterest", get(rest_market::open_interest))
        .route("/fapi/v1/allOrders", get(rest_account::all_orders))
        .route("/fapi/v1/userTrades", get(rest_account::user_trades))
        .route("/fapi/v1/income", get(rest_account::income))
        .route(
            "/fapi/v1/leverageBracket",
            get(rest_account::leverage_bracket),
        )
        .route(
            "/fapi/v2/leverageBracket",
            get(rest_account::leverage_bracket),
        )
        .route(
            "/fapi/v1/commissionRate",
            get(rest_account::commission_rate),
        )
        .route("/fapi/v1/marginType", post(rest_account::margin_type))
        .route(
            "/fapi/v1/multiAssetsMargin",
            get(rest_account::multi_assets_margin),
        )
        .route("/fapi/v1/symbolConfig", get(rest_account::symbol_config))
        .route(
            "/fapi/v1/order",
            post(rest::new_order)
                .get(rest::query_order)
                .delete(rest::cancel_order),
        )
        .route("/fapi/v1/openOrders", get(rest::open_orders))
        .route(
            "/fapi/v1/allOpenOrders",
            axum::routing::delete(rest::cancel_all),
        )
        .route("/fapi/v2/positionRisk", get(rest::position_risk_v2))
        .route("/fapi/v3/positionRisk", get(rest::position_risk_v3))
        .route("/fapi/v2/balance", get(rest::balance))
        .route("/fapi/v3/balance", get(rest::balance))
        .route("/fapi/v2/account", get(rest::account))
        .route("/fapi/v3/account", get(rest::account))
        .route("/fapi/v1/leverage", post(rest::leverage))
        .route(
            "/fapi/v1/positionSide/dual",
            get(rest::position_side).post(rest_account::set_position_side),
        )
        .route(
            "/fapi/v1/listenKey",
            post(rest::listen_key_new)
                .put(rest::listen_key_keep)
                .delete(rest::listen_key_delete),
        )
        .merge(ws::routes(shared.cfg.legacy_routing))
        .fallback(rest::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            super::faults::rest_gate,
        ))
        .with_state(shared)
}

/// Handle on a running local exchange.
pub struct RunningExchange {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningExchange {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// REST base, e.g. `http://127.0.0.1:PORT` (paths `/fapi/...` as on Binance).
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Futures websocket root: `{base}/public/…`, `{base}/market/…` (`/ws/<stream>` or `/stream?streams=a/b`), the
    /// unrouted `{base}/ws/<stream>` (public streams only, everything with `legacy_routing`).
    pub fn futures_ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }
    /// Spot market-stream base: `{base}/ws/<stream>` and `{base}/stream?streams=a/b` (served under `/spot`).
    pub fn spot_ws_url(&self) -> String {
        format!("ws://{}/spot", self.addr)
    }
    /// User-data stream root (`{base}/private/ws/<listenKey>`, `{base}/ws/<listenKey>` with `legacy_routing`): the
    /// futures root, as on Binance.
    pub fn user_ws_url(&self) -> String {
        self.futures_ws_url()
    }
    /// The API key pair this exchange accepts.
    pub fn keys(&self) -> &ApiKeyPair {
        &self.shared.cfg.keys
    }

    pub fn inject(&self, fault: Fault) {
        match fault {
            Fault::DropNextOrderResponse => {
                self.shared.core().faults.drop_next_order_response = true
            }
            Fault::Http5xxNextOrder => self.shared.core().faults.http5xx_next_order = Some(true),
            Fault::Http5xxNextOrderNotPlaced => {
                self.shared.core().faults.http5xx_next_order = Some(false)
            }
            Fault::DropMarketStreams => {
                self.shared.drop_market.send_modify(|g| *g += 1);
            }
            Fault::ExpireListenKey => self.shared.expire_listen_key(false),
        }
    }

    /// Replaces the seeded fault plan (rates, seed, timings); counters keep counting.
    pub fn set_fault_plan(&self, plan: &super::faults::FaultPlan) {
        self.shared.faults.set_plan(plan);
    }
    /// Changes one kind's rate (0 stops it).
    pub fn set_fault_rate(&self, kind: super::faults::FaultKind, rate: f64) {
        self.shared.faults.set_rate(kind, rate);
    }
    /// Makes the next opportunity of `kind` fault, whatever its rate.
    pub fn arm_fault(&self, kind: super::faults::FaultKind) {
        self.shared.faults.arm(kind);
    }
    /// Orders accepted, trades and fault-caused feed outages so far.
    pub fn fault_ledger(&self) -> super::faults::FaultLedger {
        self.shared.faults.ledger_snapshot()
    }
    /// Faults injected so far by kind, and rate-limit violations.
    pub fn fault_counts(&self) -> super::faults::FaultCounts {
        self.shared.faults.counts()
    }

    pub fn replay_status(&self) -> ReplayStatus {
        self.shared.status_now()
    }
    /// Phase changes (Waiting → Running → Finished); `frames_sent`/`virtual_ts` are current only in
    /// [`replay_status`](Self::replay_status).
    pub fn replay_watch(&self) -> watch::Receiver<ReplayStatus> {
        self.shared.status.subscribe()
    }
    /// Resolves when the replay has finished (immediately if it has).
    pub async fn replay_finished(&self) {
        let mut rx = self.shared.status.subscribe();
        let _ = rx.wait_for(|s| s.phase == ReplayPhase::Finished).await;
    }
    /// Starts the replay now, without waiting for `min_subscribers`.
    pub fn start_replay(&self) {
        self.shared.start_now.notify_one();
    }
    /// Changes the replay speed (0 = as fast as possible).
    pub fn set_speed(&self, speed: f64) {
        if speed.is_finite() && speed >= 0.0 {
            self.shared.speed.send_replace(speed);
        }
    }
    /// Virtual time (ns), the time fills and user events carry.
    pub fn virtual_time(&self) -> TsNs {
        self.shared.now()
    }
    /// The replay's virtual clock, for a bot trading on this exchange (its market time, at any replay speed).
    pub fn clock(&self) -> crate::clock::Clock {
        let shared = self.shared.clone();
        std::sync::Arc::new(move || shared.now())
    }
    /// Open market-stream websockets.
    pub fn market_subscribers(&self) -> usize {
        *self.shared.subscribers.borrow()
    }
    /// Position, balance and open orders of the account, for summaries and tests.
    pub fn snapshot(&self) -> AccountSnapshot {
        let core = self.shared.core();
        AccountSnapshot {
            position: core.account.position_view(),
            realized_pnl: core.account.position().realized_pnl,
            balance: core.account.balance(),
            open_orders: core.account.open_orders(None).map(|v| v.len()).unwrap_or(0),
        }
    }
    /// The token that stops everything; cancel it (or call [`shutdown`](Self::shutdown)).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }
    /// Stops the server, the replay and every websocket, and waits for them (up to 5 s).
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The account as the exchange sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSnapshot {
    pub position: super::account::PositionView,
    /// Realised PnL net of fees since start.
    pub realized_pnl: Decimal,
    pub balance: super::account::BalanceView,
    pub open_orders: usize,
}

/// Python that points ccxt's `binanceusdm` at this exchange and prints a ticker. The public test pair is written
/// out; a configured pair is read from `PREMIA_EXCHANGE_API_KEY` / `PREMIA_EXCHANGE_SECRET` in the snippet.
pub fn ccxt_snippet(rest_url: &str, ws_url: &str, keys: &ApiKeyPair) -> String {
    let creds = if keys.is_test_pair() {
        format!("'apiKey': '{}', 'secret': '{}'", keys.api_key, keys.secret)
    } else {
        "'apiKey': os.environ['PREMIA_EXCHANGE_API_KEY'], 'secret': os.environ['PREMIA_EXCHANGE_SECRET']"
            .to_string()
    };
    format!(
        "import os, ccxt
ex = ccxt.binanceusdm({{{creds},
    'options': {{'fetchMarkets': ['linear'], 'fetchCurrencies': False, 'adjustForTimeDifference': False}}}})
for api, path in [('fapiPublic', '/fapi/v1'), ('fapiPublicV2', '/fapi/v2'), ('fapiPublicV3', '/fapi/v3'),
                  ('fapiPrivate', '/fapi/v1'), ('fapiPrivateV2', '/fapi/v2'), ('fapiPrivateV3', '/fapi/v3')]:
    ex.urls['api'][api] = '{rest_url}' + path
if 'ws' in ex.urls['api']:  # ccxt.pro
    ex.urls['api']['ws']['linear'] = '{ws_url}/ws'
# ccxt picks Binance USD-M's error classes by host name: use them for this host too.
ex.exceptions['exact'].update(ex.exceptions['linear']['exact'])
print(ex.fetch_ticker('BTC/USDT:USDT'))"
    )
}

/// `premia exchange`: starts the exchange, prints its URLs and test key pair, serves until Ctrl-C.
pub async fn serve_standalone(cfg: LocalExchangeConfig) -> Result<(), LocalExchangeError> {
    let ex = LocalExchange::start(cfg).await?;
    println!("premia local exchange (Binance USD-M protocol)");
    println!("  REST:                 {}", ex.rest_url());
    let root = ex.futures_ws_url();
    if ex.shared.cfg.legacy_routing {
        println!("  futures streams:      {root}/ws/<stream>  {root}/stream?streams=a/b  (legacy routing)");
    } else {
        println!(
            "  futures book streams: {root}/public/ws/<stream>  {root}/public/stream?streams=a/b"
        );
        println!(
            "  futures market data:  {root}/market/ws/<stream>  {root}/market/stream?streams=a/b"
        );
    }
    println!(
        "  spot streams:         {}/ws/<stream>  {}/stream?streams=a/b",
        ex.spot_ws_url(),
        ex.spot_ws_url()
    );
    let private = if ex.shared.cfg.legacy_routing {
        ""
    } else {
        "/private"
    };
    println!(
        "  user-data stream:     {}{private}/ws/<listenKey>",
        ex.user_ws_url()
    );
    if ex.keys().is_test_pair() {
        println!("  API key:              {}", ex.keys().api_key);
        println!("  API secret:           {}", ex.keys().secret);
    } else {
        println!("  API key:              (configured pair; not printed)");
    }
    let plan = ex.shared.faults.plan();
    if !plan.rates.is_empty() {
        let rates: Vec<String> = plan.rates.iter().map(|(k, r)| format!("{k}={r}")).collect();
        println!("  faults (seed {}):     {}", plan.seed, rates.join(","));
    }
    println!();
    println!("ccxt (Python), ready to paste:");
    println!(
        "{}",
        ccxt_snippet(&ex.rest_url(), &ex.futures_ws_url(), ex.keys())
    );
    println!(
        "  replay starts when {} book-data stream(s) connect; Ctrl-C to stop",
        ex.shared.cfg.min_subscribers
    );
    let mut status = ex.replay_watch();
    let mut announced = false;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                }
                break;
            }
            changed = status.changed(), if !announced => {
                if changed.is_err() {
                    break;
                }
                let st = ex.replay_status();
                if st.phase == ReplayPhase::Finished {
                    println!("  replay finished: {} frames; still serving (Ctrl-C to stop)", st.frames_sent);
                    announced = true;
                }
            }
        }
    }
    if !plan.rates.is_empty() {
        println!("  faults injected: {}", ex.fault_counts());
    }
    ex.shutdown().await;
    Ok(())
}
