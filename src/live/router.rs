//! The order-router task: finishes the engine's orders over signed REST and reports every outcome back on the event
//! channel. A timeout or 5xx is UNKNOWN — settled by [`settle`] (by client order id, a resend reuses the same id),
//! never counted as a failure.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::gateway::{settle, OrderGateway, Settled};
use super::Inbound;
use crate::binance::backoff::{retry, RetryPolicy};
use crate::binance::error::BinanceError;
use crate::binance::rest::{RestClient, StartedOrder};
use crate::model::{OrderRecord, OrderRequest, OrderState, OrderUpdate, TsNs};

/// What the router keeps between commands.
#[derive(Default)]
struct RouterState {
    /// Orders whose outcome is still UNKNOWN, settled again every [`RESOLVE_EVERY`].
    unresolved: Vec<OrderRecord>,
    /// The kind of back-off (429 / 418) the last order was refused for: logged once per episode.
    refusing: Option<&'static str>,
}

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

/// How long a query after a user-stream reconnect is retried through transient faults.
const QUERY_PATIENCE: Duration = Duration::from_secs(30);

pub async fn run_router(
    rest: RestClient,
    mut rx: mpsc::Receiver<RouterCmd>,
    tx: mpsc::Sender<Inbound>,
    clock: crate::clock::Clock,
    cancel: CancellationToken,
) {
    let mut st = RouterState::default();
    let mut resolve_tick = tokio::time::interval(RESOLVE_EVERY);
    resolve_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let updates = tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = rx.recv() => match cmd {
                Some(cmd) => command(&rest, cmd, &clock, &mut st, &cancel).await,
                None => break,
            },
            _ = resolve_tick.tick(), if !st.unresolved.is_empty() => {
                resolve_unknown(&rest, &clock, &mut st).await
            }
        };
        for u in updates {
            if tx.send(Inbound::Order(u)).await.is_err() {
                return;
            }
        }
    }
}

/// Carries out one command; returns what the engine must hear.
async fn command(
    rest: &RestClient,
    cmd: RouterCmd,
    clock: &crate::clock::Clock,
    st: &mut RouterState,
    cancel: &CancellationToken,
) -> Vec<OrderUpdate> {
    match cmd {
        RouterCmd::Place { record, started } => {
            let first = rest.finish_order(&record.request, started).await;
            let u = outcome(
                &record.request,
                clock(),
                settle(rest, &record.request, first).await,
                &mut st.refusing,
            );
            if u.state == OrderState::Unknown {
                st.unresolved.push(record);
            }
            vec![u]
        }
        RouterCmd::Query { client_id, symbol } => {
            // Transient failures are retried (bounded: the router has other orders to finish).
            let policy = RetryPolicy {
                deadline: Some(tokio::time::Instant::now() + QUERY_PATIENCE),
                ..RetryPolicy::default()
            };
            match retry(&policy, "order query", cancel, || {
                rest.query(&symbol, &client_id)
            })
            .await
            {
                Ok(u) => vec![u],
                Err(e) => {
                    tracing::warn!(%client_id, error = %e, "order query failed");
                    Vec::new()
                }
            }
        }
        RouterCmd::Cancel { client_id, symbol } => match rest.cancel(&symbol, &client_id).await {
            Ok(u) => vec![u],
            // Already filled or gone: the user-data stream / a query tells the rest.
            Err(e) => {
                tracing::warn!(%client_id, error = %e, "cancel failed");
                rest.query(&symbol, &client_id)
                    .await
                    .ok()
                    .into_iter()
                    .collect()
            }
        },
    }
}

/// Settles every still-UNKNOWN order again (the one policy in [`settle`]).
async fn resolve_unknown(
    rest: &RestClient,
    clock: &crate::clock::Clock,
    st: &mut RouterState,
) -> Vec<OrderUpdate> {
    let mut out = Vec::new();
    let mut still = Vec::new();
    for rec in st.unresolved.drain(..) {
        let again = Err(BinanceError::Unknown {
            reason: "outcome not yet known".into(),
        });
        let u = outcome(
            &rec.request,
            clock(),
            settle(rest, &rec.request, again).await,
            &mut st.refusing,
        );
        if u.state == OrderState::Unknown {
            still.push(rec);
        } else {
            out.push(u);
        }
    }
    st.unresolved = still;
    out
}

/// An order's settled placement outcome as an [`OrderUpdate`] at `now`.
fn outcome(
    req: &OrderRequest,
    now: TsNs,
    settled: Settled,
    refusing: &mut Option<&'static str>,
) -> OrderUpdate {
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
    match settled {
        Settled::Known(mut u) => {
            *refusing = None;
            // Our clock, so the engine's time never jumps to the exchange's.
            u.ts = now;
            u
        }
        Settled::Unknown(e) => {
            tracing::warn!(client_id = %req.client_id, error = %e, "order outcome UNKNOWN; will resolve by client id");
            update(OrderState::Unknown, e.to_string())
        }
        Settled::Refused(e) => {
            let blocked = matches!(
                e,
                BinanceError::RateLimited { .. } | BinanceError::IpBanned { .. }
            );
            if !blocked {
                tracing::error!(client_id = %req.client_id, side = req.side.as_str(), qty = %req.qty, error = %e, "order rejected");
            } else if *refusing != Some(e.kind()) {
                // Once per rate-limit / ban episode, not per refused order.
                tracing::error!(client_id = %req.client_id, error = %e, "orders refused: the exchange's back-off window is running; premia sends nothing until it ends");
            }
            *refusing = blocked.then(|| e.kind());
            update(OrderState::Rejected, e.to_string())
        }
    }
}
