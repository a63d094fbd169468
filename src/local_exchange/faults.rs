//! Seeded fault injection: which faults the exchange injects, how often, and counters per kind.
//!
//! Each kind has a rate: the probability that one of its opportunities faults. Opportunities are per kind — a REST
//! request (rate limit, clock skew), an order (the four order faults), a market frame sent to a subscriber (market
//! closes, stalls, malformed and truncated frames), a tick of an open user stream (user closes and stalls, listen
//! key expiry). Whether the n-th opportunity of a kind faults is a pure function of (seed, kind, n), so a seed
//! gives the same schedule whatever the interleaving of connections. `arm` makes the next opportunity fault.

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::account::{ExecType, Execution};
use super::server::wall_ms;
use crate::binance::rest_wire::ErrorBody;
use crate::model::{Decimal, Side, Venue};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A market stream is closed with code 1001 (going away), as Binance does every 24 h and on maintenance.
    MarketClose1001,
    /// A market stream is closed with code 1008 (policy violation), as Binance does to slow consumers.
    MarketClose1008,
    /// The user-data stream is closed with 1001.
    UserClose1001,
    /// The user-data stream is closed with 1008.
    UserClose1008,
    /// A market stream goes silent (no frames, pings or pongs) for the stall time; the frames meanwhile are lost.
    MarketStall,
    /// The user-data stream goes silent for the stall time; its events arrive afterwards.
    UserStall,
    /// A market frame is replaced by text that is not JSON.
    Malformed,
    /// A market frame is cut in half.
    Truncated,
    /// The listen key expires now: `listenKeyExpired`, the user stream closes, keep-alives get -1125.
    ListenKeyExpired,
    /// A signed request is refused with -1021 (timestamp outside the recvWindow), as with a skewed clock.
    ClockSkew,
    /// A request is answered 429 with `Retry-After`; requests inside that window are violations, and
    /// `ban_after` of them escalate to a 418 ban.
    RateLimit,
    /// A 418 ban (an escalation of repeated violations, or injected directly).
    Ban,
    /// An order is placed and executed, but answered 503 -1007 (execution status unknown).
    OrderUnknown,
    /// An order is refused before acceptance with 500 (not placed).
    OrderRejected,
    /// An order is placed and answered after the delay (longer than a client's timeout).
    OrderDelayed,
    /// An order is placed and the connection is dropped without an answer.
    OrderLost,
}

impl FaultKind {
    pub const ALL: [FaultKind; 16] = [
        FaultKind::MarketClose1001,
        FaultKind::MarketClose1008,
        FaultKind::UserClose1001,
        FaultKind::UserClose1008,
        FaultKind::MarketStall,
        FaultKind::UserStall,
        FaultKind::Malformed,
        FaultKind::Truncated,
        FaultKind::ListenKeyExpired,
        FaultKind::ClockSkew,
        FaultKind::RateLimit,
        FaultKind::Ban,
        FaultKind::OrderUnknown,
        FaultKind::OrderRejected,
        FaultKind::OrderDelayed,
        FaultKind::OrderLost,
    ];
    const N: usize = Self::ALL.len();

    /// The name used by `--faults` and in counts.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::MarketClose1001 => "market-close-1001",
            FaultKind::MarketClose1008 => "market-close-1008",
            FaultKind::UserClose1001 => "user-close-1001",
            FaultKind::UserClose1008 => "user-close-1008",
            FaultKind::MarketStall => "market-stall",
            FaultKind::UserStall => "user-stall",
            FaultKind::Malformed => "malformed",
            FaultKind::Truncated => "truncated",
            FaultKind::ListenKeyExpired => "listen-key-expired",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::RateLimit => "rate-limit",
            FaultKind::Ban => "ban",
            FaultKind::OrderUnknown => "order-unknown",
            FaultKind::OrderRejected => "order-rejected",
            FaultKind::OrderDelayed => "order-delayed",
            FaultKind::OrderLost => "order-lost",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault specification that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec `{spec}`: {why}")]
pub struct FaultSpecError {
    pub spec: String,
    pub why: String,
}

impl FromStr for FaultKind {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| FaultSpecError {
                spec: s.to_string(),
                why: format!(
                    "unknown fault kind; known: all, {}",
                    FaultKind::ALL.map(FaultKind::name).join(", ")
                ),
            })
    }
}

