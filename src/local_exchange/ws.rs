//! Websockets of the local exchange. One port serves both markets:
//! - futures market streams: `/ws/<stream>` (raw payloads) and `/stream?streams=a/b` (combined frames);
//! - spot market streams: the same under `/spot` (`/spot/ws/<stream>`, `/spot/stream?streams=…`);
//! - the user-data stream: `/ws/<listenKey>` for keys this exchange issued (a path segment without `@`).
//!
//! Market subscribers get the recorded frames verbatim, only those of the streams they asked for, from a broadcast;
//! one that falls more than `stream_buffer` frames behind is disconnected rather than slowing the replay.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::faults::{self, After, Disruption};
use super::recording::SharedFrame;
use super::server::{Shared, UserMsg};
use crate::model::Venue;

type St = State<Arc<Shared>>;

/// Server pings, as Binance sends them (every 3 minutes there); clients that watch for silence see traffic.
const PING_EVERY: Duration = Duration::from_secs(60);

fn ping_timer() -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct StreamsQuery {
    streams: String,
}

pub(crate) async fn futures_raw(
    State(s): St,
    Path(stream): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if !stream.contains('@') {
        // A listen key.
        if !s.core().keys.is_valid(&stream) {
            return ApiError::no_listen_key().into_response();
        }
        let key: Arc<str> = stream.into();
        // Subscribe now, so no event published between the handshake and the task start is lost.
        let rx = s.user_tx.subscribe();
        return ws.on_upgrade(move |sock| user_stream(s, sock, key, rx));
    }
    market(s, ws, Venue::Perp, vec![stream], false)
}

pub(crate) async fn futures_combined(
    State(s): St,
    Query(q): Query<StreamsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Perp, split_streams(&q.streams), true)
}

pub(crate) async fn spot_raw(
    State(s): St,
    Path(stream): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Spot, vec![stream], false)
}

pub(crate) async fn spot_combined(
    State(s): St,
    Query(q): Query<StreamsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Spot, split_streams(&q.streams), true)
}

fn split_streams(s: &str) -> Vec<String> {
    s.split('/')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn market(
    s: Arc<Shared>,
    ws: WebSocketUpgrade,
    venue: Venue,
    streams: Vec<String>,
    combined: bool,
) -> Response {
    if streams.is_empty() {
        return ApiError::mandatory("streams").into_response();
    }
    // Subscribe before being counted (the replay starts on the count), and before the handshake completes, so the
    // client misses nothing from its first frame on.
    let rx = s.market_tx.subscribe();
    let counted = Subscribed::new(s.clone());
    ws.on_upgrade(move |sock| market_stream(s, sock, venue, streams, combined, rx, counted))
}

/// Counts an open market stream while it lives (the replay waits for `min_subscribers`).
struct Subscribed(Arc<Shared>);

impl Subscribed {
    fn new(s: Arc<Shared>) -> Self {
        s.subscribers.send_modify(|n| *n += 1);
        Subscribed(s)
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.subscribers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn market_stream(
    s: Arc<Shared>,
    mut sock: WebSocket,
    venue: Venue,
    streams: Vec<String>,
    combined: bool,
    mut rx: broadcast::Receiver<SharedFrame>,
    _counted: Subscribed,
) {
    let mut drop_rx = s.drop_market.subscribe();
    let mut ping = ping_timer();
    loop {
        tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => break,
            _ = ping.tick() => {
                if sock.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = drop_rx.changed() => {
                tracing::info!(?venue, "fault: dropping a market stream");
                break;
            }
            m = sock.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Pings are answered by the websocket layer; subscription messages are not supported.
                Some(Ok(_)) => {}
            },
            r = rx.recv() => match r {
                Ok(f) => {
                    if f.venue != venue || !streams.iter().any(|x| x == f.stream()) {
                        continue;
                    }
                    let bytes = if combined { f.combined() } else { f.data() };
                    let Ok(text) = Utf8Bytes::try_from(bytes) else {
                        continue;
                    };
                    if let Some(d) = s.faults.on_market_frame() {
                        if matches!(d, Disruption::Close(_) | Disruption::Stall(_)) {
                            s.faults.feed_cut(venue);
                        }
                        match faults::disrupt(&mut sock, d, text.as_str(), &s.shutdown).await {
                            After::Closed => return,
                            // Frames of a stall are lost, as on a dead connection.
                            After::Resume => { rx = rx.resubscribe(); continue; }
                        }
                    }
                    if sock.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                    s.faults.feed_flowing(venue);
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(?venue, missed = n, "market subscriber too slow; disconnecting it");
                    break;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = sock.send(Message::Close(None)).await;
}

async fn user_stream(
    s: Arc<Shared>,
    mut sock: WebSocket,
    key: Arc<str>,
    mut rx: broadcast::Receiver<UserMsg>,
) {
    let mut ping = ping_timer();
    let mut fault_tick = tokio::time::interval(s.faults.plan().user_tick);
    fault_tick.reset();
    loop {
        tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => break,
            _ = ping.tick() => {
                if sock.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = fault_tick.tick() => match s.faults.on_user_tick() {
                Some(Disruption::ExpireListenKey) => s.expire_listen_key(false),
                Some(d) if faults::disrupt(&mut sock, d, "", &s.shutdown).await == After::Closed => return,
                _ => {}
            },
            m = sock.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            r = rx.recv() => match r {
                Ok(UserMsg::Event(json)) => {
                    if sock.send(Message::Text(Utf8Bytes::from(&*json))).await.is_err() {
                        return;
                    }
                }
                Ok(UserMsg::Expired { key: k, json }) if k == key => {
                    let _ = sock.send(Message::Text(Utf8Bytes::from(&*json))).await;
                    break;
                }
                Ok(UserMsg::Closed { key: k }) if k == key => break,
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "user-data subscriber too slow; disconnecting it");
                    break;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let _ = sock.send(Message::Close(None)).await;
}
