//! Persistent state of one run in sled: orders, fills, positions (with realised PnL), decision journal, run info.
//!
//! One [`Store`] per state dir; sled's file lock keeps a second premia process out. Every value is a versioned
//! record (see [`codec`]), so state written by an older or newer premia still loads.
//!
//! Durability: with [`Durability::Sync`] writing an order in state `Intent` flushes to disk before
//! [`Store::put_order`] returns, so an order is never sent without its intent on disk; everything else is flushed by
//! sled's background flusher (every 500 ms), by the next intent, by [`Store::flush`] and on drop. With
//! [`Durability::Deferred`] (live trading) the intent is written but its flush is left to the caller: [`Store::flush`]
//! before the order is sent (`storage.sync_intents = true`), or [`Store::flush_in_background`] while the request is
//! in flight, awaited before the order's outcome is applied (the default). With
//! [`Durability::Lazy`] (backtests) nothing is flushed until [`Store::flush`] or drop: a crash may lose everything
//! written since the last flush (what survives is always a consistent prefix of the writes).

mod codec;
mod locate;
mod runs;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::model::{Decimal, Fill, JournalEntry, OrderRecord, OrderState, Position, TsNs};

use codec::{decode, encode, encode_into, seq_from_key, seq_key, TreeId};

pub use codec::VERSION as RECORD_VERSION;
pub use locate::{is_state_dir, locate, Located};
pub use runs::{warn_if_crashed, EndedHow};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state dir {} is in use by another premia process", dir.display())]
    InUse { dir: PathBuf },
    #[error("{} is not a premia state dir (nor a folder of runs)", dir.display())]
    NotStateDir { dir: PathBuf },
    #[error("cannot create state dir {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open state dir {}: {source}", dir.display())]
    Open { dir: PathBuf, source: sled::Error },
    #[error("state dir {}: {op} failed: {source}", dir.display())]
    Db {
        dir: PathBuf,
        op: &'static str,
        source: sled::Error,
    },
    #[error("record {key} in tree '{tree}' has unknown encoding version {version} (written by a newer premia?)")]
    UnknownVersion {
        tree: &'static str,
        key: String,
        version: u8,
    },
    #[error("record {key} in tree '{tree}' is corrupt: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
    #[error("cannot encode record {key} for tree '{tree}': {reason}")]
    Encode {
        tree: &'static str,
        key: String,
        reason: String,
    },
}

/// When writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Order intents are flushed before `put_order` returns; a background flush every 500 ms.
    Sync,
    /// Live trading: like `Sync`, but `put_order` leaves the intent's flush to the caller ([`Store::flush`] or
    /// [`Store::flush_in_background`]), so that the fsync can overlap the order's request.
    Deferred,
    /// Backtests: flushed only by [`Store::flush`] and on drop.
    Lazy,
}

/// An order-index entry still to write for an intent ([`Store::put_intent`] → [`Store::index_intent`]). Its
/// sequence number is taken when the intent is written, so the index keeps the orders' first-write order.
#[derive(Debug)]
#[must_use = "write the order's index entry with Store::index_intent"]
pub struct PendingIndex {
    seq: u64,
    client_id: sled::IVec,
}

/// A flush started by [`Store::flush_in_background`].
#[derive(Debug)]
pub struct BackgroundFlush {
    task: tokio::task::JoinHandle<Result<std::time::Duration, StoreError>>,
    dir: PathBuf,
}

impl BackgroundFlush {
    /// Waits for the flush; returns how long it took from its start.
    pub async fn wait(self) -> Result<std::time::Duration, StoreError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Db {
                dir: self.dir,
                op: "flush",
                source: sled::Error::ReportableBug(format!("the flush task failed: {e}")),
            }),
        }
    }
}

/// What produced a state dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    #[default]
    Backtest,
    Live,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Backtest => "backtest",
            RunKind::Live => "live",
        }
    }
}

