//! Websockets of the local exchange. One port serves both markets, with Binance's USD-M routing (2026):
//! - futures book streams (`bookTicker`, `depth*`, and `trade`): `/public/ws/<stream>` and
//!   `/public/stream?streams=a/b`, and the unrouted `/ws/<stream>`, `/stream?streams=…`;
//! - other futures market streams (`aggTrade`, `markPrice`, `forceOrder`, …): only on `/market/ws/…`,
//!   `/market/stream?…` (a stream asked for on another route is accepted and stays silent, as on Binance);
//! - on every market path, live requests as Binance takes them (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
//!   `SET_PROPERTY`/`GET_PROPERTY` `combined`), with the same route rules; the path segment of `/<route>/ws/<x>`
//!   need not be a stream (clients open `/public/ws/0` and subscribe), and `/<route>/ws` alone is served too;
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
use super::streams::{Subscription, Touch};
use crate::binance::routing::Route;
use crate::model::Venue;
use serde_json::{json, Value};

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
        .route("/ws", get(futures_bare))
        .route("/ws/{stream}", get(futures_raw))
        .route("/stream", get(futures_combined))
        .route("/spot/ws/{stream}", get(spot_raw))
        .route("/spot/stream", get(spot_combined));
    if legacy_routing {
        return r;
    }
    r.route("/public/ws", get(public_bare))
        .route("/market/ws", get(market_bare))
        .route("/public/ws/{stream}", get(public_raw))
        .route("/public/stream", get(public_combined))
        .route("/market/ws/{stream}", get(market_raw))
        .route("/market/stream", get(market_combined))
        .route("/private/ws/{key}", get(private_raw))
        .route("/private/ws", get(private_query))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct StreamsQuery {
    /// Absent: nothing yet, the client subscribes with live requests.
    #[serde(default)]
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
    // A name that is not a stream is a listen key (legacy), unless it is a number: clients that subscribe with live
    // requests open `/ws/<n>`.
    let key = Route::of(&stream) == Route::Private && !stream.bytes().all(|b| b.is_ascii_digit());
    if s.cfg.legacy_routing && key {
        return user(s, ws, stream);
    }
    market(s, ws, Venue::Perp, None, vec![stream], false)
}

/// Unrouted `/ws`: streams come with live requests.
pub(crate) async fn futures_bare(State(s): St, ws: WebSocketUpgrade) -> Response {
    market(s, ws, Venue::Perp, None, Vec::new(), false)
}

/// `/public/ws`: streams come with live requests.
pub(crate) async fn public_bare(State(s): St, ws: WebSocketUpgrade) -> Response {
    market(s, ws, Venue::Perp, Some(Route::Public), Vec::new(), false)
}