/// What faults to inject, and their timings.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    /// (kind, probability per opportunity in 0..=1); kinds not listed never fault (unless armed).
    pub rates: Vec<(FaultKind, f64)>,
    /// `Retry-After` of a 429.
    pub retry_after: Duration,
    /// Length of a 418 ban.
    pub ban: Duration,
    /// Violations inside one 429 window that escalate to a ban.
    pub ban_after: u32,
    /// How long a stall lasts.
    pub stall: Duration,
    /// How long a delayed order answer is held.
    pub delay: Duration,
    /// How often an open user stream draws its faults.
    pub user_tick: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            seed: 0,
            rates: Vec::new(),
            retry_after: Duration::from_secs(2),
            ban: Duration::from_secs(10),
            ban_after: 3,
            stall: Duration::from_secs(5),
            delay: Duration::from_secs(15),
            user_tick: Duration::from_secs(1),
        }
    }
}

impl FaultPlan {
    /// Reads `KIND=RATE,KIND=RATE` (`all=RATE` sets every kind; later entries override earlier ones).
    pub fn parse_rates(spec: &str) -> Result<Vec<(FaultKind, f64)>, FaultSpecError> {
        let mut rates: Vec<(FaultKind, f64)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let err = |why: &str| FaultSpecError {
                spec: part.to_string(),
                why: why.to_string(),
            };
            let (kind, rate) = part
                .split_once('=')
                .ok_or_else(|| err("expected KIND=RATE, e.g. market-stall=0.001"))?;
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| err("the rate is not a number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(err("the rate is a probability per opportunity, in 0..=1"));
            }
            let kinds: Vec<FaultKind> = match kind.trim() {
                "all" => FaultKind::ALL.to_vec(),
                k => vec![k.parse()?],
            };
            for k in kinds {
                rates.retain(|(x, _)| *x != k);
                rates.push((k, rate));
            }
        }
        Ok(rates)
    }

    /// Checks the timings; collects every problem.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.ban_after == 0 {
            p.push("fault ban_after must be >= 1".to_string());
        }
        if self.user_tick.is_zero() {
            p.push("fault user_tick must be > 0".to_string());
        }
        if self.rates.iter().any(|(_, r)| !(0.0..=1.0).contains(r)) {
            p.push("fault rates must be in 0..=1".to_string());
        }
        p
    }
}

/// Faults injected so far, by kind, and the requests made inside a 429 window or a 418 ban.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub by_kind: Vec<(FaultKind, u64)>,
    /// Requests received inside a Retry-After window or a ban (each one a violation on Binance).
    pub violations: u64,
}

impl FaultCounts {
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
    pub fn total(&self) -> u64 {
        self.by_kind.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, n) in &self.by_kind {
            write!(f, "{k} {n}, ")?;
        }
        write!(f, "violations {}", self.violations)
    }
}

/// What the exchange did, for tests that check a bot against it: orders accepted (by client id, in order),
/// trades, and market-feed outages caused by faults (wall-clock ms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultLedger {
    /// (client order id, wall ms) of every accepted order.
    pub accepted: Vec<(String, i64)>,
    pub trades: Vec<LedgerTrade>,
    pub outages: Vec<Outage>,
}

/// One trade of the account.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerTrade {
    pub client_id: String,
    pub trade_id: i64,
    pub side: Side,
    pub qty: Decimal,
}

/// A market feed that got no frame from a fault (a close or a stall) until the next frame went out on that
/// market; `to_ms` is `None` while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub venue: Venue,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
}

/// The rate-limit window: when it ends, and what happened inside it.
#[derive(Debug, Default)]
struct Window {
    limited_until: Option<Instant>,
    banned_until: Option<Instant>,
    in_window: u32,
}