/// Run information kept in the `meta` tree. Every field has a default so that older and newer records load.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunMeta {
    pub kind: RunKind,
    pub strategy_name: String,
    pub strategy_file: String,
    pub symbol: String,
    /// Wall clock when the run started (the exchange's clock for a live run).
    pub started_ts: TsNs,
    /// Wall clock when the run ended; `None` while it runs, or when its process died.
    pub ended_ts: Option<TsNs>,
    /// How the run ended; `None` while it runs, or when its process died and no later run has opened the state dir.
    pub ended_how: Option<EndedHow>,
    /// Wall clock of the later open that found this run without an end and marked it [`EndedHow::Crashed`].
    pub crash_detected_ts: Option<TsNs>,
    /// Market time of the first and last event processed (a backtest's data span).
    pub market_first_ts: Option<TsNs>,
    pub market_last_ts: Option<TsNs>,
    /// The account's balance (USDT) at the start, when known: a local exchange's `local.balance_usdt`, which a
    /// backtest also assumes.
    pub starting_balance: Option<Decimal>,
    pub config_path: Option<String>,
    /// Data files of a backtest (as given on the command line) or the feed URLs of a live run.
    pub data_inputs: Vec<String>,
    /// Where orders went ("local", a REST base URL, "simulated").
    pub exchange: Option<String>,
    /// premia version that wrote the state.
    pub premia_version: String,
}

const META_RUN_KEY: &[u8] = b"run";
const META_KV_PREFIX: &[u8] = b"kv:";

