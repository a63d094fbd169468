//! User-data stream task: listen key life cycle (create, keep-alive, renew on expiry), websocket with reconnects, and
//! decoded [`UserEvent`]s sent to the caller's channel.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::backoff::{retry, Backoff, RetryError, RetryPolicy};
use super::error::BinanceError;
use super::rest::RestClient;
use super::routing::{is_refused_route, user_url, Route, Routing};
use super::user_wire::{parse_user_frame, UserEvent, STREAM_CONNECTED};

/// User-data stream settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UserStreamConfig {
    /// Websocket base: `wss://fstream.binance.com`, `wss://stream.binancefuture.com`, `ws://127.0.0.1:PORT`, …
    pub ws_url: String,
    /// USD-M routing: `/private/ws/<key>` (routed, auto) or `/ws/<key>` (legacy).
    pub routing: Routing,
    /// Listen-key keep-alive period (Binance: keys expire 60 min after the last keep-alive).
    pub keepalive_every: Duration,
    /// No frame (data or ping) for this long → reconnect. Binance pings every 3 minutes.
    pub silence_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl UserStreamConfig {
    pub fn new(ws_url: impl Into<String>) -> Self {
        UserStreamConfig {
            ws_url: ws_url.into(),
            routing: Routing::Routed,
            keepalive_every: Duration::from_secs(30 * 60),
            silence_timeout: Duration::from_secs(10 * 60),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
        }
    }

    /// `{ws_url}/private/ws/{listen_key}` (routed, auto) or `{ws_url}/ws/{listen_key}` (legacy).
    pub fn url(&self, listen_key: &str) -> String {
        self.url_with(listen_key, self.routing == Routing::Legacy)
    }

    /// The URL of `listen_key`, on the unrouted legacy path when `legacy` (`auto` after a refused routed handshake).
    pub fn url_with(&self, listen_key: &str, legacy: bool) -> String {
        let route = (!legacy).then_some(Route::Private);
        user_url(&self.ws_url, route, listen_key)
    }
}

enum End {
    /// Stop the task.
    Stop,
    /// Reconnect; `new_key` = the listen key is gone.
    Reconnect { new_key: bool, had_data: bool },
}

/// Starts [`run_user_stream`] on the current runtime.
pub fn spawn_user_stream(
    rest: RestClient,
    cfg: UserStreamConfig,
    tx: mpsc::Sender<UserEvent>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run_user_stream(rest, cfg, tx, cancel))
}

