//! Signed REST client for Binance USD-M futures (or any server speaking its protocol): server-time offset, rate-limit
//! and ban tracking, order placement whose unknown outcomes are resolved by client order id.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use tokio::time::Instant;

use super::error::BinanceError;
use super::rest_wire::{
    Account, AccountSnapshot, BalanceEntry, ExchangeInfo, LeverageResponse, ListenKey,
    OrderResponse, PositionRiskV2, PositionRiskV3, PositionSideDual, ServerTime,
};
use super::sign::{push_param, Credentials};
use super::wire::decode;
use crate::model::{
    Balance, Decimal, ExchangePosition, OrderRecord, OrderRequest, OrderType, OrderUpdate,
    SymbolFilters,
};

const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-mbx-apikey");
const ORDER_PATH: &str = "/fapi/v1/order";

/// Where and how the client talks to the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct RestConfig {
    /// `https://fapi.binance.com`, `https://testnet.binancefuture.com`, `http://127.0.0.1:PORT`, …
    pub base_url: String,
    /// `recvWindow` sent with every signed request (ms).
    pub recv_window_ms: u64,
    /// Whole-request timeout; an order whose response does not arrive in time is UNKNOWN.
    pub timeout: Duration,
    /// How often the server-time offset is refreshed (it is also refreshed on every -1021).
    pub time_resync_every: Duration,
    /// Used when a 429 / 418 response carries no `Retry-After`.
    pub default_backoff: Duration,
}

impl RestConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        RestConfig {
            base_url: base_url.into(),
            recv_window_ms: 5_000,
            timeout: Duration::from_secs(10),
            time_resync_every: Duration::from_secs(600),
            default_backoff: Duration::from_secs(60),
        }
    }
}

/// Latest request weight and order count Binance reported (`X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-1M`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateUsage {
    pub used_weight_1m: Option<u32>,
    pub order_count_1m: Option<u32>,
}

/// Account position mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionMode {
    OneWay,
    /// Hedge mode (`dualSidePosition = true`); premia needs one-way mode.
    Hedge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Public endpoint.
    None,
    /// `X-MBX-APIKEY` only (listen keys).
    ApiKey,
    /// `X-MBX-APIKEY` + `timestamp`, `recvWindow`, `signature`.
    Signed,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    until: Instant,
    banned: bool,
}

/// A window in which nothing may be sent (a 429's `Retry-After` or a 418 ban), in wall-clock time so that it can be
/// kept across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockWindow {
    /// Unix time (ms) when sending may resume.
    pub until_unix_ms: i64,
    /// A ban (418) rather than a rate limit (429).
    pub banned: bool,
}

/// Told of every new back-off window (to keep it in the state store).
pub type BlockListener = Arc<dyn Fn(BlockWindow) + Send + Sync>;

struct Inner {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
    /// `X-MBX-APIKEY`, validated once (`None` if the key is not a valid header value: reqwest then reports it).
    api_key_header: Option<HeaderValue>,
    /// `{base}/fapi/v1/order`, parsed once: an order request only sets its query (parsing the whole URL per order
    /// cost ~10 µs more with cold caches on the 2-core test machine).
    order_url: Option<reqwest::Url>,
    recv_window_ms: u64,
    timeout: Duration,
    resync_every: Duration,
    default_backoff: Duration,
    offset_ms: AtomicI64,
    synced_at: Mutex<Option<Instant>>,
    usage: Mutex<RateUsage>,
    blocked: Mutex<Option<Block>>,
    block_listener: Mutex<Option<BlockListener>>,
    v3_missing: AtomicBool,
}

/// The REST client. Cheap to clone (shared state: time offset, rate usage, ban).
#[derive(Clone)]
pub struct RestClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.inner.base)
            .field("credentials", &self.inner.creds)
            .finish()
    }
}

fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `reqwest` error text with its causes, without the URL (which would carry the signed query).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

fn header_u32(h: &HeaderMap, name: &str) -> Option<u32> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A client order id Binance accepts: 1–36 of `[.A-Z:/a-z0-9_-]`.
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 36
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

/// `k=v&k=v` from parameters (values percent-encoded).
fn params_query(params: &[(&str, String)]) -> String {
    let mut query = String::with_capacity(128);
    for (k, v) in params {
        push_param(&mut query, k, v);
    }
    query
}