/// The live fault state of an exchange: rates (changeable at run time), opportunity and fault counters.
pub(crate) struct Faults {
    seed: AtomicU64,
    /// f64 bits of each kind's rate.
    rates: [AtomicU64; FaultKind::N],
    armed: [AtomicU32; FaultKind::N],
    seen: [AtomicU64; FaultKind::N],
    fired: [AtomicU64; FaultKind::N],
    violations: AtomicU64,
    window: Mutex<Window>,
    timing: Mutex<FaultPlan>,
    ledger: Mutex<FaultLedger>,
    /// Per market (spot, perp): wall ms since a fault cut it, 0 when frames flow.
    down_since: [AtomicI64; 2],
}

/// splitmix64: a well-mixed 64-bit hash, enough to turn (seed, kind, n) into a uniform draw.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Faults {
    pub(crate) fn new(plan: &FaultPlan) -> Faults {
        let f = Faults {
            seed: AtomicU64::new(plan.seed),
            rates: std::array::from_fn(|_| AtomicU64::new(0f64.to_bits())),
            armed: std::array::from_fn(|_| AtomicU32::new(0)),
            seen: std::array::from_fn(|_| AtomicU64::new(0)),
            fired: std::array::from_fn(|_| AtomicU64::new(0)),
            violations: AtomicU64::new(0),
            window: Mutex::new(Window::default()),
            timing: Mutex::new(plan.clone()),
            ledger: Mutex::new(FaultLedger::default()),
            down_since: [AtomicI64::new(0), AtomicI64::new(0)],
        };
        f.set_plan(plan);
        f
    }

    /// Replaces the seed, rates and timings (counters keep counting).
    pub(crate) fn set_plan(&self, plan: &FaultPlan) {
        self.seed.store(plan.seed, Ordering::Relaxed);
        for r in &self.rates {
            r.store(0f64.to_bits(), Ordering::Relaxed);
        }
        for (k, rate) in &plan.rates {
            self.set_rate(*k, *rate);
        }
        *self.timing.lock().unwrap_or_else(|p| p.into_inner()) = plan.clone();
    }

    pub(crate) fn set_rate(&self, kind: FaultKind, rate: f64) {
        if let Some(r) = self.rates.get(kind.index()) {
            r.store(rate.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        }
    }

    pub(crate) fn arm(&self, kind: FaultKind) {
        if let Some(a) = self.armed.get(kind.index()) {
            a.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn plan(&self) -> FaultPlan {
        self.timing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One opportunity of `kind`: true when it faults (and is counted).
    fn draw(&self, kind: FaultKind) -> bool {
        let i = kind.index();
        let (Some(seen), Some(rate), Some(armed)) =
            (self.seen.get(i), self.rates.get(i), self.armed.get(i))
        else {
            return false;
        };
        let n = seen.fetch_add(1, Ordering::Relaxed);
        let armed = armed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| a.checked_sub(1))
            .is_ok();
        let rate = f64::from_bits(rate.load(Ordering::Relaxed));
        let hit = armed || {
            let seed = self.seed.load(Ordering::Relaxed);
            let u = mix(seed ^ mix((i as u64) << 48 ^ n)) >> 11;
            (u as f64) / ((1u64 << 53) as f64) < rate
        };
        if hit {
            self.count(kind);
        }
        hit
    }

    fn count(&self, kind: FaultKind) {
        if let Some(f) = self.fired.get(kind.index()) {
            f.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(fault = kind.name(), "fault injected");
    }

    /// The first of `kinds` that faults at this opportunity (every kind draws, so numbering stays per kind).
    fn first(&self, kinds: &[FaultKind]) -> Option<FaultKind> {
        kinds.iter().fold(
            None,
            |hit, &k| if self.draw(k) { hit.or(Some(k)) } else { hit },
        )
    }

    pub(crate) fn counts(&self) -> FaultCounts {
        FaultCounts {
            by_kind: FaultKind::ALL
                .iter()
                .map(|k| {
                    let n = self
                        .fired
                        .get(k.index())
                        .map_or(0, |f| f.load(Ordering::Relaxed));
                    (*k, n)
                })
                .collect(),
            violations: self.violations.load(Ordering::Relaxed),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, FaultLedger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ledger_snapshot(&self) -> FaultLedger {
        self.ledger().clone()
    }

    /// An order was accepted (placed) by the exchange.
    pub(crate) fn record_accepted(&self, client_id: &str) {
        self.ledger()
            .accepted
            .push((client_id.to_string(), wall_ms()));
    }

    /// Executions were published; trades go to the ledger.
    pub(crate) fn record_executions(&self, execs: &[Execution]) {
        let mut l = self.ledger();
        for e in execs.iter().filter(|e| e.exec == ExecType::Trade) {
            l.trades.push(LedgerTrade {
                client_id: e.order.client_id.clone(),
                trade_id: e.trade_id,
                side: e.order.side,
                qty: e.last_qty,
            });
        }
    }

    fn venue_slot(&self, venue: Venue) -> &AtomicI64 {
        match venue {
            Venue::Spot => &self.down_since[0],
            Venue::Perp => &self.down_since[1],
        }
    }

    /// A fault cut a market feed (close or stall).
    pub(crate) fn feed_cut(&self, venue: Venue) {
        let now = wall_ms();
        if self
            .venue_slot(venue)
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.ledger().outages.push(Outage {
                venue,
                from_ms: now,
                to_ms: None,
            });
        }
    }

    /// A market frame went out: ends that market's outage, if one is open (one atomic load otherwise).
    pub(crate) fn feed_flowing(&self, venue: Venue) {
        let slot = self.venue_slot(venue);
        if slot.load(Ordering::Relaxed) == 0 || slot.swap(0, Ordering::Relaxed) == 0 {
            return;
        }
        let now = wall_ms();
        let mut l = self.ledger();
        if let Some(o) = l
            .outages
            .iter_mut()
            .rev()
            .find(|o| o.venue == venue && o.to_ms.is_none())
        {
            o.to_ms = Some(now);
        }
    }

    /// A market frame is about to be sent: what happens to it instead, if anything.
    pub(crate) fn on_market_frame(&self) -> Option<Disruption> {
        let k = self.first(&[
            FaultKind::MarketClose1001,
            FaultKind::MarketClose1008,
            FaultKind::MarketStall,
            FaultKind::Malformed,
            FaultKind::Truncated,
        ])?;
        Some(match k {
            FaultKind::MarketClose1001 => Disruption::Close(1001),
            FaultKind::MarketClose1008 => Disruption::Close(1008),
            FaultKind::MarketStall => Disruption::Stall(self.plan().stall),
            FaultKind::Malformed => Disruption::Malformed,
            _ => Disruption::Truncated,
        })
    }

    /// A tick of an open user stream: what happens to it, if anything.
    pub(crate) fn on_user_tick(&self) -> Option<Disruption> {
        let k = self.first(&[
            FaultKind::UserClose1001,
            FaultKind::UserClose1008,
            FaultKind::UserStall,
            FaultKind::ListenKeyExpired,
        ])?;
        Some(match k {
            FaultKind::UserClose1001 => Disruption::Close(1001),
            FaultKind::UserClose1008 => Disruption::Close(1008),
            FaultKind::UserStall => Disruption::Stall(self.plan().stall),
            _ => Disruption::ExpireListenKey,
        })
    }

    /// A new order passed its checks: the fault of its answer, if any.
    pub(crate) fn on_order(&self) -> Option<OrderFault> {
        let k = self.first(&[
            FaultKind::OrderRejected,
            FaultKind::OrderUnknown,
            FaultKind::OrderDelayed,
            FaultKind::OrderLost,
        ])?;
        Some(match k {
            FaultKind::OrderRejected => OrderFault::RejectedBefore,
            FaultKind::OrderUnknown => OrderFault::Unknown,
            FaultKind::OrderDelayed => OrderFault::Delayed(self.plan().delay),
            _ => OrderFault::Lost,
        })
    }

    /// A REST request arrived: the refusal it gets (rate limit, ban, clock skew), if any.
    fn on_request(&self, signed: bool) -> Option<Response> {
        let now = Instant::now();
        let plan = self.plan();
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = w.banned_until.filter(|u| *u > now) {
            self.violations.fetch_add(1, Ordering::Relaxed);
            return Some(refusal(418, until - now));
        }
        if let Some(until) = w.limited_until.filter(|u| *u > now) {
            self.violations.fetch_add(1, Ordering::Relaxed);
            w.in_window += 1;
            if w.in_window < plan.ban_after {
                return Some(refusal(429, until - now));
            }
            // Binance escalates repeated violations to an IP ban.
            w.limited_until = None;
            w.banned_until = Some(now + plan.ban);
            self.count(FaultKind::Ban);
            return Some(refusal(418, plan.ban));
        }
        if self.draw(FaultKind::Ban) {
            w.banned_until = Some(now + plan.ban);
            return Some(refusal(418, plan.ban));
        }
        if self.draw(FaultKind::RateLimit) {
            w.limited_until = Some(now + plan.retry_after);
            w.in_window = 0;
            return Some(refusal(429, plan.retry_after));
        }
        drop(w);
        if signed && self.draw(FaultKind::ClockSkew) {
            return Some(error(
                StatusCode::BAD_REQUEST,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ));
        }
        None
    }
}

/// What a websocket fault does to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disruption {
    Close(u16),
    Stall(Duration),
    Malformed,
    Truncated,
    ExpireListenKey,
}

/// What an order fault does to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderFault {
    /// Refused with 500 before acceptance: not placed.
    RejectedBefore,
    /// Placed; answered 503 -1007.
    Unknown,
    /// Placed; answered after the delay.
    Delayed(Duration),
    /// Placed; the connection is dropped without an answer.
    Lost,
}

/// How a stream goes on after a disruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Keep serving (the frame was replaced, or the stall is over).
    Resume,
    /// The socket is closed (or broken): end the stream.
    Closed,
}

/// Applies a websocket fault. `frame` is the frame that was due (market streams), sent mangled for malformed or
/// truncated. A stall touches the socket not at all (no frames, pings or pongs) until it is over or shutdown.
pub(crate) async fn disrupt(
    sock: &mut WebSocket,
    d: Disruption,
    frame: &str,
    shutdown: &tokio_util::sync::CancellationToken,
) -> After {
    let sent = match d {
        Disruption::Close(code) => {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static("fault injected"),
            };
            let _ = sock.send(Message::Close(Some(frame))).await;
            return After::Closed;
        }
        Disruption::Stall(t) => {
            tokio::select! {
                _ = tokio::time::sleep(t) => return After::Resume,
                _ = shutdown.cancelled() => return After::Closed,
            }
        }
        Disruption::Malformed => {
            sock.send(Message::Text("{\"e\":\"bookTicker\",\"b\":".into()))
                .await
        }
        Disruption::Truncated => {
            let cut = frame.get(..frame.len() / 2).unwrap_or_default();
            sock.send(Message::Text(cut.to_string().into())).await
        }
        // The expiry is published on the user channel; the stream itself goes on until it sees it.
        Disruption::ExpireListenKey => Ok(()),
    };
    if sent.is_err() {
        After::Closed
    } else {
        After::Resume
    }
}

