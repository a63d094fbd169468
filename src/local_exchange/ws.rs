//! Websockets of the local exchange. One port serves both markets, with Binance's USD-M routing (2026):
//! - futures book streams (`bookTicker`, `depth*`): `/public/ws/<stream>` and `/public/stream?streams=a/b`, and
//!   the unrouted `/ws/<stream>`, `/stream?streams=…`;
//! - other futures market streams (`trade`, `markPrice`, `forceOrder`, …): only on `/market/ws/…`,
//!   `/market/stream?…` (a stream asked for on another route is accepted and stays silent, as on Binance);
//! - the user-data stream: `/private/ws/<listenKey>` or `/private/ws?listenKey=<key>`, for keys this exchange issued;
//! - with `legacy_routing`: no routed paths (404), everything on the unrouted paths (user data on `/ws/<listenKey>`);
//! - spot market streams: unrouted under `/spot` (`/spot/ws/<stream>`, `/spot/stream?streams=…`).
//!
//! Market subscribers get the recorded frames verbatim, only those of the streams they asked for, from a broadcast,
//! plus the futures streams derived from them (depth, aggTrade, kline: see [`super::streams`]);
//! one that falls more than `stream_buffer` frames behind is disconnected rather than slowing the replay.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::faults::{self, After, Disruption};
use super::recording::SharedFrame;
use super::server::{Shared, UserMsg};
use super::streams::Subscription;
use crate::binance::routing::Route;
use crate::model::Venue;

type St = State<Arc<Shared>>;

/// Server pings, as Binance sends them (every 3 minutes there); clients that watch for silence see traffic.
const PING_EVERY: Duration = Duration::from_secs(60);

fn ping_timer() -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// The websocket paths (see the module head); without the routed paths under `legacy_routing`, so a routed
/// handshake gets 404 as on a pre-2026 server.
pub(crate) fn routes(legacy_routing: bool) -> Router<Arc<Shared>> {
    let r = Router::new()
        .route("/ws/{stream}", get(futures_raw))
        .route("/stream", get(futures_combined))
        .route("/spot/ws/{stream}", get(spot_raw))
        .route("/spot/stream", get(spot_combined));
    if legacy_routing {
        return r;
    }
    r.route("/public/ws/{stream}", get(public_raw))
        .route("/public/stream", get(public_combined))
        .route("/market/ws/{stream}", get(market_raw))
        .route("/market/stream", get(market_combined))
        .route("/private/ws/{key}", get(private_raw))
        .route("/private/ws", get(private_query))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct StreamsQuery {
    streams: String,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ListenKeyQuery {
    #[serde(rename = "listenKey")]
    listen_key: String,
}

/// Unrouted `/ws/<stream>`: public streams only (mainnet routing), or everything including a listen key with
/// `legacy_routing`.
pub(crate) async fn futures_raw(
    State(s): St,
    Path(stream): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if s.cfg.legacy_routing && Route::of(&stream) == Route::Private {
        return user(s, ws, stream);
    }
    market(s, ws, Venue::Perp, None, vec![stream], false)
}

/// Unrouted `/stream?streams=a/b`.
pub(crate) async fn futures_combined(
    State(s): St,
    Query(q): Query<StreamsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Perp, None, split_streams(&q.streams), true)
}

/// `/public/ws/<stream>`.
pub(crate) async fn public_raw(
    State(s): St,
    Path(stream): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Perp, Some(Route::Public), vec![stream], false)
}

/// `/public/stream?streams=a/b`.
pub(crate) async fn public_combined(
    State(s): St,
    Query(q): Query<StreamsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let streams = split_streams(&q.streams);
    market(s, ws, Venue::Perp, Some(Route::Public), streams, true)
}

/// `/market/ws/<stream>`.
pub(crate) async fn market_raw(
    State(s): St,
    Path(stream): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Perp, Some(Route::Market), vec![stream], false)
}

/// `/market/stream?streams=a/b`.
pub(crate) async fn market_combined(
    State(s): St,
    Query(q): Query<StreamsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let streams = split_streams(&q.streams);
    market(s, ws, Venue::Perp, Some(Route::Market), streams, true)
}

