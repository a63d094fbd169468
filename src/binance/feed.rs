//! Market-data feed task for one market (spot or perp): combined-stream websockets (one per USD-M route, see
//! [`super::routing`]) with ping/pong, jittered reconnects, silence detection, a per-stream silence warning and the
//! 24 h cut; every frame stamped with a local receive time and turned into [`MarketEvent`]s for the engine channel
//! (plus an optional raw tap for recording). Each event also carries the
//! monotonic instant its frame came off the websocket, taken before parsing (see [`Received`]), for the in-bot
//! latency histogram.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::market_wire::{parse_frame, Frame};
use super::routing::{combined_url, group_by_route, is_refused_route, Route, Routing};
use crate::clock::Clock;
use crate::market::MarketEvent;
use crate::model::{TsNs, Venue};

/// Streams premia reads from the USD-M futures market of `symbol`.
pub fn perp_streams(symbol: &str) -> Vec<String> {
    let s = symbol.to_ascii_lowercase();
    vec![
        format!("{s}@bookTicker"),
        format!("{s}@markPrice@1s"),
        format!("{s}@forceOrder"),
    ]
}

/// Streams premia reads from the spot market of `symbol`.
pub fn spot_streams(symbol: &str) -> Vec<String> {
    vec![format!("{}@bookTicker", symbol.to_ascii_lowercase())]
}

/// One market's feed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    pub venue: Venue,
    /// `wss://fstream.binance.com`, `wss://stream.binance.com:9443`, `ws://127.0.0.1:PORT`, … (no path).
    pub base_url: String,
    /// Stream names, e.g. `btcusdt@bookTicker`.
    pub streams: Vec<String>,
    /// USD-M routing (perp only; spot streams always use the unrouted paths).
    pub routing: Routing,
    /// No data frame for this long → reconnect.
    pub silence_timeout: Duration,
    /// A stream that pushes nothing for this long while its connection is up gets one [`FeedStatus::StreamSilent`].
    pub stream_silence: Duration,
    /// Reconnect proactively after this long (Binance cuts connections at 24 h).
    pub max_connection_age: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl FeedConfig {
    pub fn new(venue: Venue, base_url: impl Into<String>, streams: Vec<String>) -> Self {
        FeedConfig {
            venue,
            base_url: base_url.into(),
            streams,
            routing: Routing::Routed,
            silence_timeout: Duration::from_secs(10),
            stream_silence: Duration::from_secs(60),
            max_connection_age: Duration::from_secs(23 * 3600 + 50 * 60),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
        }
    }

    /// The perp feed of `symbol` (bookTicker, markPrice@1s, forceOrder).
    pub fn perp(base_url: impl Into<String>, symbol: &str) -> Self {
        Self::new(Venue::Perp, base_url, perp_streams(symbol))
    }

    /// The spot feed of `symbol` (bookTicker).
    pub fn spot(base_url: impl Into<String>, symbol: &str) -> Self {
        Self::new(Venue::Spot, base_url, spot_streams(symbol))
    }

    /// The same feed with another routing.
    pub fn with_routing(self, routing: Routing) -> Self {
        FeedConfig { routing, ..self }
    }

    /// The connections this feed opens: spot and legacy perp one unrouted connection for every stream; routed (and
    /// auto) perp one connection per route, never mixing routes on a socket.
    pub fn connections(&self) -> Vec<FeedConnection> {
        if self.venue == Venue::Spot || self.routing == Routing::Legacy {
            return vec![FeedConnection {
                route: None,
                streams: self.streams.clone(),
                fallback: false,
            }];
        }
        group_by_route(&self.streams)
            .into_iter()
            .map(|(route, streams)| FeedConnection {
                route: Some(route),
                streams,
                fallback: self.routing == Routing::Auto,
            })
            .collect()
    }

    /// The URL of each connection: `{base}{route}/stream?streams=a/b` (no route in legacy mode and for spot).
    pub fn urls(&self) -> Vec<String> {
        self.connections()
            .iter()
            .map(|c| combined_url(&self.base_url, c.route, &c.streams))
            .collect()
    }
}