fn error(status: StatusCode, code: i64, msg: &str) -> Response {
    let body = ErrorBody {
        code,
        msg: msg.to_string(),
    };
    (status, axum::Json(body)).into_response()
}

/// 429 or 418 with Binance's body and `Retry-After` (whole seconds, rounded up).
fn refusal(status: u16, wait: Duration) -> Response {
    let mut resp = if status == 418 {
        error(
            StatusCode::IM_A_TEAPOT,
            -1003,
            "Way too many requests; IP banned. Please use the websocket for live updates to avoid bans.",
        )
    } else {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            -1003,
            "Too many requests; please use the websocket for live updates to avoid polling the API.",
        )
    };
    let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
    resp.headers_mut()
        .insert("Retry-After", HeaderValue::from(secs));
    resp
}

/// 500 before acceptance.
pub(crate) fn rejected_before() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        -1001,
        "Internal error; unable to process your request. Please try again.",
    )
}

/// 503 -1007 for an order that was executed.
pub(crate) fn unknown_outcome() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    )
}

/// A response whose body fails at once: the server drops the connection instead of answering.
pub(crate) fn dropped_connection() -> Response {
    let body = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("fault: answer lost"))
    });
    Response::new(Body::from_stream(body))
}

/// Paths a request can reach without a signature (they get no clock-skew fault).
fn is_unsigned(path: &str) -> bool {
    matches!(
        path,
        "/fapi/v1/ping" | "/fapi/v1/time" | "/fapi/v1/exchangeInfo" | "/fapi/v1/listenKey"
    )
}