/// The order's parameters as one percent-encoded query (exactly [`RestClient::order_params`], joined), built in one
/// buffer without a string per parameter.
fn order_query(req: &OrderRequest) -> Result<String, BinanceError> {
    let mut query = String::with_capacity(192);
    visit_order_params(req, |k, v| match v {
        Param::Str(s) => push_param(&mut query, k, s),
        Param::Dec(d) => {
            // Digits, '.' and '-' need no percent-encoding.
            if !query.is_empty() {
                query.push('&');
            }
            let _ = write!(query, "{k}={}", d.normalize());
        }
    })?;
    Ok(query)
}

/// One order parameter's value.
enum Param<'a> {
    Str(&'a str),
    Dec(Decimal),
}

/// Validates an order and hands its parameters to `f` in the order `POST /fapi/v1/order` takes them (before
/// `recvWindow`/`timestamp`/`signature`).
fn visit_order_params(
    req: &OrderRequest,
    mut f: impl FnMut(&'static str, Param<'_>),
) -> Result<(), BinanceError> {
    let invalid = |reason: String| BinanceError::Invalid { reason };
    if !valid_client_id(&req.client_id) {
        return Err(invalid(format!(
            "client order id {:?} must be 1–36 characters of [.A-Z:/a-z0-9_-]",
            req.client_id
        )));
    }
    if req.qty <= Decimal::ZERO {
        return Err(invalid(format!(
            "order {}: quantity {} must be positive",
            req.client_id, req.qty
        )));
    }
    let price = if req.order_type == OrderType::Limit {
        Some(req.price.filter(|p| *p > Decimal::ZERO).ok_or_else(|| {
            invalid(format!(
                "limit order {} needs a positive price",
                req.client_id
            ))
        })?)
    } else {
        None
    };
    f("symbol", Param::Str(&req.symbol));
    f("side", Param::Str(req.side.as_str()));
    f("type", Param::Str(req.order_type.as_str()));
    if let Some(price) = price {
        f("timeInForce", Param::Str("GTC"));
        f("quantity", Param::Dec(req.qty));
        f("price", Param::Dec(price));
    } else {
        f("quantity", Param::Dec(req.qty));
    }
    if req.reduce_only {
        f("reduceOnly", Param::Str("true"));
    }
    f("newClientOrderId", Param::Str(&req.client_id));
    f("newOrderRespType", Param::Str("RESULT"));
    Ok(())
}

/// An order request handed to the HTTP client by [`RestClient::start_order`] whose response is still to come.
pub struct StartedOrder {
    response: Pin<Box<dyn Future<Output = Result<reqwest::Response, reqwest::Error>> + Send>>,
    /// The response, when the first poll ([`StartedOrder::hand_over`]) already had it (a connect error, say).
    early: Option<Box<Result<reqwest::Response, reqwest::Error>>>,
    /// When the signed request was handed to the HTTP client.
    pub written: std::time::Instant,
}

impl std::fmt::Debug for StartedOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedOrder")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl StartedOrder {
    /// Polls the request once on the calling task, so that the HTTP client takes it now (an idle pooled
    /// connection gets it at once) rather than when the task that finishes it next runs.
    pub async fn hand_over(&mut self) {
        if self.early.is_some() {
            return;
        }
        let response = &mut self.response;
        let polled = std::future::poll_fn(|cx| Poll::Ready(response.as_mut().poll(cx))).await;
        if let Poll::Ready(r) = polled {
            self.early = Some(Box::new(r));
        }
    }
}