/// One websocket of a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConnection {
    /// `None`: the unrouted (legacy) path.
    pub route: Option<Route>,
    pub streams: Vec<String>,
    /// `auto` routing: a routed handshake refused with HTTP 4xx falls back to the unrouted path.
    pub fallback: bool,
}

/// Why a feed connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server closed the connection (close frame or EOF).
    Closed,
    /// The server announced maintenance (`serverShutdown`).
    ServerShutdown,
    /// No data frame within the silence timeout.
    Silence,
    /// Proactive reconnect before the server's 24 h cut.
    MaxAge,
    /// A websocket or I/O error.
    Error(String),
}

/// Connection state change of one of a market's feed connections (`route` `None` = the unrouted connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStatus {
    Connected {
        venue: Venue,
        route: Option<Route>,
        ts: TsNs,
    },
    Disconnected {
        venue: Venue,
        route: Option<Route>,
        ts: TsNs,
        reason: DisconnectReason,
    },
    /// A subscribed stream pushed nothing for `silent_for` although its connection is (re)connecting fine: most
    /// likely the routing does not match the server (e.g. a market stream on an unrouted connection). Sent once;
    /// again only after the stream has pushed data in between.
    StreamSilent {
        venue: Venue,
        route: Option<Route>,
        routing: Routing,
        stream: String,
        silent_for: Duration,
        ts: TsNs,
    },
    /// A connection attempt failed (the feed is down and keeps trying).
    ConnectFailed {
        venue: Venue,
        route: Option<Route>,
        ts: TsNs,
        error: String,
    },
}

impl FeedStatus {
    /// The one-line warning of a [`FeedStatus::StreamSilent`] (status and summary show it); `None` otherwise.
    pub fn warning(&self) -> Option<String> {
        let FeedStatus::StreamSilent {
            venue,
            route,
            routing,
            stream,
            silent_for,
            ..
        } = self
        else {
            return None;
        };
        let conn = match route {
            Some(r) => format!("the routed {r} connection"),
            None => "the unrouted connection".to_string(),
        };
        let hint = match venue {
            Venue::Spot => "spot streams are not routed".to_string(),
            Venue::Perp => format!("routing: {routing}; check [feeds] futures_routing"),
        };
        Some(format!(
            "{} stream {stream} sent nothing for {} s on {conn} although the connection is up ({hint})",
            venue.as_str(),
            silent_for.as_secs()
        ))
    }
}

/// A market event and the monotonic instant its websocket frame was received: taken as soon as the frame comes
/// off the socket, before it is parsed (the start of the frame → order latency).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub event: MarketEvent,
    pub at: std::time::Instant,
}

/// What a feed sends when the caller has no channel type of its own (the engine's event type only needs
/// `From<Received> + From<FeedStatus>`).
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    Market(MarketEvent),
    Status(FeedStatus),
}

impl From<Received> for FeedEvent {
    fn from(r: Received) -> Self {
        FeedEvent::Market(r.event)
    }
}

impl From<FeedStatus> for FeedEvent {
    fn from(s: FeedStatus) -> Self {
        FeedEvent::Status(s)
    }
}

/// A raw frame with its local receive timestamp (for `premia record`).
pub type RawFrame = (TsNs, String);

enum SessionEnd {
    Cancelled,
    ReceiverGone,
    Disconnected {
        reason: DisconnectReason,
        had_data: bool,
    },
}

/// Starts [`run_feed`] on the current runtime.
pub fn spawn_feed<E>(
    cfg: FeedConfig,
    clock: Clock,
    tx: mpsc::Sender<E>,
    raw_tap: Option<mpsc::Sender<RawFrame>>,
    cancel: CancellationToken,
) -> JoinHandle<()>
where
    E: From<Received> + From<FeedStatus> + Send + 'static,
{
    tokio::spawn(run_feed(cfg, clock, tx, raw_tap, cancel))
}

