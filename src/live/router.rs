//! The order-router task: sends the engine's orders over signed REST and reports every outcome back on the event
//! channel. A timeout or 5xx is UNKNOWN — resolved by client order id before anything else, never counted as a
//! failure; a retry reuses the same client id.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::latency::{Latencies, OrderStamps};
use super::Inbound;
use crate::binance::error::BinanceError;
use crate::binance::rest::RestClient;
use crate::model::{OrderRecord, OrderState, OrderUpdate, TsNs};

/// What the engine task asks the router to do.
#[derive(Debug)]
pub enum RouterCmd {
    /// Send an order (its intent is already in the store). `stamps` = the instants along its way from the frame
    /// that decided it; `fsync` = how long the intent's fsync took on the order path (zero when it overlaps the
    /// request), reported apart in the latency summary.
    Place {
        record: OrderRecord,
        stamps: Option<OrderStamps>,
        fsync: Duration,
    },
    Cancel {
        client_id: String,
        symbol: String,
    },
    /// Ask the exchange where an order stands (after the user-data stream was down and may have missed it).
    Query {
        client_id: String,
        symbol: String,
    },
}

/// How often an UNKNOWN order is queried again until the exchange tells.
const RESOLVE_EVERY: Duration = Duration::from_secs(2);

pub async fn run_router(
    rest: RestClient,
    mut rx: mpsc::Receiver<RouterCmd>,
    tx: mpsc::Sender<Inbound>,
    latency: Latencies,
    clock: crate::binance::feed::Clock,
    cancel: CancellationToken,
) {
    let mut unresolved: Vec<OrderRecord> = Vec::new();
    let mut resolve_tick = tokio::time::interval(RESOLVE_EVERY);
    resolve_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    RouterCmd::Place { record, stamps, fsync } => {
                        let written = OnceLock::new();
                        let update = place(&rest, &record, &clock, &written).await;
                        if let (Some(s), Some(t1)) = (stamps, written.get()) {
                            // Frame received → signed request handed to the HTTP client: the in-bot latency.
                            latency.record_order(&s, *t1, fsync);
                        }
                        if update.state == OrderState::Unknown {
                            unresolved.push(record);
                        }
                        if tx.send(Inbound::Order(update)).await.is_err() {
                            break;
                        }
                    }
                    RouterCmd::Query { client_id, symbol } => {
                        match rest.query_order(&symbol, &client_id).await {
                            Ok(u) => {
                                let _ = tx.send(Inbound::Order(u)).await;
                            }
                            Err(e) => tracing::warn!(%client_id, error = %e, "order query failed"),
                        }
                    }
                    RouterCmd::Cancel { client_id, symbol } => {
                        match rest.cancel_order(&symbol, &client_id).await {
                            Ok(u) => {
                                let _ = tx.send(Inbound::Order(u)).await;
                            }
                            // Already filled or gone: the user-data stream / a query tells the rest.
                            Err(e) => {
                                tracing::warn!(%client_id, error = %e, "cancel failed");
                                if let Ok(u) = rest.query_order(&symbol, &client_id).await {
                                    let _ = tx.send(Inbound::Order(u)).await;
                                }
                            }
                        }
                    }
                }
            }
            _ = resolve_tick.tick(), if !unresolved.is_empty() => {
                let mut still = Vec::new();
                for rec in unresolved.drain(..) {
                    match rest.query_order(&rec.request.symbol, &rec.request.client_id).await {
                        Ok(u) => {
                            tracing::info!(client_id = %rec.request.client_id, state = u.state.as_str(), "unknown order resolved");
                            let _ = tx.send(Inbound::Order(u)).await;
                        }
                        Err(BinanceError::UnknownOrder { .. }) => {
                            // Never reached the exchange: send it again with the same client id.
                            let u = place(&rest, &rec, &clock, &OnceLock::new()).await;
                            if u.state == OrderState::Unknown {
                                still.push(rec);
                            }
                            let _ = tx.send(Inbound::Order(u)).await;
                        }
                        Err(e) => {
                            tracing::warn!(client_id = %rec.request.client_id, error = %e, "order still unknown");
                            still.push(rec);
                        }
                    }
                }
                unresolved = still;
            }
        }
    }
}

/// Places one order, resolving an unknown outcome; every outcome becomes an [`OrderUpdate`]. `written` receives
/// the instant the signed request was handed to the HTTP client.
async fn place(
    rest: &RestClient,
    record: &OrderRecord,
    clock: &crate::binance::feed::Clock,
    written: &OnceLock<Instant>,
) -> OrderUpdate {
    let req = &record.request;
    let now: TsNs = clock();
    let update = |state: OrderState, reason: String| OrderUpdate {
        ts: now,
        client_id: req.client_id.clone(),
        symbol: req.symbol.clone(),
        exchange_id: None,
        state,
        fill: None,
        cum_qty: Default::default(),
        avg_price: None,
        reason: Some(reason),
    };
    match rest.place_order_resolving_timed(req, written).await {
        Ok(mut u) => {
            // Our clock, so the engine's time never jumps to the exchange's.
            u.ts = now;
            u
        }
        Err(e) if e.is_unknown_outcome() => {
            tracing::warn!(client_id = %req.client_id, error = %e, "order outcome UNKNOWN; will resolve by client id");
            update(OrderState::Unknown, e.to_string())
        }
        Err(e) => {
            match &e {
                BinanceError::IpBanned { .. } => {
                    tracing::error!(client_id = %req.client_id, error = %e, "IP BANNED by the exchange (418): no orders are sent until the ban ends")
                }
                BinanceError::RateLimited { .. } => {
                    tracing::error!(client_id = %req.client_id, error = %e, "rate limited (429): backing off")
                }
                _ => {
                    tracing::error!(client_id = %req.client_id, side = req.side.as_str(), qty = %req.qty, error = %e, "order rejected")
                }
            }
            update(OrderState::Rejected, e.to_string())
        }
    }
}