/// Runs the user-data stream until `cancel` fires or the receiver of `tx` is dropped. After every (re)connect it
/// sends `UserEvent::Other(STREAM_CONNECTED)`: events may have been missed, so open orders should be re-queried.
pub async fn run_user_stream(
    rest: RestClient,
    cfg: UserStreamConfig,
    tx: mpsc::Sender<UserEvent>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let mut listen_key: Option<String> = None;
    let mut legacy = cfg.routing == Routing::Legacy;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let key = match &listen_key {
            Some(k) => k.clone(),
            None => {
                // Transient failures are retried (and logged) by the one retry policy; anything else (a key that
                // lost its permission) is logged and tried again later: the stream never ends the run.
                let policy = RetryPolicy::default();
                match retry(&policy, "user-data listen key", &cancel, || {
                    rest.create_listen_key()
                })
                .await
                {
                    Ok(k) => {
                        listen_key = Some(k.clone());
                        k
                    }
                    Err(RetryError::Cancelled) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "user stream: cannot create a listen key");
                        if !sleep_or_cancel(backoff.next_delay(), &cancel).await {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        let connected = tokio::select! {
            _ = cancel.cancelled() => break,
            r = tokio_tungstenite::connect_async(cfg.url_with(&key, legacy)) => r,
        };
        let ws = match connected {
            Ok((ws, _)) => ws,
            Err(e) if cfg.routing == Routing::Auto && !legacy && is_refused_route(&e) => {
                tracing::warn!(error = error_kind(&e),
                    "user stream: /private refused; falling back to the legacy path (routing = auto)");
                legacy = true;
                continue;
            }
            Err(e) => {
                // The error text may include the URL, which carries the listen key: log only its kind.
                tracing::warn!(error = error_kind(&e), "user stream: connect failed");
                // The key may be what is wrong; POST again (Binance returns the same key while it is valid).
                listen_key = None;
                if !sleep_or_cancel(backoff.next_delay(), &cancel).await {
                    break;
                }
                continue;
            }
        };
        tracing::info!("user stream connected");
        if tx.send(UserEvent::Other(STREAM_CONNECTED)).await.is_err() {
            break;
        }
        match session(ws, &rest, &cfg, &tx, &cancel).await {
            End::Stop => break,
            End::Reconnect { new_key, had_data } => {
                if new_key {
                    listen_key = None;
                }
                if had_data {
                    backoff.reset();
                }
                if !sleep_or_cancel(backoff.next_delay(), &cancel).await {
                    break;
                }
            }
        }
    }
    if listen_key.is_some() {
        if let Err(e) = rest.close_listen_key().await {
            tracing::debug!(error = %e, "user stream: closing the listen key failed");
        }
    }
}

fn error_kind(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(resp) => format!("HTTP {}", resp.status()),
        E::Io(io) => format!("I/O: {io}"),
        E::Tls(t) => format!("TLS: {t}"),
        E::Url(_) => "bad URL".to_string(),
        other => other.to_string(),
    }
}

/// Sleeps `d`; false when cancelled meanwhile.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

async fn session<S>(
    mut ws: S,
    rest: &RestClient,
    cfg: &UserStreamConfig,
    tx: &mpsc::Sender<UserEvent>,
    cancel: &CancellationToken,
) -> End
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let start = tokio::time::Instant::now();
    let mut keepalive = tokio::time::interval_at(start + cfg.keepalive_every, cfg.keepalive_every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let silence = tokio::time::sleep(cfg.silence_timeout);
    tokio::pin!(silence);
    let mut had_data = false;
    loop {
        let msg = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let _ = ws.close().await;
                return End::Stop;
            }
            _ = keepalive.tick() => {
                match rest.keepalive_listen_key().await {
                    Ok(()) => tracing::debug!("user stream: listen key kept alive"),
                    Err(BinanceError::InvalidListenKey { .. }) => {
                        tracing::warn!("user stream: listen key no longer exists (-1125); getting a new one");
                        let _ = ws.close().await;
                        return End::Reconnect { new_key: true, had_data };
                    }
                    Err(e) => tracing::warn!(error = %e, "user stream: listen key keep-alive failed"),
                }
                continue;
            }
            _ = &mut silence => {
                tracing::warn!("user stream: silent too long; reconnecting");
                return End::Reconnect { new_key: false, had_data };
            }
            msg = ws.next() => msg,
        };
        silence
            .as_mut()
            .reset(tokio::time::Instant::now() + cfg.silence_timeout);
        let text = match msg {
            None | Some(Ok(Message::Close(_))) => {
                tracing::warn!("user stream: closed by the server; reconnecting");
                return End::Reconnect {
                    new_key: false,
                    had_data,
                };
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "user stream: websocket error; reconnecting");
                return End::Reconnect {
                    new_key: false,
                    had_data,
                };
            }
            Some(Ok(Message::Ping(p))) => {
                if ws.send(Message::Pong(p)).await.is_err() {
                    return End::Reconnect {
                        new_key: false,
                        had_data,
                    };
                }
                continue;
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
        };
        had_data = true;
        match parse_user_frame(text.as_str()) {
            Ok(UserEvent::ListenKeyExpired) => {
                tracing::warn!("user stream: listen key expired; getting a new one");
                if tx.send(UserEvent::ListenKeyExpired).await.is_err() {
                    return End::Stop;
                }
                let _ = ws.close().await;
                return End::Reconnect {
                    new_key: true,
                    had_data,
                };
            }
            Ok(UserEvent::Other(kind)) => {
                tracing::info!(kind, "user stream event");
                if tx.send(UserEvent::Other(kind)).await.is_err() {
                    return End::Stop;
                }
            }
            Ok(ev) => {
                if tx.send(ev).await.is_err() {
                    return End::Stop;
                }
            }
            Err(e) => tracing::warn!(error = %e, "user stream: frame skipped"),
        }
    }
}