/// Runs one market's feed until `cancel` fires or the receiver of `tx` is dropped: its connections (one per route)
/// run side by side.
pub async fn run_feed<E>(
    cfg: FeedConfig,
    clock: Clock,
    tx: mpsc::Sender<E>,
    raw_tap: Option<mpsc::Sender<RawFrame>>,
    cancel: CancellationToken,
) where
    E: From<Received> + From<FeedStatus> + Send + 'static,
{
    let conns = cfg.connections();
    let runs = conns.into_iter().map(|conn| {
        run_connection(
            &cfg,
            conn,
            clock.clone(),
            tx.clone(),
            raw_tap.clone(),
            cancel.clone(),
        )
    });
    futures_util::future::join_all(runs).await;
}

/// One connection of a feed, reconnected until `cancel` fires or the receiver of `tx` is dropped.
async fn run_connection<E>(
    cfg: &FeedConfig,
    conn: FeedConnection,
    clock: Clock,
    tx: mpsc::Sender<E>,
    mut raw_tap: Option<mpsc::Sender<RawFrame>>,
    cancel: CancellationToken,
) where
    E: From<Received> + From<FeedStatus> + Send + 'static,
{
    let venue = cfg.venue;
    let mut route = conn.route;
    let mut url = combined_url(&cfg.base_url, route, &conn.streams);
    let mut watch = StreamWatch::new(&conn.streams, cfg.stream_silence);
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio_tungstenite::connect_async(url.as_str()) => r,
        };
        let mut immediate = false;
        match connected {
            Err(e) if conn.fallback && route.is_some() && is_refused_route(&e) => {
                tracing::warn!(venue = venue.as_str(), %url, error = %e,
                    "market feed: routed path refused; falling back to the legacy (unrouted) path (routing = auto)");
                route = None;
                url = combined_url(&cfg.base_url, route, &conn.streams);
                immediate = true;
            }
            Err(e) => {
                // Per attempt at debug level: the receiver logs the outage once (ConnectFailed).
                tracing::debug!(venue = venue.as_str(), %url, error = %e, "market feed: connect failed");
                // An unreachable server is not a silent stream.
                watch.restart(Instant::now());
                let status = FeedStatus::ConnectFailed {
                    venue,
                    route,
                    ts: clock(),
                    error: e.to_string(),
                };
                if tx.send(E::from(status)).await.is_err() {
                    return;
                }
            }
            Ok((ws, _)) => {
                let ctx = SessionCtx {
                    cfg,
                    route,
                    clock: &clock,
                    tx: &tx,
                    cancel: &cancel,
                };
                match run_session(ws, &ctx, &url, &mut raw_tap, &mut watch, &mut backoff).await {
                    Some(at_once) => immediate = at_once,
                    None => return,
                }
            }
        }
        if !immediate {
            let delay = backoff.next_delay();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// One established connection: announces it, runs its session, announces its end. `None`: stop the feed;
/// `Some(immediate)`: reconnect (at once when `immediate`).
async fn run_session<E, S>(
    ws: S,
    ctx: &SessionCtx<'_, E>,
    url: &str,
    raw_tap: &mut Option<mpsc::Sender<RawFrame>>,
    watch: &mut StreamWatch,
    backoff: &mut Backoff,
) -> Option<bool>
where
    E: From<Received> + From<FeedStatus> + Send + 'static,
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let (venue, route) = (ctx.cfg.venue, ctx.route);
    tracing::info!(venue = venue.as_str(), %url, "market feed connected");
    let status = FeedStatus::Connected {
        venue,
        route,
        ts: (ctx.clock)(),
    };
    ctx.tx.send(E::from(status)).await.ok()?;
    let (reason, had_data) = match session(ws, ctx, raw_tap, watch).await {
        SessionEnd::Cancelled | SessionEnd::ReceiverGone => return None,
        SessionEnd::Disconnected { reason, had_data } => (reason, had_data),
    };
    tracing::warn!(venue = venue.as_str(), %url, ?reason, "market feed disconnected");
    if had_data {
        backoff.reset();
    }
    let immediate = matches!(
        reason,
        DisconnectReason::ServerShutdown | DisconnectReason::MaxAge
    );
    let status = FeedStatus::Disconnected {
        venue,
        route,
        ts: (ctx.clock)(),
        reason,
    };
    ctx.tx.send(E::from(status)).await.ok()?;
    Some(immediate)
}

