//! Start-up of a live run, step by step: the state store (refusing to trade with state it cannot write, and
//! waiting out a back-off window an earlier process learned), the exchange's rules and account checks (every
//! request through the one retry policy), and the engine reconciled with the exchange.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::local::Endpoints;
use super::{reconcile, LiveError, LiveOptions};
use crate::binance::backoff::{retry, RetryError, RetryPolicy};
use crate::binance::error::BinanceError;
use crate::binance::rest::{BlockWindow, PositionMode, RestClient, RestConfig};
use crate::config::ExchangeMode;
use crate::engine::{Action, Engine};
use crate::model::{SymbolFilters, NS_PER_MS};
use crate::persist::persist;
use crate::store::{warn_if_crashed, Durability, RunKind, RunMeta, Store};
use crate::strategy::Strategy;

/// The store's key for the exchange's last back-off window (`<until unix ms> <ban|limit>`).
const BACKOFF_KEY: &str = "exchange.backoff_until";

/// The retry policy of start-up: bounded by `--startup-timeout` when given.
pub(super) fn startup_policy(opts: &LiveOptions) -> RetryPolicy {
    RetryPolicy {
        deadline: opts
            .startup_timeout
            .map(|d| tokio::time::Instant::now() + d),
        ..RetryPolicy::default()
    }
}

/// Maps a retry that gave up to the run's error.
pub(super) fn gave_up(e: RetryError, opts: &LiveOptions) -> LiveError {
    match e {
        RetryError::Fatal(e) => LiveError::Exchange(e),
        RetryError::Deadline { last, .. } => LiveError::StartupTimeout {
            waited: opts.startup_timeout.unwrap_or_default(),
            last,
        },
        RetryError::Cancelled => LiveError::Cancelled,
    }
}

/// Opens the state store and proves it writable (a write and an fsync): premia never trades with state it cannot
/// keep.
pub(super) fn open_store(
    opts: &LiveOptions,
    strategy: &Strategy,
    ep: &Endpoints,
    started_ts: i64,
) -> Result<(Store, PathBuf), LiveError> {
    let cfg = &opts.config;
    // Local runs get a fresh folder each time (the local exchange starts empty); real accounts keep theirs.
    let state_dir = match cfg.exchange.mode {
        ExchangeMode::Local => fresh_subdir(&cfg.state_dir),
        ExchangeMode::Binance => cfg.state_dir.clone(),
    };
    let unwritable = |e: &dyn std::fmt::Display| LiveError::StateNotWritable {
        dir: state_dir.clone(),
        reason: e.to_string(),
    };
    let store = Store::open_with(&state_dir, Durability::Deferred).map_err(|e| unwritable(&e))?;
    let meta = RunMeta {
        kind: RunKind::Live,
        strategy_name: strategy.name.clone(),
        strategy_file: strategy.source.display().to_string(),
        symbol: strategy.symbol.clone(),
        started_ts,
        ended_ts: None,
        ended_how: None,
        crash_detected_ts: None,
        market_first_ts: None,
        market_last_ts: None,
        starting_balance: match cfg.exchange.mode {
            ExchangeMode::Local => Some(cfg.local.balance_usdt),
            ExchangeMode::Binance => None,
        },
        config_path: Some(cfg.source.clone()),
        data_inputs: vec![ep.spot_ws_url.clone(), ep.futures_ws_url.clone()],
        exchange: Some(match cfg.exchange.mode {
            ExchangeMode::Local => format!("local ({})", ep.rest_url),
            ExchangeMode::Binance => ep.rest_url.clone(),
        }),
        premia_version: env!("CARGO_PKG_VERSION").into(),
    };
    let previous = store
        .begin_run(&meta, started_ts)
        .map_err(|e| unwritable(&e))?;
    warn_if_crashed(previous.as_ref(), &state_dir);
    store.flush().map_err(|e| unwritable(&e))?;
    Ok((store, state_dir))
}

/// The REST client of the run; every back-off window it learns is kept in the store, and one learned by an earlier
/// process is waited out before the first request.
pub(super) async fn rest_client(
    opts: &LiveOptions,
    ep: &Endpoints,
    store: &Store,
) -> Result<RestClient, LiveError> {
    let cfg = &opts.config;
    let mut rest_cfg = RestConfig::new(ep.rest_url.clone());
    rest_cfg.recv_window_ms = cfg.exchange.recv_window_ms;
    rest_cfg.timeout = Duration::from_millis(cfg.exchange.timeout_ms);
    let rest = RestClient::new(rest_cfg, ep.creds.clone())?;
    if let Some(window) = load_backoff(store) {
        if let Some(wait) = rest.restore_block(window) {
            let what = if window.banned {
                "IP ban (418)"
            } else {
                "rate-limit window (429)"
            };
            tracing::warn!(
                wait_s = wait.as_secs_f64().ceil() as u64,
                "an exchange {what} learned before the restart is still running: sending nothing until it ends"
            );
            wait_out(wait, opts).await?;
        }
    }
    let keep = store.meta_keeper(BACKOFF_KEY);
    rest.on_block(Some(Arc::new(move |w: BlockWindow| {
        let value = format!(
            "{} {}",
            w.until_unix_ms,
            if w.banned { "ban" } else { "limit" }
        );
        if let Err(e) = keep.put(&value) {
            tracing::warn!(error = %e, "cannot keep the back-off window in the state store");
        }
    })));
    Ok(rest)
}