/// `/market/ws`: streams come with live requests.
pub(crate) async fn market_bare(State(s): St, ws: WebSocketUpgrade) -> Response {
    market(s, ws, Venue::Perp, Some(Route::Market), Vec::new(), false)
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

fn market(
    s: Arc<Shared>,
    ws: WebSocketUpgrade,
    venue: Venue,
    entry: Option<Route>,
    streams: Vec<String>,
    combined: bool,
) -> Response {
    // Subscribe before being counted (the replay starts on the count), and before the handshake completes, so the
    // client misses nothing from its first frame on.
    let rx = s.market_tx.subscribe();
    let mut live = Live::new(s.clone(), venue, entry, combined);
    for name in &streams {
        live.subscribe(name);
    }
    let counted = live.carries_books().then(|| Subscribed::new(s.clone()));
    ws.on_upgrade(move |sock| market_stream(s, sock, live, rx, counted))
}

/// What one market connection sends: the streams it was opened with or subscribed to since, as Binance's live
/// requests change them.
struct Live {
    s: Arc<Shared>,
    venue: Venue,
    /// The route the connection came in on (`None`: unrouted).
    entry: Option<Route>,
    legacy: bool,
    combined: bool,
    /// Every stream the client asked for, served or not (`LIST_SUBSCRIPTIONS`).
    names: Vec<String>,
    sub: Subscription,
}

/// Binance's limit of streams on one connection.
const MAX_STREAMS: usize = 1024;

impl Live {
    fn new(s: Arc<Shared>, venue: Venue, entry: Option<Route>, combined: bool) -> Self {
        let sub = Subscription::new(&[], venue == Venue::Perp, s.recorded_depth);
        Live {
            legacy: s.cfg.legacy_routing,
            s,
            venue,
            entry,
            combined,
            names: Vec::new(),
            sub,
        }
    }

    /// The futures book the exchange serves now (the REST depth snapshot's).
    fn top(&self) -> Option<Touch> {
        if self.venue != Venue::Perp {
            return None;
        }
        let md = self.s.market();
        md.quote.map(|(q, _)| Touch {
            bid: q.bid,
            ask: q.ask,
            u: md.book_update_id,
        })
    }

    /// Whether this connection sends `stream` (futures routing; spot has none). A name that is not a stream (no
    /// `@`, no `!`) sends nothing.
    fn served(&self, stream: &str) -> bool {
        let route = Route::of(stream);
        match self.venue {
            _ if route == Route::Private => false,
            Venue::Spot => true,
            Venue::Perp => match self.entry {
                _ if self.legacy => true,
                None => route == Route::Public,
                Some(e) => route == e,
            },
        }
    }

    fn subscribe(&mut self, name: &str) {
        if Route::of(name) == Route::Private || self.names.iter().any(|n| n == name) {
            return;
        }
        self.names.push(name.to_string());
        // Streams of another route are accepted and stay silent, as on Binance.
        if self.served(name) {
            let top = name.contains("@depth").then(|| self.top()).flatten();
            self.sub.add(name, top);
        }
    }

    fn unsubscribe(&mut self, name: &str) {
        self.names.retain(|n| n != name);
        self.sub.remove(name);
    }

    /// Whether it sends book data: only such connections count as subscribers (a client's market-route connection
    /// may carry nothing a recording holds).
    fn carries_books(&self) -> bool {
        self.names
            .iter()
            .any(|n| self.served(n) && (self.venue == Venue::Spot || Route::of(n) == Route::Public))
    }

    /// The answer to one live request (`{"method":"SUBSCRIBE","params":[…],"id":1}`), in Binance's words.
    fn request(&mut self, text: &str) -> String {
        let req: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return refusal(3, &format!("Invalid JSON: {e}"), &Value::Null),
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        if !(id.is_u64() || id.is_string() || id.is_null()) {
            return refusal(
                2,
                "Invalid request: request ID must be an unsigned integer",
                &id,
            );
        }
        let params = req.get("params").and_then(Value::as_array);
        let names: Option<Vec<&str>> = params.and_then(|p| p.iter().map(Value::as_str).collect());
        let property = params.and_then(|p| p.first()).and_then(Value::as_str);
        let method = req.get("method").and_then(Value::as_str).unwrap_or("");
        let result = match (method, names) {
            ("SUBSCRIBE" | "UNSUBSCRIBE", None) => {
                return refusal(
                    2,
                    "Invalid request: params must be an array of stream names",
                    &id,
                )
            }
            ("SUBSCRIBE", Some(n)) if self.names.len() + n.len() > MAX_STREAMS => {
                return refusal(
                    2,
                    "Invalid request: too many streams on one connection",
                    &id,
                )
            }
            ("SUBSCRIBE", Some(n)) => {
                n.iter().for_each(|x| self.subscribe(x));
                Value::Null
            }
            ("UNSUBSCRIBE", Some(n)) => {
                n.iter().for_each(|x| self.unsubscribe(x));
                Value::Null
            }
            ("LIST_SUBSCRIPTIONS", _) => json!(self.names),
            ("SET_PROPERTY", _) if property == Some("combined") => {
                match params.and_then(|p| p.get(1)).and_then(Value::as_bool) {
                    Some(b) => self.combined = b,
                    None => return refusal(1, "Invalid value type: expected Boolean", &id),
                }
                Value::Null
            }
            ("GET_PROPERTY", _) if property == Some("combined") => json!(self.combined),
            ("SET_PROPERTY" | "GET_PROPERTY", _) => return refusal(0, "Unknown property", &id),
            _ => return refusal(2, "Invalid request: unknown method", &id),
        };
        json!({ "result": result, "id": id }).to_string()
    }
}

/// A refused live request: `{"error":{"code":2,"msg":"…"},"id":1}`.
fn refusal(code: i64, msg: &str, id: &Value) -> String {
    json!({ "error": { "code": code, "msg": msg }, "id": id }).to_string()
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
    mut live: Live,
    mut rx: broadcast::Receiver<SharedFrame>,
    mut counted: Option<Subscribed>,
) {
    let venue = live.venue;
    let mut drop_rx = s.drop_market.subscribe();
    let mut ping = ping_timer();
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
                Some(Ok(Message::Text(t))) => {
                    let answer = live.request(t.as_str());
                    if sock.send(Message::Text(answer.into())).await.is_err() {
                        return;
                    }
                    if counted.is_none() && live.carries_books() {
                        counted = Some(Subscribed::new(s.clone()));
                    }
                }
                // Pings are answered by the websocket layer.
                Some(Ok(_)) => {}
            },
            r = rx.recv() => match r {
                Ok(f) => {
                    if f.venue != venue {
                        continue;
                    }
                    live.sub.on_frame(&f, live.combined, &mut out);
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
