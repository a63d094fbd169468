//! Writes the engine's actions to the store — the one place that decides what is persisted, shared by backtests
//! and live runs. An order intent is stored before it is sent because callers persist an action before acting on it.

use crate::engine::Action;
use crate::model::OrderRecord;
use crate::store::{PendingIndex, Store, StoreError};

#[derive(Debug, thiserror::Error)]
#[error("cannot persist {what}: {source}")]
pub struct PersistError {
    pub what: &'static str,
    #[source]
    pub source: StoreError,
}

/// Stores what an action changes. `Cancel` changes nothing until the exchange confirms.
pub fn persist(store: &Store, action: &Action) -> Result<(), PersistError> {
    let (what, r) = match action {
        Action::Place(rec) => ("order intent", store.put_order(rec)),
        Action::OrderChanged(rec) => ("order", store.put_order(rec)),
        Action::Filled { fill, position } => (
            "fill",
            store
                .add_fill(fill)
                .and_then(|_| store.put_position(position)),
        ),
        Action::PositionChanged(position) => ("position", store.put_position(position)),
        Action::Journal(entry) => ("journal entry", store.append_journal(entry).map(|_| ())),
        Action::Cancel { .. } => return Ok(()),
    };
    r.map_err(|source| PersistError { what, source })
}

/// Stores a new order's intent on the live order path: one store insert, encoded into the reused `buf`; the
/// returned index entry is written with [`Store::index_intent`] once the request is on its way.
pub fn persist_intent(
    store: &Store,
    record: &OrderRecord,
    buf: &mut Vec<u8>,
) -> Result<Option<PendingIndex>, PersistError> {
    store
        .put_intent(record, buf)
        .map_err(|source| PersistError {
            what: "order intent",
            source,
        })
}
