//! The order-router task: sends the engine's orders over signed REST and reports every outcome back on the event
//! channel. A timeout or 5xx is UNKNOWN — resolved by client order id before anything else, never counted as a
//! failure; a retry reuses the same client id.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Inbound;
use crate::binance::error::BinanceError;
use crate::binance::rest::{RestClient, StartedOrder};
use crate::model::{OrderRecord, OrderRequest, OrderState, OrderUpdate, TsNs};

/// What the engine task asks the router to do.
#[derive(Debug)]
// `Place` is moved once per order: copying its few hundred bytes is cheaper than boxing it on the order path.
#[allow(clippy::large_enum_variant)]
pub enum RouterCmd {
    /// Finish an order whose request the engine task has handed to the HTTP client (`started`; its error when it
    /// could not be started): wait for the response and resolve an unknown outcome. Its intent is in the store.
    Place {
        record: OrderRecord,
        started: Result<StartedOrder, BinanceError>,
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
    clock: crate::clock::Clock,
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
                    RouterCmd::Place { record, started } => {
                        let now = clock();
                        let r = rest.finish_order_resolving(&record.request, started).await;
                        let update = outcome(&record.request, now, r);
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
                            let now = clock();
                            let u = outcome(&rec.request, now, rest.place_order_resolving(&rec.request).await);
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

/// An order's placement outcome (unknown outcomes already resolved where possible) as an [`OrderUpdate`] at `now`.
fn outcome(req: &OrderRequest, now: TsNs, r: Result<OrderUpdate, BinanceError>) -> OrderUpdate {
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
    match r {
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