fn load_backoff(store: &Store) -> Option<BlockWindow> {
    let v = store.meta_value(BACKOFF_KEY).ok()??;
    let (until, kind) = v.split_once(' ')?;
    Some(BlockWindow {
        until_unix_ms: until.parse().ok()?,
        banned: kind == "ban",
    })
}

/// Sleeps `wait`, unless shutdown is asked for or `--startup-timeout` ends first.
async fn wait_out(wait: Duration, opts: &LiveOptions) -> Result<(), LiveError> {
    if let Some(limit) = opts.startup_timeout.filter(|t| *t < wait) {
        tokio::select! {
            _ = opts.shutdown.cancelled() => return Err(LiveError::Cancelled),
            _ = tokio::time::sleep(limit) => {}
        }
        return Err(LiveError::StartupTimeout {
            waited: limit,
            last: BinanceError::RateLimited {
                retry_after: Some(wait - limit),
            },
        });
    }
    tokio::select! {
        _ = opts.shutdown.cancelled() => Err(LiveError::Cancelled),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}

/// Server time, the symbol's filters, one-way position mode and leverage — each retried through transient faults.
pub(super) async fn account_checks(
    rest: &RestClient,
    opts: &LiveOptions,
    symbol: &str,
) -> Result<SymbolFilters, LiveError> {
    let policy = startup_policy(opts);
    let cancel = &opts.shutdown;
    let up = |e| gave_up(e, opts);
    let offset = retry(&policy, "server time", cancel, || rest.sync_time())
        .await
        .map_err(up)?;
    tracing::info!(rest = %rest.base_url(), offset_ms = offset, "connected to the exchange");
    let filters = retry(&policy, "exchange info", cancel, || {
        rest.exchange_info(symbol)
    })
    .await
    .map_err(up)?;
    tracing::info!(%symbol, tick = %filters.tick_size, step = %filters.step_size, min_notional = %filters.min_notional, "exchange filters");
    let mode = retry(&policy, "position mode", cancel, || rest.position_mode())
        .await
        .map_err(up)?;
    if mode != PositionMode::OneWay {
        return Err(LiveError::HedgeMode);
    }
    let lev = retry(&policy, "leverage", cancel, || {
        rest.set_leverage(symbol, opts.config.exchange.leverage)
    })
    .await
    .map_err(up)?;
    tracing::info!(leverage = lev, "leverage set");
    Ok(filters)
}

/// The engine, restored from the store and reconciled with the exchange (the exchange wins).
pub(super) async fn engine(
    opts: &LiveOptions,
    strategy: Strategy,
    filters: SymbolFilters,
    rest: &RestClient,
    store: &Store,
    now: i64,
) -> Result<Engine, LiveError> {
    let cfg = &opts.config;
    let mut engine = Engine::new(
        strategy,
        cfg.engine_config(&client_id_prefix(now / NS_PER_MS)),
    );
    engine.set_filters(filters);
    engine.defer_journal(true);
    let mut actions: Vec<Action> = Vec::with_capacity(16);
    let policy = startup_policy(opts);
    let ctx = reconcile::Retrying {
        policy: &policy,
        cancel: &opts.shutdown,
    };
    reconcile::reconcile(rest, &ctx, store, &mut engine, now, &mut actions)
        .await
        .map_err(|e| match e {
            reconcile::ReconcileError::Store(e) => LiveError::Store(e),
            reconcile::ReconcileError::Exchange(e) => gave_up(e, opts),
        })?;
    for a in actions.drain(..) {
        persist(store, &a)?;
    }
    store.flush()?;
    Ok(engine)
}

/// A client-order-id prefix unique to this run: `pm` + base-36 start time in ms + `-` (the sequence follows).
fn client_id_prefix(now_ms: i64) -> String {
    let mut n = now_ms.max(0) as u64;
    let mut digits = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    digits.reverse();
    format!("pm{}-", String::from_utf8_lossy(&digits))
}

/// `dir/run-<UTC time>` (a new folder per local run).
fn fresh_subdir(dir: &Path) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut p = dir.join(format!("run-{}", now.as_millis()));
    let mut i = 2;
    while p.exists() {
        p = dir.join(format!("run-{}-{i}", now.as_millis()));
        i += 1;
    }
    p
}