/// Far enough to never fire while a feed runs.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// When each stream of a connection last pushed data, across reconnects (a misrouted stream stays silent however
/// often its connection is re-established).
struct StreamWatch {
    names: Vec<String>,
    last: Vec<Instant>,
    warned: Vec<bool>,
    timeout: Duration,
}

impl StreamWatch {
    fn new(streams: &[String], timeout: Duration) -> Self {
        // forceOrder only pushes when a liquidation happens: its silence says nothing about the routing (its
        // connection's markPrice stream is watched instead).
        let names: Vec<String> = streams
            .iter()
            .filter(|s| !s.contains("@forceOrder") && !s.starts_with("!forceOrder"))
            .cloned()
            .collect();
        let now = Instant::now();
        StreamWatch {
            last: vec![now; names.len()],
            warned: vec![false; names.len()],
            names,
            timeout,
        }
    }

    /// Counts the silence from `now` again (after a failed connect).
    fn restart(&mut self, now: Instant) {
        self.last.iter_mut().for_each(|t| *t = now);
    }

    /// Notes the stream of a combined frame (`{"stream":"…","data":…}`) as alive.
    fn seen(&mut self, frame: &str, now: Instant) {
        let Some(name) = frame_stream(frame) else {
            return;
        };
        if let Some(i) = self.names.iter().position(|n| n == name) {
            self.last[i] = now;
            self.warned[i] = false;
        }
    }

    /// The earliest time a stream not yet warned about becomes silent.
    fn next_deadline(&self) -> Instant {
        self.last
            .iter()
            .zip(&self.warned)
            .filter(|(_, w)| !**w)
            .map(|(t, _)| *t + self.timeout)
            .min()
            .unwrap_or_else(|| Instant::now() + NEVER)
    }

    /// Streams silent for the timeout at `now` and not warned about yet; marks them warned.
    fn newly_silent(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let mut out = Vec::new();
        for i in 0..self.names.len() {
            let silent = now.saturating_duration_since(self.last[i]);
            if !self.warned[i] && silent >= self.timeout {
                self.warned[i] = true;
                out.push((self.names[i].clone(), silent));
            }
        }
        out
    }
}

/// The stream name of a combined frame, read from its head without parsing it.
fn frame_stream(frame: &str) -> Option<&str> {
    const KEY: &str = "\"stream\":\"";
    let head = frame.get(..frame.len().min(96)).unwrap_or(frame);
    let start = head.find(KEY)? + KEY.len();
    let rest = &frame[start..];
    rest.find('"').map(|end| &rest[..end])
}

/// What a session needs besides its socket and mutable state.
struct SessionCtx<'a, E> {
    cfg: &'a FeedConfig,
    route: Option<Route>,
    clock: &'a Clock,
    tx: &'a mpsc::Sender<E>,
    cancel: &'a CancellationToken,
}