/// The state of one state dir.
pub struct Store {
    dir: PathBuf,
    durability: Durability,
    db: sled::Db,
    orders: sled::Tree,
    order_index: sled::Tree,
    fills: sled::Tree,
    fill_ids: sled::Tree,
    positions: sled::Tree,
    journal: sled::Tree,
    meta: sled::Tree,
    next_order_seq: AtomicU64,
    next_fill_seq: AtomicU64,
    next_journal_seq: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the state dir with [`Durability::Sync`].
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, Durability::Sync)
    }

    /// Opens (creating if needed) the state dir.
    pub fn open_with(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let flush_every = match durability {
            Durability::Sync | Durability::Deferred => Some(500),
            Durability::Lazy => None,
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(flush_every)
            .open()
            .map_err(|source| open_error(dir, source))?;
        let tree = |id: TreeId| {
            db.open_tree(id.name()).map_err(|source| StoreError::Db {
                dir: dir.to_path_buf(),
                op: "open tree",
                source,
            })
        };
        let orders = tree(TreeId::Orders)?;
        let order_index = tree(TreeId::OrderIndex)?;
        let fills = tree(TreeId::Fills)?;
        let fill_ids = tree(TreeId::FillIds)?;
        let positions = tree(TreeId::Positions)?;
        let journal = tree(TreeId::Journal)?;
        let meta = tree(TreeId::Meta)?;
        let next_seq = |t: &sled::Tree, id: TreeId| -> Result<AtomicU64, StoreError> {
            let last = t.last().map_err(|source| StoreError::Db {
                dir: dir.to_path_buf(),
                op: "read last key",
                source,
            })?;
            let next = match last {
                None => 1,
                Some((k, _)) => seq_from_key(&k)
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: id.name(),
                        key: id.key_label(&k),
                        reason: "key is not a sequence number".to_string(),
                    })?
                    .saturating_add(1),
            };
            Ok(AtomicU64::new(next))
        };
        let next_order_seq = next_seq(&order_index, TreeId::OrderIndex)?;
        let next_fill_seq = next_seq(&fills, TreeId::Fills)?;
        let next_journal_seq = next_seq(&journal, TreeId::Journal)?;
        let store = Store {
            dir: dir.to_path_buf(),
            durability,
            db,
            orders,
            order_index,
            fills,
            fill_ids,
            positions,
            journal,
            meta,
            next_order_seq,
            next_fill_seq,
            next_journal_seq,
        };
        let orphans = store.drop_orphan_fill_ids()?;
        if orphans > 0 {
            tracing::warn!(
                dir = %dir.display(),
                orphans,
                "dropped fill identities without their fill (a crash between the two writes of a fill)"
            );
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Writes everything to disk (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| self.db_err("flush", e))
    }

    /// Starts [`Store::flush`] on tokio's blocking pool and returns at once (call it inside a tokio runtime): the
    /// fsync of an order intent then runs while its request is in flight. Await the handle before acting on the
    /// order's outcome.
    pub fn flush_in_background(&self) -> BackgroundFlush {
        let db = self.db.clone();
        let dir = self.dir.clone();
        let started = std::time::Instant::now();
        let task = tokio::task::spawn_blocking(move || {
            db.flush()
                .map(|_| started.elapsed())
                .map_err(|source| StoreError::Db {
                    dir,
                    op: "flush",
                    source,
                })
        });
        BackgroundFlush {
            task,
            dir: self.dir.clone(),
        }
    }

    fn db_err(&self, op: &'static str, source: sled::Error) -> StoreError {
        StoreError::Db {
            dir: self.dir.clone(),
            op,
            source,
        }
    }

    // ----- orders -------------------------------------------------------------------------------------------

    /// Inserts or updates an order (keyed by client order id). The first write of a client id fixes its place in
    /// [`Store::orders`]. With [`Durability::Sync`], an order in state `Intent` is on disk when this returns.
    ///
    /// Two plain inserts, not a transaction (an intent is written on the order's latency path, and a sled
    /// transaction costs several times as much): the order first, then — for a new client id — its index entry. A
    /// crash between the two leaves an order without an index entry, which [`Store::orders`] still lists (last);
    /// never an index entry without its order, as sled recovers a prefix of the writes.
    pub fn put_order(&self, order: &OrderRecord) -> Result<(), StoreError> {
        let key = order.request.client_id.as_bytes();
        let value = encode(TreeId::Orders, key, order)?;
        let previous = self
            .orders
            .insert(key, value)
            .map_err(|e| self.db_err("write order", e))?;
        if previous.is_none() {
            let seq = self.next_order_seq.fetch_add(1, Ordering::Relaxed);
            self.order_index
                .insert(seq_key(seq), key)
                .map_err(|e| self.db_err("write order index", e))?;
        }
        if self.durability == Durability::Sync && order.state == OrderState::Intent {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes a new order's intent with one insert — the order path's store write — encoded into `buf` (reused
    /// between orders, so the encoding allocates nothing once it has grown). The order's entry in the order index is
    /// left to [`Store::index_intent`] with the returned [`PendingIndex`], to be called right after the request is
    /// sent. Until then (and if a crash comes first) the order is still listed by [`Store::orders`], last; see
    /// [`Store::put_order`]. With [`Durability::Sync`] the intent is on disk when this returns.
    ///
    /// For a client id already stored this is [`Store::put_order`] (the index has it already).
    pub fn put_intent(
        &self,
        order: &OrderRecord,
        buf: &mut Vec<u8>,
    ) -> Result<Option<PendingIndex>, StoreError> {
        let key = order.request.client_id.as_bytes();
        encode_into(TreeId::Orders, key, order, buf)?;
        let previous = self
            .orders
            .insert(key, buf.as_slice())
            .map_err(|e| self.db_err("write order", e))?;
        let pending = previous.is_none().then(|| PendingIndex {
            seq: self.next_order_seq.fetch_add(1, Ordering::Relaxed),
            // Inline (no allocation) for ids up to 22 bytes, as premia's are.
            client_id: sled::IVec::from(key),
        });
        if self.durability == Durability::Sync && order.state == OrderState::Intent {
            self.flush()?;
        }
        Ok(pending)
    }

    /// The order-index entry of an intent written by [`Store::put_intent`].
    pub fn index_intent(&self, pending: PendingIndex) -> Result<(), StoreError> {
        self.order_index
            .insert(seq_key(pending.seq), pending.client_id)
            .map_err(|e| self.db_err("write order index", e))?;
        Ok(())
    }

    /// The order with this client id.
    pub fn order(&self, client_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let key = client_id.as_bytes();
        match self
            .orders
            .get(key)
            .map_err(|e| self.db_err("read order", e))?
        {
            None => Ok(None),
            Some(v) => decode(TreeId::Orders, key, &v).map(Some),
        }
    }

    /// Every order, in the order they were first written.
    pub fn orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        let mut out = Vec::with_capacity(self.orders.len());
        let mut seen = std::collections::HashSet::new();
        for item in self.order_index.iter() {
            let (seq_k, client) = item.map_err(|e| self.db_err("read order index", e))?;
            if !seen.insert(client.to_vec()) {
                continue;
            }
            if let Some(v) = self
                .orders
                .get(&client)
                .map_err(|e| self.db_err("read order", e))?
            {
                out.push(decode(TreeId::Orders, &client, &v)?);
            } else {
                return Err(StoreError::Corrupt {
                    tree: TreeId::OrderIndex.name(),
                    key: TreeId::OrderIndex.key_label(&seq_k),
                    reason: format!(
                        "names order {:?} that is not stored",
                        String::from_utf8_lossy(&client)
                    ),
                });
            }
        }
        // Orders missing from the index (should not happen) still show, after the indexed ones.
        if seen.len() < self.orders.len() {
            for item in self.orders.iter() {
                let (k, v) = item.map_err(|e| self.db_err("read order", e))?;
                if !seen.contains(k.as_ref()) {
                    out.push(decode(TreeId::Orders, &k, &v)?);
                }
            }
        }
        Ok(out)
    }

    /// Orders that can still change: every non-terminal state, including `Intent`, `Sent` and `Unknown`.
    pub fn open_orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        let mut all = self.orders()?;
        all.retain(|o| !o.state.is_terminal());
        Ok(all)
    }

    // ----- fills --------------------------------------------------------------------------------------------

    /// Records a fill once. Returns `false` (and stores nothing) when the same fill was already recorded:
    /// same client id and exchange trade id, or — without a trade id — same client id, timestamp, qty and price.
    pub fn add_fill(&self, fill: &Fill) -> Result<bool, StoreError> {
        let id = fill_identity(fill);
        let seq = self.next_fill_seq.fetch_add(1, Ordering::Relaxed);
        let key = seq_key(seq);
        let value = encode(TreeId::Fills, &key, fill)?;
        // The identity is claimed first, atomically (insert if absent: two callers recording the same fill at
        // once store it once), then the fill is written. Two inserts instead of a sled transaction, which costs
        // about ten times as much. A crash between them leaves an identity without its fill: `open` drops it.
        let claimed = self
            .fill_ids
            .compare_and_swap(id.as_slice(), None::<&[u8]>, Some(&key[..]))
            .map_err(|e| self.db_err("write fill id", e))?;
        if claimed.is_err() {
            return Ok(false);
        }
        self.fills
            .insert(key, value)
            .map_err(|e| self.db_err("write fill", e))?;
        Ok(true)
    }

    /// Drops the fill identities whose fill is missing: what a crash between the two writes of
    /// [`Store::add_fill`] leaves. Returns how many there were.
    fn drop_orphan_fill_ids(&self) -> Result<usize, StoreError> {
        let mut orphans = Vec::new();
        for item in self.fill_ids.iter() {
            let (id, key) = item.map_err(|e| self.db_err("read fill ids", e))?;
            let present = self
                .fills
                .contains_key(&key)
                .map_err(|e| self.db_err("read fills", e))?;
            if !present {
                orphans.push(id);
            }
        }
        for id in &orphans {
            self.fill_ids
                .remove(id)
                .map_err(|e| self.db_err("repair fill ids", e))?;
        }
        Ok(orphans.len())
    }

    /// Every fill, in the order recorded.
    pub fn fills(&self) -> Result<Vec<Fill>, StoreError> {
        let mut out = Vec::with_capacity(self.fills.len());
        for item in self.fills.iter() {
            let (k, v) = item.map_err(|e| self.db_err("read fills", e))?;
            out.push(decode(TreeId::Fills, &k, &v)?);
        }
        Ok(out)
    }

    // ----- positions ----------------------------------------------------------------------------------------

    /// Inserts or replaces the position of `position.symbol`.
    pub fn put_position(&self, position: &Position) -> Result<(), StoreError> {
        let key = position.symbol.as_bytes();
        let value = encode(TreeId::Positions, key, position)?;
        self.positions
            .insert(key, value)
            .map_err(|e| self.db_err("write position", e))?;
        Ok(())
    }

    pub fn position(&self, symbol: &str) -> Result<Option<Position>, StoreError> {
        let key = symbol.as_bytes();
        match self
            .positions
            .get(key)
            .map_err(|e| self.db_err("read position", e))?
        {
            None => Ok(None),
            Some(v) => decode(TreeId::Positions, key, &v).map(Some),
        }
    }

    /// Every position (flat ones included), by symbol.
    pub fn positions(&self) -> Result<Vec<Position>, StoreError> {
        let mut out = Vec::new();
        for item in self.positions.iter() {
            let (k, v) = item.map_err(|e| self.db_err("read positions", e))?;
            out.push(decode(TreeId::Positions, &k, &v)?);
        }
        Ok(out)
    }

    /// Realised PnL net of fees, summed over all positions.
    pub fn realized_pnl(&self) -> Result<Decimal, StoreError> {
        Ok(self
            .positions()?
            .iter()
            .fold(Decimal::ZERO, |acc, p| acc.saturating_add(p.realized_pnl)))
    }

    // ----- journal ------------------------------------------------------------------------------------------

    /// Appends a journal entry; returns its sequence number.
    pub fn append_journal(&self, entry: &JournalEntry) -> Result<u64, StoreError> {
        let seq = self.next_journal_seq.fetch_add(1, Ordering::Relaxed);
        let key = seq_key(seq);
        let value = encode(TreeId::Journal, &key, entry)?;
        self.journal
            .insert(key, value)
            .map_err(|e| self.db_err("write journal", e))?;
        Ok(seq)
    }

    /// The whole journal, oldest first.
    pub fn journal(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let mut out = Vec::with_capacity(self.journal.len());
        for item in self.journal.iter() {
            let (k, v) = item.map_err(|e| self.db_err("read journal", e))?;
            out.push(decode(TreeId::Journal, &k, &v)?);
        }
        Ok(out)
    }

    // ----- meta ---------------------------------------------------------------------------------------------

    /// Writes the run information (replacing any earlier one).
    pub fn put_meta(&self, meta: &RunMeta) -> Result<(), StoreError> {
        let value = encode(TreeId::Meta, META_RUN_KEY, meta)?;
        self.meta
            .insert(META_RUN_KEY, value)
            .map_err(|e| self.db_err("write meta", e))?;
        Ok(())
    }

    /// The run information, if any was written.
    pub fn meta(&self) -> Result<Option<RunMeta>, StoreError> {
        match self
            .meta
            .get(META_RUN_KEY)
            .map_err(|e| self.db_err("read meta", e))?
        {
            None => Ok(None),
            Some(v) => decode(TreeId::Meta, META_RUN_KEY, &v).map(Some),
        }
    }

    /// Records the end of the run: its wall-clock end, how it ended and (when known) the market-time span it
    /// processed. Does nothing when no run information was written.
    pub fn finish_run(
        &self,
        ended_ts: TsNs,
        market_span: Option<(TsNs, TsNs)>,
        how: EndedHow,
    ) -> Result<(), StoreError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(());
        };
        meta.ended_ts = Some(ended_ts);
        meta.ended_how = Some(how);
        if let Some((first, last)) = market_span {
            meta.market_first_ts = Some(first);
            meta.market_last_ts = Some(last);
        }
        self.put_meta(&meta)
    }

    /// Sets a free key/value in the meta tree.
    pub fn put_meta_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let k = meta_kv_key(key);
        let v = encode(TreeId::Meta, &k, &value)?;
        self.meta
            .insert(k, v)
            .map_err(|e| self.db_err("write meta", e))?;
        Ok(())
    }

    pub fn meta_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let k = meta_kv_key(key);
        match self.meta.get(&k).map_err(|e| self.db_err("read meta", e))? {
            None => Ok(None),
            Some(v) => decode(TreeId::Meta, &k, &v).map(Some),
        }
    }

    /// A handle that keeps one free key/value durable from another thread or task (the exchange's back-off
    /// window, written whenever the exchange imposes one).
    pub fn meta_keeper(&self, key: &str) -> MetaKeeper {
        MetaKeeper {
            dir: self.dir.clone(),
            key: meta_kv_key(key),
            meta: self.meta.clone(),
        }
    }

    /// Every free key/value, by key.
    pub fn meta_values(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.meta.scan_prefix(META_KV_PREFIX) {
            let (k, v) = item.map_err(|e| self.db_err("read meta", e))?;
            let value: String = decode(TreeId::Meta, &k, &v)?;
            let key = String::from_utf8_lossy(k.get(META_KV_PREFIX.len()..).unwrap_or_default())
                .into_owned();
            out.insert(key, value);
        }
        Ok(out)
    }
}