impl RestClient {
    pub fn new(cfg: RestConfig, creds: Credentials) -> Result<Self, BinanceError> {
        let base = cfg.base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(BinanceError::Invalid {
                reason: format!("rest_url must start with http:// or https://, got {base:?}"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| BinanceError::Transport {
                reason: describe(e),
            })?;
        let order_url = reqwest::Url::parse(&format!("{base}{ORDER_PATH}")).ok();
        Ok(RestClient {
            inner: Arc::new(Inner {
                http,
                base,
                api_key_header: HeaderValue::from_str(creds.api_key()).ok(),
                order_url,
                creds,
                recv_window_ms: cfg.recv_window_ms,
                timeout: cfg.timeout,
                resync_every: cfg.time_resync_every,
                default_backoff: cfg.default_backoff,
                offset_ms: AtomicI64::new(0),
                synced_at: Mutex::new(None),
                usage: Mutex::new(RateUsage::default()),
                blocked: Mutex::new(None),
                block_listener: Mutex::new(None),
                v3_missing: AtomicBool::new(false),
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Server time minus local time (ms), as last measured.
    pub fn time_offset_ms(&self) -> i64 {
        self.inner.offset_ms.load(Ordering::Relaxed)
    }

    /// The timestamp the next signed request will carry (local time + offset, ms).
    pub fn now_ms(&self) -> i64 {
        local_ms() + self.time_offset_ms()
    }

    /// Latest rate-limit usage the exchange reported.
    pub fn usage(&self) -> RateUsage {
        self.inner.usage.lock().map(|u| *u).unwrap_or_default()
    }

    /// When requests are refused because of a 429 / 418: the remaining wait.
    pub fn blocked_for(&self) -> Option<Duration> {
        let b = self.inner.blocked.lock().ok().and_then(|b| *b)?;
        let now = Instant::now();
        (b.until > now).then(|| b.until - now)
    }

    // -----------------------------------------------------------------------------------------------------------
    // Plumbing

    fn check_gate(&self) -> Result<(), BinanceError> {
        let Ok(mut guard) = self.inner.blocked.lock() else {
            return Ok(());
        };
        if let Some(b) = *guard {
            let now = Instant::now();
            if b.until > now {
                let retry_after = Some(b.until - now);
                return Err(if b.banned {
                    BinanceError::IpBanned { retry_after }
                } else {
                    BinanceError::RateLimited { retry_after }
                });
            }
            *guard = None;
        }
        Ok(())
    }

    fn block(&self, wait: Duration, banned: bool) {
        let Ok(mut guard) = self.inner.blocked.lock() else {
            return;
        };
        let until = Instant::now() + wait;
        if guard.is_some_and(|b| b.until > until) {
            // A longer window (a ban learned earlier) stays.
            return;
        }
        *guard = Some(Block { until, banned });
        drop(guard);
        let listener = self
            .inner
            .block_listener
            .lock()
            .ok()
            .and_then(|l| l.clone());
        if let Some(listener) = listener {
            listener(BlockWindow {
                until_unix_ms: local_ms().saturating_add(wait.as_millis() as i64),
                banned,
            });
        }
    }

    /// Calls `f` with every new back-off window the exchange imposes (a 429's `Retry-After`, a 418 ban);
    /// `None` stops that.
    pub fn on_block(&self, f: Option<BlockListener>) {
        if let Ok(mut l) = self.inner.block_listener.lock() {
            *l = f;
        }
    }

    /// Adopts a back-off window learned before (by an earlier process): nothing is sent until it ends.
    /// Returns the remaining wait, or `None` when the window is already over.
    pub fn restore_block(&self, window: BlockWindow) -> Option<Duration> {
        let left_ms = window.until_unix_ms.saturating_sub(local_ms());
        if left_ms <= 0 {
            return None;
        }
        let wait = Duration::from_millis(left_ms as u64);
        if let Ok(mut guard) = self.inner.blocked.lock() {
            *guard = Some(Block {
                until: Instant::now() + wait,
                banned: window.banned,
            });
        }
        Some(wait)
    }

    fn record_usage(&self, h: &HeaderMap) {
        let w = header_u32(h, "x-mbx-used-weight-1m");
        let o = header_u32(h, "x-mbx-order-count-1m");
        if let Ok(mut u) = self.inner.usage.lock() {
            if w.is_some() {
                u.used_weight_1m = w;
            }
            if o.is_some() {
                u.order_count_1m = o;
            }
        }
    }

    /// Sends one request; returns the body of a 2xx response.
    async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        security: Security,
    ) -> Result<String, BinanceError> {
        let query = params_query(params);
        self.send_query(method, path, &query, security).await
    }

    /// Sends one request whose parameters are already percent-encoded in `query` (without `recvWindow`,
    /// `timestamp` and `signature`, which are added here for a signed request).
    async fn send_query(
        &self,
        method: Method,
        path: &str,
        query: &str,
        security: Security,
    ) -> Result<String, BinanceError> {
        let rb = self.request(&method, path, query, security)?;
        tracing::debug!(%method, path, "binance request");
        let resp = rb.send().await;
        self.read_response(&method, path, resp).await
    }

    /// The request [`RestClient::send_query`] sends, signed when asked, not sent yet. Refused while a 429 / 418
    /// back-off runs.
    fn request(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        security: Security,
    ) -> Result<reqwest::RequestBuilder, BinanceError> {
        self.check_gate()?;
        let inner = &*self.inner;
        // The query and (signed) its signature in one buffer.
        let mut q = String::with_capacity(query.len() + 128);
        q.push_str(query);
        if security == Security::Signed {
            if !q.is_empty() {
                q.push('&');
            }
            // Writing to a String cannot fail.
            let _ = write!(
                q,
                "recvWindow={}&timestamp={}",
                inner.recv_window_ms,
                self.now_ms()
            );
            let signature = inner.creds.sign_hex(&q);
            q.push_str("&signature=");
            q.push_str(signature.as_str());
        }
        let mut rb = match &inner.order_url {
            Some(u) if path == ORDER_PATH && !q.is_empty() => {
                let mut u = u.clone();
                u.set_query(Some(&q));
                inner.http.request(method.clone(), u)
            }
            _ => {
                let mut url = String::with_capacity(inner.base.len() + path.len() + q.len() + 1);
                url.push_str(&inner.base);
                url.push_str(path);
                if !q.is_empty() {
                    url.push('?');
                    url.push_str(&q);
                }
                inner.http.request(method.clone(), url)
            }
        };
        if security != Security::None {
            rb = match &inner.api_key_header {
                Some(v) => rb.header(API_KEY_HEADER, v.clone()),
                None => rb.header(API_KEY_HEADER, inner.creds.api_key()),
            };
        }
        Ok(rb)
    }

    /// A failed send as a [`BinanceError`]: a timeout is an unknown outcome, a refused connection is transport.
    fn transport_error(
        inner: &Inner,
        method: &Method,
        path: &str,
        e: reqwest::Error,
    ) -> BinanceError {
        if e.is_timeout() {
            BinanceError::Unknown {
                reason: format!("no response to {method} {path} within {:?}", inner.timeout),
            }
        } else if e.is_connect() {
            BinanceError::Transport {
                reason: format!("cannot connect to {}: {}", inner.base, describe(e)),
            }
        } else {
            BinanceError::Unknown {
                reason: format!("{method} {path}: {}", describe(e)),
            }
        }
    }

    /// Only a request that places or cancels an order has an UNKNOWN outcome to resolve; any other request that got
    /// no usable answer simply had none ([`BinanceError::NoAnswer`]) and is sent again.
    fn outcome_wording(method: &Method, path: &str, e: BinanceError) -> BinanceError {
        let changes_an_order = path == ORDER_PATH && *method != Method::GET;
        match e {
            BinanceError::Unknown { reason } if !changes_an_order => {
                BinanceError::NoAnswer { reason }
            }
            e => e,
        }
    }

    /// The body of a 2xx response; anything else as a [`BinanceError`] (a 429 / 418 also starts the back-off).
    async fn read_response(
        &self,
        method: &Method,
        path: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<String, BinanceError> {
        let inner = &*self.inner;
        let resp = resp.map_err(|e| {
            Self::outcome_wording(method, path, Self::transport_error(inner, method, path, e))
        })?;
        self.record_usage(resp.headers());
        let status = resp.status().as_u16();
        let retry_after =
            header_u32(resp.headers(), "retry-after").map(|s| Duration::from_secs(u64::from(s)));
        let body = resp.text().await.map_err(|e| {
            let lost = BinanceError::Unknown {
                reason: format!("{method} {path}: response body lost: {}", describe(e)),
            };
            Self::outcome_wording(method, path, lost)
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let err = Self::outcome_wording(
            method,
            path,
            BinanceError::from_response(status, retry_after, &body),
        );
        match &err {
            BinanceError::IpBanned { retry_after } => {
                let wait = retry_after.unwrap_or(inner.default_backoff);
                self.block(wait, true);
                tracing::error!(
                    path,
                    wait_s = wait.as_secs(),
                    "BINANCE HAS BANNED THIS IP (HTTP 418): premia sends nothing until the ban ends"
                );
            }
            BinanceError::RateLimited { retry_after } => {
                let wait = retry_after.unwrap_or(inner.default_backoff);
                self.block(wait, false);
                tracing::warn!(
                    path,
                    wait_s = wait.as_secs(),
                    "Binance rate limit hit (429): backing off"
                );
            }
            _ => {}
        }
        Err(err)
    }

    /// A signed request, with periodic time resync and one retry on -1021.
    async fn signed(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<String, BinanceError> {
        let query = params_query(params);
        self.signed_query(method, path, &query).await
    }

    /// [`RestClient::signed`] with the parameters already encoded (see [`RestClient::send_query`]).
    async fn signed_query(
        &self,
        method: Method,
        path: &str,
        query: &str,
    ) -> Result<String, BinanceError> {
        // (The live order path, `start_order`, does not come here: it never waits for a resync.)
        self.resync_if_due().await;
        match self
            .send_query(method.clone(), path, query, Security::Signed)
            .await
        {
            Err(BinanceError::Timestamp { code, msg }) => {
                tracing::warn!(code, %msg, path, "timestamp rejected; resyncing server time and retrying once");
                self.sync_time().await?;
                self.send_query(method, path, query, Security::Signed).await
            }
            r => r,
        }
    }

    /// Measures the server-time offset again if [`RestConfig::time_resync_every`] has passed since the last time.
    pub async fn resync_if_due(&self) {
        let due = match self.inner.synced_at.lock() {
            Ok(g) => g.is_none_or(|t| t.elapsed() >= self.inner.resync_every),
            Err(_) => false,
        };
        if due {
            if let Err(e) = self.sync_time().await {
                tracing::warn!(error = %e, "server time resync failed; keeping the previous offset");
            }
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Endpoints

    /// `GET /fapi/v1/time`: the server's time (ms).
    pub async fn server_time(&self) -> Result<i64, BinanceError> {
        let body = self
            .send(Method::GET, "/fapi/v1/time", &[], Security::None)
            .await?;
        Ok(decode::<ServerTime>("time", &body)?.server_time)
    }

    /// Measures the server-time offset (server − local, corrected for half the round trip) and keeps it.
    pub async fn sync_time(&self) -> Result<i64, BinanceError> {
        let before = local_ms();
        let server = self.server_time().await?;
        let after = local_ms();
        let offset = server - (before + after) / 2;
        self.inner.offset_ms.store(offset, Ordering::Relaxed);
        if let Ok(mut g) = self.inner.synced_at.lock() {
            *g = Some(Instant::now());
        }
        tracing::debug!(offset_ms = offset, "server time synced");
        Ok(offset)
    }

    /// `GET /fapi/v1/exchangeInfo`, all of it.
    pub async fn exchange_info_full(&self) -> Result<ExchangeInfo, BinanceError> {
        let body = self
            .send(Method::GET, "/fapi/v1/exchangeInfo", &[], Security::None)
            .await?;
        Ok(decode::<ExchangeInfo>("exchangeInfo", &body)?)
    }

    /// Tick size, step size, quantity and notional limits of `symbol`.
    pub async fn exchange_info(&self, symbol: &str) -> Result<SymbolFilters, BinanceError> {
        Ok(self.exchange_info_full().await?.symbol_filters(symbol)?)
    }

    /// `GET /fapi/v1/positionSide/dual`.
    pub async fn position_mode(&self) -> Result<PositionMode, BinanceError> {
        let body = self
            .signed(Method::GET, "/fapi/v1/positionSide/dual", &[])
            .await?;
        let dual = decode::<PositionSideDual>("positionSide/dual", &body)?;
        Ok(if dual.dual_side_position {
            PositionMode::Hedge
        } else {
            PositionMode::OneWay
        })
    }

    /// `POST /fapi/v1/leverage`; returns the leverage now in force.
    pub async fn set_leverage(&self, symbol: &str, leverage: u32) -> Result<u32, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("leverage", leverage.to_string()),
        ];
        let body = self
            .signed(Method::POST, "/fapi/v1/leverage", &params)
            .await?;
        Ok(decode::<LeverageResponse>("leverage", &body)?.leverage)
    }

    /// The parameters (in order, before `recvWindow`/`timestamp`/`signature`) `place_order` sends, one by one: the
    /// tests' view of [`order_query`], which builds the same thing in one buffer.
    #[cfg(test)]
    fn order_params(req: &OrderRequest) -> Result<Vec<(&'static str, String)>, BinanceError> {
        let mut p: Vec<(&'static str, String)> = Vec::with_capacity(9);
        visit_order_params(req, |k, v| {
            p.push((
                k,
                match v {
                    Param::Str(s) => s.to_string(),
                    Param::Dec(d) => super::wire::fmt_decimal(d),
                },
            ))
        })?;
        Ok(p)
    }

    /// `POST /fapi/v1/order` (RESULT response). A timeout, -1007 or 5xx is [`BinanceError::Unknown`]: the order
    /// may exist (`live::gateway` settles that, by client id).
    pub async fn place_order(&self, req: &OrderRequest) -> Result<OrderUpdate, BinanceError> {
        let query = order_query(req)?;
        let body = self.signed_query(Method::POST, ORDER_PATH, &query).await?;
        Ok(decode::<OrderResponse>("order", &body)?.to_update())
    }

    /// Signs an order and hands its request to the HTTP client, without waiting for the response: the order path
    /// of a live run, which hands the [`StartedOrder`] to another task to be finished ([`RestClient::finish_order`]).
    /// Unlike the other signed requests it does not first resync the server time when that is due (a round trip on
    /// the order path): call [`RestClient::resync_if_due`] periodically elsewhere.
    pub fn start_order(&self, req: &OrderRequest) -> Result<StartedOrder, BinanceError> {
        let query = order_query(req)?;
        let rb = self.request(&Method::POST, ORDER_PATH, &query, Security::Signed)?;
        let written = std::time::Instant::now();
        Ok(StartedOrder {
            response: Box::pin(rb.send()),
            early: None,
            written,
        })
    }

    /// The first outcome of an order started by [`RestClient::start_order`] (or that could not be started:
    /// `started` is then its error). A -1021 resyncs the server time and sends once more, like every signed request;
    /// an unknown outcome is left to the caller to settle.
    pub async fn finish_order(
        &self,
        req: &OrderRequest,
        started: Result<StartedOrder, BinanceError>,
    ) -> Result<OrderUpdate, BinanceError> {
        let resp = match started? {
            StartedOrder { early: Some(r), .. } => *r,
            s => s.response.await,
        };
        let first = match self.read_response(&Method::POST, ORDER_PATH, resp).await {
            Ok(body) => decode::<OrderResponse>("order", &body)
                .map(|r| r.to_update())
                .map_err(BinanceError::from),
            Err(e) => Err(e),
        };
        match first {
            Err(BinanceError::Timestamp { code, msg }) => {
                tracing::warn!(code, %msg, path = ORDER_PATH, "timestamp rejected; resyncing server time and retrying once");
                self.sync_time().await?;
                self.place_order(req).await
            }
            r => r,
        }
    }

    /// `GET /fapi/v1/order?origClientOrderId=…`.
    pub async fn query_order(
        &self,
        symbol: &str,
        client_id: &str,
    ) -> Result<OrderUpdate, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("origClientOrderId", client_id.to_string()),
        ];
        let body = self.signed(Method::GET, "/fapi/v1/order", &params).await?;
        Ok(decode::<OrderResponse>("order", &body)?.to_update())
    }

    /// `DELETE /fapi/v1/order?origClientOrderId=…`.
    pub async fn cancel_order(
        &self,
        symbol: &str,
        client_id: &str,
    ) -> Result<OrderUpdate, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("origClientOrderId", client_id.to_string()),
        ];
        let body = self
            .signed(Method::DELETE, "/fapi/v1/order", &params)
            .await?;
        Ok(decode::<OrderResponse>("order", &body)?.to_update())
    }

    /// `GET /fapi/v1/openOrders` (one symbol, or all).
    pub async fn open_orders(
        &self,
        symbol: Option<&str>,
    ) -> Result<Vec<OrderRecord>, BinanceError> {
        let params: Vec<(&str, String)> = symbol
            .map(|s| ("symbol", s.to_string()))
            .into_iter()
            .collect();
        let body = self
            .signed(Method::GET, "/fapi/v1/openOrders", &params)
            .await?;
        let orders = decode::<Vec<OrderResponse>>("openOrders", &body)?;
        Ok(orders.iter().map(OrderResponse::to_record).collect())
    }

    /// Positions: `GET /fapi/v3/positionRisk`, falling back to v2 when the server answers 404 (remembered).
    pub async fn position_risk(
        &self,
        symbol: Option<&str>,
    ) -> Result<Vec<ExchangePosition>, BinanceError> {
        let params: Vec<(&str, String)> = symbol
            .map(|s| ("symbol", s.to_string()))
            .into_iter()
            .collect();
        if !self.inner.v3_missing.load(Ordering::Relaxed) {
            match self
                .signed(Method::GET, "/fapi/v3/positionRisk", &params)
                .await
            {
                Ok(body) => {
                    let v = decode::<Vec<PositionRiskV3>>("positionRisk v3", &body)?;
                    return Ok(v.iter().map(PositionRiskV3::to_position).collect());
                }
                Err(BinanceError::Http { status: 404, .. }) => {
                    tracing::info!("positionRisk v3 not available; using v2");
                    self.inner.v3_missing.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let body = self
            .signed(Method::GET, "/fapi/v2/positionRisk", &params)
            .await?;
        let v = decode::<Vec<PositionRiskV2>>("positionRisk v2", &body)?;
        Ok(v.iter().map(PositionRiskV2::to_position).collect())
    }

    /// `GET /fapi/v2/balance`.
    pub async fn balances(&self) -> Result<Vec<Balance>, BinanceError> {
        let body = self.signed(Method::GET, "/fapi/v2/balance", &[]).await?;
        let v = decode::<Vec<BalanceEntry>>("balance", &body)?;
        Ok(v.iter().map(BalanceEntry::to_balance).collect())
    }

    /// `GET /fapi/v2/account`: balances and positions.
    pub async fn account(&self) -> Result<AccountSnapshot, BinanceError> {
        let body = self.signed(Method::GET, "/fapi/v2/account", &[]).await?;
        Ok(decode::<Account>("account", &body)?.to_snapshot())
    }

    /// `POST /fapi/v1/listenKey`: a listen key for the user-data stream (the active one if there is one).
    pub async fn create_listen_key(&self) -> Result<String, BinanceError> {
        let body = self
            .send(Method::POST, "/fapi/v1/listenKey", &[], Security::ApiKey)
            .await?;
        Ok(decode::<ListenKey>("listenKey", &body)?.listen_key)
    }

    /// `PUT /fapi/v1/listenKey`: extends the key's validity by 60 minutes. -1125 means it is gone.
    pub async fn keepalive_listen_key(&self) -> Result<(), BinanceError> {
        self.send(Method::PUT, "/fapi/v1/listenKey", &[], Security::ApiKey)
            .await
            .map(|_| ())
    }

    /// `DELETE /fapi/v1/listenKey`.
    pub async fn close_listen_key(&self) -> Result<(), BinanceError> {
        self.send(Method::DELETE, "/fapi/v1/listenKey", &[], Security::ApiKey)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decimal, Side};
    use std::str::FromStr;

    fn req(t: OrderType, qty: &str, price: Option<&str>, reduce: bool) -> OrderRequest {
        OrderRequest {
            client_id: "pm-1-abc".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            order_type: t,
            qty: Decimal::from_str(qty).unwrap(),
            price: price.map(|p| Decimal::from_str(p).unwrap()),
            reduce_only: reduce,
            rule: "r".into(),
            decided_ts: 0,
        }
    }

    fn joined(p: &[(&str, String)]) -> String {
        p.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn order_params_are_in_fixed_order_and_exact() {
        let p = RestClient::order_params(&req(OrderType::Limit, "0.0100", Some("61234.50"), false))
            .unwrap();
        assert_eq!(
            joined(&p),
            "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.01&price=61234.5&newClientOrderId=pm-1-abc&newOrderRespType=RESULT"
        );
        let p =
            RestClient::order_params(&req(OrderType::Market, "0.010", Some("1"), true)).unwrap();
        assert_eq!(
            joined(&p),
            "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&reduceOnly=true&newClientOrderId=pm-1-abc&newOrderRespType=RESULT"
        );
    }

    #[test]
    fn order_query_is_the_joined_params() {
        for r in [
            req(OrderType::Limit, "0.0100", Some("61234.50"), false),
            req(OrderType::Market, "0.010", None, true),
        ] {
            let mut r = r;
            r.client_id = "pm:1/2".into();
            let mut joined = String::new();
            for (k, v) in RestClient::order_params(&r).unwrap() {
                push_param(&mut joined, k, &v);
            }
            assert_eq!(order_query(&r).unwrap(), joined);
        }
    }

    #[test]
    fn bad_orders_are_refused_before_sending() {
        assert!(RestClient::order_params(&req(OrderType::Limit, "0.01", None, false)).is_err());
        assert!(RestClient::order_params(&req(OrderType::Market, "0", None, false)).is_err());
        let mut r = req(OrderType::Market, "1", None, false);
        r.client_id = "x".repeat(37);
        assert!(RestClient::order_params(&r).is_err());
        r.client_id = "has space".into();
        assert!(RestClient::order_params(&r).is_err());
        assert!(valid_client_id("pm.1:2/3_4-5"));
    }
}