/// `/private/ws/<listenKey>`.
pub(crate) async fn private_raw(
    State(s): St,
    Path(key): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    user(s, ws, key)
}

/// `/private/ws?listenKey=<key>`.
pub(crate) async fn private_query(
    State(s): St,
    Query(q): Query<ListenKeyQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    user(s, ws, q.listen_key)
}

pub(crate) async fn spot_raw(
    State(s): St,
    Path(stream): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Spot, None, vec![stream], false)
}

pub(crate) async fn spot_combined(
    State(s): St,
    Query(q): Query<StreamsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    market(s, ws, Venue::Spot, None, split_streams(&q.streams), true)
}

fn split_streams(s: &str) -> Vec<String> {
    s.split('/')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn user(s: Arc<Shared>, ws: WebSocketUpgrade, key: String) -> Response {
    if !s.core().keys.is_valid(&key) {
        return ApiError::no_listen_key().into_response();
    }
    let key: Arc<str> = key.into();
    // Subscribe now, so no event published between the handshake and the task start is lost.
    let rx = s.user_tx.subscribe();
    ws.on_upgrade(move |sock| user_stream(s, sock, key, rx))
}

/// Whether a futures connection on `entry` (`None` = unrouted) pushes `stream`: as Binance since 2026, unrouted
/// connections carry only public streams and each route only its own; `legacy_routing` serves everything unrouted.
fn served(legacy: bool, entry: Option<Route>, stream: &str) -> bool {
    let route = Route::of(stream);
    match entry {
        _ if legacy => route != Route::Private,
        None => route == Route::Public,
        Some(e) => route == e,
    }
}

fn market(
    s: Arc<Shared>,
    ws: WebSocketUpgrade,
    venue: Venue,
    entry: Option<Route>,
    streams: Vec<String>,
    combined: bool,
) -> Response {
    if streams.is_empty() {
        return ApiError::mandatory("streams").into_response();
    }
    // Streams of another route are accepted and stay silent, as on Binance.
    let streams: Vec<String> = match venue {
        Venue::Spot => streams,
        Venue::Perp => streams
            .into_iter()
            .filter(|x| served(s.cfg.legacy_routing, entry, x))
            .collect(),
    };
    // Subscribe before being counted (the replay starts on the count), and before the handshake completes, so the
    // client misses nothing from its first frame on. Only connections carrying book data count: a client's
    // market-route connection may carry nothing a recording holds.
    let rx = s.market_tx.subscribe();
    let books = venue == Venue::Spot || streams.iter().any(|x| Route::of(x) == Route::Public);
    let counted = books.then(|| Subscribed::new(s.clone()));
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
    _counted: Option<Subscribed>,
) {
    let mut drop_rx = s.drop_market.subscribe();
    let mut ping = ping_timer();
    let mut sub = Subscription::new(&streams, venue == Venue::Perp, s.recorded_depth);
    let mut out = Vec::new();
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
                    if f.venue != venue {
                        continue;
                    }
                    sub.on_frame(&f, combined, &mut out);
                    for bytes in out.drain(..) {
                        let Ok(text) = Utf8Bytes::try_from(bytes) else {
                            continue;
                        };
                        if let Some(d) = s.faults.on_market_frame() {
                            let stall = matches!(d, Disruption::Stall(_));
                            if stall || matches!(d, Disruption::Close(_)) {
                                s.faults.feed_cut(venue);
                            }
                            match faults::disrupt(&mut sock, d, text.as_str(), &s.shutdown).await {
                                After::Closed => return,
                                // Frames of a stall are lost, as on a dead connection.
                                After::Resume if stall => {
                                    // (breaking out drops the rest of this frame's batch with the drain)
                                    rx = rx.resubscribe();
                                    break;
                                }
                                // A malformed or truncated frame stands in for this one.
                                After::Resume => continue,
                            }
                        }
                        if sock.send(Message::Text(text)).await.is_err() {
                            return;
                        }
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
