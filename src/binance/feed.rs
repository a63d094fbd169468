//! Market-data feed task for one market (spot or perp): combined-stream websocket with ping/pong, jittered
//! reconnects, silence detection and the 24 h cut; every frame stamped with a local receive time and turned into
//! [`MarketEvent`]s for the engine channel (plus an optional raw tap for recording). Each event also carries the
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
    /// No data frame for this long → reconnect.
    pub silence_timeout: Duration,
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
            silence_timeout: Duration::from_secs(10),
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

    /// `{base}/stream?streams=a/b/c`.
    pub fn url(&self) -> String {
        let base = self.base_url.trim().trim_end_matches('/');
        let base = base.strip_suffix("/stream").unwrap_or(base);
        let base = base.strip_suffix("/ws").unwrap_or(base);
        format!("{base}/stream?streams={}", self.streams.join("/"))
    }
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

/// Connection state change of one market's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStatus {
    Connected {
        venue: Venue,
        ts: TsNs,
    },
    Disconnected {
        venue: Venue,
        ts: TsNs,
        reason: DisconnectReason,
    },
    /// A connection attempt failed (the feed is down and keeps trying).
    ConnectFailed {
        venue: Venue,
        ts: TsNs,
        error: String,
    },
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

/// Runs one market's feed until `cancel` fires or the receiver of `tx` is dropped.
pub async fn run_feed<E>(
    cfg: FeedConfig,
    clock: Clock,
    tx: mpsc::Sender<E>,
    mut raw_tap: Option<mpsc::Sender<RawFrame>>,
    cancel: CancellationToken,
) where
    E: From<Received> + From<FeedStatus> + Send + 'static,
{
    let url = cfg.url();
    let venue = cfg.venue;
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
            Err(e) => {
                // Per attempt at debug level: the receiver logs the outage once (ConnectFailed).
                tracing::debug!(venue = venue.as_str(), error = %e, "market feed: connect failed");
                let status = FeedStatus::ConnectFailed {
                    venue,
                    ts: clock(),
                    error: e.to_string(),
                };
                if tx.send(E::from(status)).await.is_err() {
                    return;
                }
            }
            Ok((ws, _)) => {
                tracing::info!(venue = venue.as_str(), %url, "market feed connected");
                let status = FeedStatus::Connected { venue, ts: clock() };
                if tx.send(E::from(status)).await.is_err() {
                    return;
                }
                match session(ws, &cfg, &clock, &tx, &mut raw_tap, &cancel).await {
                    SessionEnd::Cancelled | SessionEnd::ReceiverGone => return,
                    SessionEnd::Disconnected { reason, had_data } => {
                        tracing::warn!(venue = venue.as_str(), ?reason, "market feed disconnected");
                        if had_data {
                            backoff.reset();
                        }
                        immediate = matches!(
                            reason,
                            DisconnectReason::ServerShutdown | DisconnectReason::MaxAge
                        );
                        let status = FeedStatus::Disconnected {
                            venue,
                            ts: clock(),
                            reason,
                        };
                        if tx.send(E::from(status)).await.is_err() {
                            return;
                        }
                    }
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

async fn session<E, S>(
    mut ws: S,
    cfg: &FeedConfig,
    clock: &Clock,
    tx: &mpsc::Sender<E>,
    raw_tap: &mut Option<mpsc::Sender<RawFrame>>,
    cancel: &CancellationToken,
) -> SessionEnd
where
    E: From<Received> + From<FeedStatus> + Send + 'static,
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let venue = cfg.venue;
    let max_age = tokio::time::sleep(cfg.max_connection_age);
    tokio::pin!(max_age);
    let silence = tokio::time::sleep(cfg.silence_timeout);
    tokio::pin!(silence);
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
        // After the event is on its way: re-arming the timer is not part of the frame → order path.
        silence.as_mut().reset(Instant::now() + cfg.silence_timeout);
    }
}