/// Middleware in front of every REST route: rate limits, bans and clock skew, before the handler runs.
/// Websocket upgrades pass.
pub(crate) async fn rest_gate(
    State(s): State<std::sync::Arc<super::server::Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path.starts_with("/fapi/") {
        if let Some(refused) = s.faults.on_request(!is_unsigned(path)) {
            return refused;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(spec: &str, seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            rates: FaultPlan::parse_rates(spec).unwrap(),
            ..FaultPlan::default()
        }
    }

    fn schedule(f: &Faults, kind: FaultKind, n: usize) -> Vec<bool> {
        (0..n).map(|_| f.draw(kind)).collect()
    }

    #[test]
    fn same_seed_same_schedule_and_rate_roughly_kept() {
        let a = Faults::new(&plan("market-stall=0.1", 7));
        let b = Faults::new(&plan("market-stall=0.1", 7));
        let c = Faults::new(&plan("market-stall=0.1", 8));
        let sa = schedule(&a, FaultKind::MarketStall, 10_000);
        assert_eq!(sa, schedule(&b, FaultKind::MarketStall, 10_000));
        assert_ne!(sa, schedule(&c, FaultKind::MarketStall, 10_000));
        let hits = sa.iter().filter(|h| **h).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(a.counts().get(FaultKind::MarketStall), hits as u64);
        // Unlisted kinds never fault.
        assert!(!schedule(&a, FaultKind::Malformed, 1000).contains(&true));
    }

    #[test]
    fn armed_fault_fires_once() {
        let f = Faults::new(&FaultPlan::default());
        f.arm(FaultKind::OrderLost);
        assert_eq!(f.on_order(), Some(OrderFault::Lost));
        assert_eq!(f.on_order(), None);
        assert_eq!(f.counts().get(FaultKind::OrderLost), 1);
    }

    #[test]
    fn spec_errors_name_the_problem() {
        let e = FaultPlan::parse_rates("market-stall").unwrap_err();
        assert!(e.why.contains("KIND=RATE"), "{e}");
        let e = FaultPlan::parse_rates("bogus=0.1").unwrap_err();
        assert!(e.to_string().contains("unknown fault kind"), "{e}");
        let e = FaultPlan::parse_rates("ban=2").unwrap_err();
        assert!(e.why.contains("0..=1"), "{e}");
        let all = FaultPlan::parse_rates("all=0.01,ban=0").unwrap();
        assert_eq!(all.len(), FaultKind::ALL.len());
        assert!(all.contains(&(FaultKind::Ban, 0.0)));
    }

    #[tokio::test(start_paused = true)]
    async fn violations_inside_the_window_escalate_to_a_ban() {
        let f = Faults::new(&FaultPlan {
            ban_after: 2,
            ..FaultPlan::default()
        });
        f.arm(FaultKind::RateLimit);
        let r = f.on_request(true).unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["Retry-After"], "2");
        assert_eq!(f.on_request(true).unwrap().status(), 429);
        assert_eq!(f.on_request(true).unwrap().status(), 418);
        assert_eq!(f.on_request(false).unwrap().status(), 418);
        assert_eq!(f.counts().violations, 3);
        assert_eq!(f.counts().get(FaultKind::Ban), 1);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(f.on_request(true).is_none());
    }
}
