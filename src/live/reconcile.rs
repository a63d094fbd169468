//! Restart reconciliation: before trading, every order the store does not know the end of is resolved by client id,
//! and the position is made to agree with the exchange (the exchange wins; each correction is logged and journalled).

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::gateway::OrderGateway;
use crate::binance::backoff::{retry, RetryError, RetryPolicy};
use crate::binance::error::BinanceError;
use crate::engine::{Action, Engine, Event};
use crate::model::{JournalEntry, JournalKind, OrderRecord, OrderState, TsNs};
use crate::store::{Store, StoreError};

/// How reconciliation's requests are retried (the run's one policy).
pub struct Retrying<'a> {
    pub policy: &'a RetryPolicy,
    pub cancel: &'a CancellationToken,
}

impl Retrying<'_> {
    async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, RetryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BinanceError>>,
    {
        retry(self.policy, what, self.cancel, op).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exchange(RetryError),
}

fn journal(now: TsNs, action: &str, client_id: Option<String>, note: String) -> Action {
    tracing::warn!(
        client_id = client_id.as_deref().unwrap_or(""),
        "reconcile: {note}"
    );
    Action::Journal(JournalEntry {
        ts: now,
        kind: JournalKind::Reconcile,
        rule: String::new(),
        action: action.to_string(),
        values: Vec::new(),
        risk: String::new(),
        client_id,
        note,
    })
}

/// Resolves unfinished orders and adopts the exchange's position. Actions to persist are appended to `out`.
pub async fn reconcile<G: OrderGateway>(
    g: &G,
    retrying: &Retrying<'_>,
    store: &Store,
    engine: &mut Engine,
    now: TsNs,
    out: &mut Vec<Action>,
) -> Result<(), ReconcileError> {
    let symbol = engine.strategy().symbol.clone();
    // 1. What the store says.
    if let Some(p) = store.positions()?.into_iter().find(|p| p.symbol == symbol) {
        engine.restore(p);
    }
    // 2. Orders written (maybe sent) but never seen to finish: ask the exchange by client id.
    for rec in store.open_orders()? {
        if rec.request.symbol == symbol {
            resolve_open(g, retrying, engine, rec, now, out).await?;
        }
    }
    // 3. Orders on the exchange premia has no record of.
    let open = retrying
        .run("open orders", || g.open_orders(&symbol))
        .await
        .map_err(ReconcileError::Exchange)?;
    for o in open {
        let id = o.request.client_id.clone();
        if store.order(&id)?.is_none() {
            out.push(journal(
                now,
                "order",
                Some(id.clone()),
                format!("open order {id} on the exchange is not in the store; left alone"),
            ));
        }
    }
    // 4. The position: the exchange wins.
    let positions = retrying
        .run("position", || g.positions(&symbol))
        .await
        .map_err(ReconcileError::Exchange)?;
    let (qty, entry) = positions.iter().filter(|p| p.symbol == symbol).fold(
        (crate::model::Decimal::ZERO, crate::model::Decimal::ZERO),
        |(q, e), p| (q + p.qty, if p.qty.is_zero() { e } else { p.entry_price }),
    );
    engine.reconcile_position(qty, entry, now, out);
    Ok(())
}

/// One order the store does not know the end of: where it stands on the exchange, applied through the engine so
/// that fills the store missed (a crash between the exchange's fill and its booking) are booked once, by cumulative
/// quantity. A leftover resting order is cancelled: premia does not know whether its strategy still wants it.
async fn resolve_open<G: OrderGateway>(
    g: &G,
    retrying: &Retrying<'_>,
    engine: &mut Engine,
    mut rec: OrderRecord,
    now: TsNs,
    out: &mut Vec<Action>,
) -> Result<(), ReconcileError> {
    let symbol = rec.request.symbol.clone();
    let id = rec.request.client_id.clone();
    match retrying.run("order query", || g.query(&symbol, &id)).await {
        Ok(mut u) => {
            let note = format!(
                "order was {} in the store (filled {}), {} on the exchange (filled {})",
                rec.state.as_str(),
                rec.filled_qty,
                u.state.as_str(),
                u.cum_qty
            );
            out.push(journal(now, "order", Some(id.clone()), note));
            // Our clock, so the engine's time never jumps to the exchange's.
            u.ts = now;
            let open = !u.state.is_terminal();
            engine.adopt_unfinished(rec);
            engine.on_event(&Event::Order(u), out);
            if open {
                let settled = match g.cancel(&symbol, &id).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(client_id = %id, error = %e, "could not cancel a leftover order; asking where it stands");
                        g.query(&symbol, &id).await.ok()
                    }
                };
                if let Some(mut c) = settled {
                    c.ts = now;
                    engine.on_event(&Event::Order(c), out);
                }
            }
        }
        Err(RetryError::Fatal(BinanceError::UnknownOrder { .. })) => {
            rec.state = OrderState::Expired;
            rec.note =
                Some("never reached the exchange (not found by client id at restart)".into());
            rec.updated_ts = now;
            let note = "intent in the store was never placed on the exchange; marked EXPIRED";
            out.push(journal(now, "order", Some(id), note.into()));
            out.push(Action::OrderChanged(rec));
        }
        Err(e) => return Err(ReconcileError::Exchange(e)),
    }
    Ok(())
}
