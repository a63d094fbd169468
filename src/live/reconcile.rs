//! Restart reconciliation: before trading, every order the store does not know the end of is resolved by client id,
//! and the position is made to agree with the exchange (the exchange wins; each correction is logged and journalled).

use crate::binance::error::BinanceError;
use crate::binance::rest::RestClient;
use crate::engine::{Action, Engine};
use crate::model::{JournalEntry, JournalKind, OrderState, TsNs};
use crate::store::Store;

use super::LiveError;

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
pub async fn reconcile(
    rest: &RestClient,
    store: &Store,
    engine: &mut Engine,
    now: TsNs,
    out: &mut Vec<Action>,
) -> Result<(), LiveError> {
    let symbol = engine.strategy().symbol.clone();
    // 1. What the store says.
    if let Some(p) = store.positions()?.into_iter().find(|p| p.symbol == symbol) {
        engine.restore(p);
    }
    // 2. Orders written (maybe sent) but never seen to finish: ask the exchange by client id.
    for mut rec in store.open_orders()? {
        if rec.request.symbol != symbol {
            continue;
        }
        let id = rec.request.client_id.clone();
        match rest.query_order(&symbol, &id).await {
            Ok(u) => {
                let was = rec.state;
                rec.state = u.state;
                rec.exchange_id = u.exchange_id.or(rec.exchange_id);
                rec.filled_qty = u.cum_qty;
                rec.avg_price = u.avg_price.or(rec.avg_price);
                rec.updated_ts = now;
                out.push(journal(
                    now,
                    "order",
                    Some(id.clone()),
                    format!(
                        "order was {} in the store, {} on the exchange (filled {})",
                        was.as_str(),
                        u.state.as_str(),
                        u.cum_qty
                    ),
                ));
                if !u.state.is_terminal() {
                    // A resting order from an earlier run: premia does not know whether its strategy still wants it.
                    match rest.cancel_order(&symbol, &id).await {
                        Ok(c) => rec.state = c.state,
                        Err(e) => {
                            tracing::warn!(client_id = %id, error = %e, "could not cancel a leftover order")
                        }
                    }
                }
                out.push(Action::OrderChanged(rec));
            }
            Err(BinanceError::UnknownOrder { .. }) => {
                rec.state = OrderState::Expired;
                rec.note =
                    Some("never reached the exchange (not found by client id at restart)".into());
                rec.updated_ts = now;
                out.push(journal(
                    now,
                    "order",
                    Some(id),
                    "intent in the store was never placed on the exchange; marked EXPIRED".into(),
                ));
                out.push(Action::OrderChanged(rec));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // 3. Orders on the exchange premia has no record of.
    for o in rest.open_orders(Some(&symbol)).await? {
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
    let positions = rest.position_risk(Some(&symbol)).await?;
    let (qty, entry) = positions.iter().filter(|p| p.symbol == symbol).fold(
        (crate::model::Decimal::ZERO, crate::model::Decimal::ZERO),
        |(q, e), p| (q + p.qty, if p.qty.is_zero() { e } else { p.entry_price }),
    );
    engine.reconcile_position(qty, entry, now, out);
    Ok(())
}