/// See [`Store::meta_keeper`].
#[derive(Clone)]
pub struct MetaKeeper {
    dir: PathBuf,
    key: Vec<u8>,
    meta: sled::Tree,
}

impl MetaKeeper {
    /// Writes the value and flushes it to disk.
    pub fn put(&self, value: &str) -> Result<(), StoreError> {
        let v = encode(TreeId::Meta, &self.key, &value)?;
        let db_err = |op, source| StoreError::Db {
            dir: self.dir.clone(),
            op,
            source,
        };
        self.meta
            .insert(self.key.as_slice(), v)
            .map_err(|e| db_err("write meta", e))?;
        self.meta.flush().map_err(|e| db_err("flush meta", e))?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "flushing the state dir on close failed");
        }
    }
}

fn open_error(dir: &Path, source: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &source {
        if io.to_string().contains("could not acquire lock") {
            return StoreError::InUse {
                dir: dir.to_path_buf(),
            };
        }
    }
    StoreError::Open {
        dir: dir.to_path_buf(),
        source,
    }
}

fn meta_kv_key(key: &str) -> Vec<u8> {
    let mut k = META_KV_PREFIX.to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// The identity of a fill for de-duplication.
fn fill_identity(fill: &Fill) -> Vec<u8> {
    let text = match fill.trade_id {
        Some(t) => format!("t\u{0}{}\u{0}{t}", fill.client_id),
        None => format!(
            "x\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            fill.client_id,
            fill.ts,
            fill.qty.normalize(),
            fill.price.normalize()
        ),
    };
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrderRequest, OrderType, Side};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn order(id: &str) -> OrderRecord {
        OrderRecord::new(OrderRequest {
            client_id: id.to_string(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            order_type: OrderType::Market,
            qty: d("0.010"),
            price: None,
            reduce_only: false,
            rule: "r".into(),
            decided_ts: 1,
        })
    }

    #[test]
    fn a_fill_identity_without_its_fill_is_dropped_at_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let fill = Fill {
            ts: 1,
            client_id: "c".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            qty: d("0.010"),
            price: d("60000"),
            fee: d("0"),
            trade_id: Some(7),
            rule: "r".into(),
        };
        {
            let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
            // What a crash between the identity and the fill leaves: the identity only.
            store
                .fill_ids
                .insert(fill_identity(&fill), &seq_key(1)[..])
                .unwrap();
            assert!(!store.add_fill(&fill).unwrap(), "seen as recorded");
            store.flush().unwrap();
        }
        let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
        assert!(store.add_fill(&fill).unwrap(), "recordable again");
        assert!(!store.add_fill(&fill).unwrap(), "then once only");
        assert_eq!(store.fills().unwrap(), vec![fill]);
    }

    #[test]
    fn orders_list_in_creation_order_not_alphabetical() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
        for id in ["zz", "aa", "mm"] {
            store.put_order(&order(id)).unwrap();
        }
        let mut o = order("aa");
        o.state = OrderState::Filled;
        store.put_order(&o).unwrap();
        let ids: Vec<_> = store
            .orders()
            .unwrap()
            .into_iter()
            .map(|o| o.request.client_id)
            .collect();
        assert_eq!(ids, ["zz", "aa", "mm"]);
        let open: Vec<_> = store
            .open_orders()
            .unwrap()
            .into_iter()
            .map(|o| o.request.client_id)
            .collect();
        assert_eq!(open, ["zz", "mm"]);
    }

    #[test]
    fn fill_identity_ignores_decimal_scale_and_uses_trade_id() {
        let f = Fill {
            ts: 1,
            client_id: "c".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            qty: d("0.010"),
            price: d("60000.0"),
            fee: d("0"),
            trade_id: None,
            rule: "r".into(),
        };
        let mut g = f.clone();
        g.qty = d("0.01");
        g.price = d("60000");
        assert_eq!(fill_identity(&f), fill_identity(&g));
        let mut t1 = f.clone();
        t1.trade_id = Some(5);
        let mut t2 = f.clone();
        t2.trade_id = Some(6);
        assert_ne!(fill_identity(&t1), fill_identity(&t2));
    }

    #[test]
    fn corrupt_order_record_is_an_error_naming_tree_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
        store.put_order(&order("good")).unwrap();
        store.put_order(&order("bad")).unwrap();
        store.orders.insert(b"bad", &[1u8, b'{', b'x'][..]).unwrap();
        let err = store.orders().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'orders'") && msg.contains("\"bad\""), "{msg}");
        assert!(store.order("good").unwrap().is_some());
        assert!(store.order("bad").is_err());
    }
}