/// Sends one [`FeedStatus::StreamSilent`] per stream newly silent; false when the receiver is gone.
async fn warn_silent<E>(ctx: &SessionCtx<'_, E>, watch: &mut StreamWatch) -> bool
where
    E: From<Received> + From<FeedStatus> + Send + 'static,
{
    for (stream, silent_for) in watch.newly_silent(Instant::now()) {
        let status = FeedStatus::StreamSilent {
            venue: ctx.cfg.venue,
            route: ctx.route,
            routing: ctx.cfg.routing,
            stream,
            silent_for,
            ts: (ctx.clock)(),
        };
        if let Some(w) = status.warning() {
            tracing::warn!("{w}");
        }
        if ctx.tx.send(E::from(status)).await.is_err() {
            return false;
        }
    }
    true
}

async fn session<E, S>(
    mut ws: S,
    ctx: &SessionCtx<'_, E>,
    raw_tap: &mut Option<mpsc::Sender<RawFrame>>,
    watch: &mut StreamWatch,
) -> SessionEnd
where
    E: From<Received> + From<FeedStatus> + Send + 'static,
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let (cfg, clock, tx, cancel) = (ctx.cfg, ctx.clock, ctx.tx, ctx.cancel);
    let venue = cfg.venue;
    let max_age = tokio::time::sleep(cfg.max_connection_age);
    tokio::pin!(max_age);
    let silence = tokio::time::sleep(cfg.silence_timeout);
    tokio::pin!(silence);
    let stream_silence = tokio::time::sleep_until(watch.next_deadline());
    tokio::pin!(stream_silence);
    let mut had_data = false;
    let mut parse_errors: u64 = 0;
    loop {
        let msg = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let _ = ws.close().await;
                return SessionEnd::Cancelled;
            }
            _ = &mut max_age => {
                let _ = ws.close().await;
                return SessionEnd::Disconnected { reason: DisconnectReason::MaxAge, had_data };
            }
            _ = &mut silence => {
                return SessionEnd::Disconnected { reason: DisconnectReason::Silence, had_data };
            }
            _ = &mut stream_silence => {
                if !warn_silent(ctx, watch).await {
                    return SessionEnd::ReceiverGone;
                }
                stream_silence.as_mut().reset(watch.next_deadline());
                continue;
            }
            msg = ws.next() => msg,
        };
        let text = match msg {
            None | Some(Ok(Message::Close(_))) => {
                return SessionEnd::Disconnected {
                    reason: DisconnectReason::Closed,
                    had_data,
                }
            }
            Some(Err(e)) => {
                return SessionEnd::Disconnected {
                    reason: DisconnectReason::Error(e.to_string()),
                    had_data,
                }
            }
            Some(Ok(Message::Ping(payload))) => {
                if let Err(e) = ws.send(Message::Pong(payload)).await {
                    return SessionEnd::Disconnected {
                        reason: DisconnectReason::Error(e.to_string()),
                        had_data,
                    };
                }
                continue;
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
        };
        // The frame is in: this instant starts the frame → order latency (parsing counts).
        let received = std::time::Instant::now();
        let ts = clock();
        had_data = true;
        if let Some(tap) = raw_tap {
            if tap.send((ts, text.as_str().to_owned())).await.is_err() {
                tracing::warn!(
                    venue = venue.as_str(),
                    "raw frame tap closed; recording stops"
                );
                *raw_tap = None;
            }
        }
        match parse_frame(text.as_str(), venue) {
            Ok(Frame::Market(kind)) => {
                let event = MarketEvent { ts, kind };
                if tx
                    .send(E::from(Received {
                        event,
                        at: received,
                    }))
                    .await
                    .is_err()
                {
                    return SessionEnd::ReceiverGone;
                }
                // Let the engine (woken into this worker's next slot) handle the event now rather than after a
                // burst of further frames: this is the frame → decision latency.
                tokio::task::yield_now().await;
            }
            Ok(Frame::ServerShutdown) => {
                let _ = ws.close().await;
                return SessionEnd::Disconnected {
                    reason: DisconnectReason::ServerShutdown,
                    had_data,
                };
            }
            Ok(Frame::Ignored) => {}
            Err(e) => {
                parse_errors += 1;
                if parse_errors.is_power_of_two() {
                    tracing::warn!(venue = venue.as_str(), error = %e, count = parse_errors, "market feed: unparsable frame skipped");
                }
            }
        }
        // After the event is on its way: re-arming the timers is not part of the frame → order path.
        let now = Instant::now();
        watch.seen(text.as_str(), now);
        silence.as_mut().reset(now + cfg.silence_timeout);
    }
}
