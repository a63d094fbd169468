//! `premia run`: the live trader. Feeds, the user-data stream and the order router are async tasks that talk to the
//! one engine task over a single bounded, ordered event channel; the engine is the same one backtests run.
//!
//! A run is a [`trader::LiveTrader`] going through separate steps: start-up ([`startup`]: the store, exchange rules
//! and account checks, reconciliation — the exchange wins), spawning the tasks, handling inbound events, executing
//! the engine's actions, and shutdown (a signal from the caller, the end of a local replay: stop entries,
//! optionally flatten, wait for the order in flight, flush the store, close sockets, print a summary).
//!
//! The library reads no environment variables and installs no signal handlers: the caller (`main`) passes the
//! credentials and a shutdown token. Every exchange request goes through the one retry policy
//! ([`crate::binance::backoff::retry`]); only what a retry cannot fix ends a run.
//!
//! Order intents: an intent is written to the store before its order is sent. With `storage.sync_intents = true`
//! it is also fsynced before the send; by default its fsync runs on a blocking thread while the request is in
//! flight and is awaited before the order's outcome (REST response or user-data event) is applied.
//!
//! The embedded local exchange (mode `local`) runs on its own thread and runtime, so that its replay and request
//! handling never queue in front of the bot's tasks.

pub mod gateway;
pub mod latency;
mod local;
pub mod reconcile;
pub mod router;
mod startup;
pub mod summary;
pub mod trader;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::binance::error::BinanceError;
use crate::binance::feed::{FeedStatus, Received};
use crate::binance::sign::Credentials;
use crate::binance::user_wire::UserEvent;
use crate::clock::Clock;
use crate::config::Config;
use crate::market::MarketEvent;
pub use summary::{peak_rss_kb, LiveSummary};
pub use trader::LiveTrader;

/// Capacity of the engine's event channel. Feeds wait (back-pressure) rather than drop when the engine lags.
pub const EVENT_CHANNEL: usize = 8192;

/// Everything the engine task receives, in one ordered channel.
#[derive(Debug)]
pub enum Inbound {
    /// A market event and when its frame was received, before parsing (monotonic, for the latency histogram).
    Market(MarketEvent, Instant),
    Feed(FeedStatus),
    User(UserEvent),
    Order(crate::model::OrderUpdate),
}

impl From<Received> for Inbound {
    fn from(r: Received) -> Self {
        Inbound::Market(r.event, r.at)
    }
}

impl From<FeedStatus> for Inbound {
    fn from(s: FeedStatus) -> Self {
        Inbound::Feed(s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Keys missing: the operator must export them (exit code 2).
    #[error("missing API keys: set the environment variable{} {} (see config `exchange.api_key_env` / `api_secret_env`)", if .0.len() == 1 { "" } else { "s" }, .0.join(" and "))]
    MissingKeys(Vec<String>),
    #[error(transparent)]
    Strategy(#[from] crate::strategy::StrategyError),
    #[error(transparent)]
    Exchange(#[from] BinanceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Persist(#[from] crate::persist::PersistError),
    #[error(transparent)]
    Local(#[from] crate::local_exchange::LocalExchangeError),
    #[error("the account is in hedge (dual-side) position mode; premia trades one-way mode: switch it in the exchange's settings")]
    HedgeMode,
    #[error("cannot write the state dir {}: {reason} — premia does not trade with state it cannot keep; make the folder writable (or free disk space) and start again", dir.display())]
    StateNotWritable { dir: PathBuf, reason: String },
    #[error("the exchange could not be reached within --startup-timeout {}s; last error: {last}", waited.as_secs())]
    StartupTimeout {
        waited: Duration,
        last: BinanceError,
    },
    #[error("stopped before trading began (shutdown asked for during start-up)")]
    Cancelled,
    #[error("{0}")]
    Startup(String),
}

impl LiveError {
    /// The process exit code for this error: 3 when `--startup-timeout` ran out, 0 when a signal stopped the
    /// start-up, 2 for everything a retry cannot fix (keys, permissions, config, state dir).
    pub fn exit_code(&self) -> u8 {
        match self {
            LiveError::StartupTimeout { .. } => 3,
            LiveError::Cancelled => 0,
            _ => 2,
        }
    }
}

/// How `premia run` was asked to run.
#[derive(Clone)]
pub struct LiveOptions {
    pub config: Config,
    /// The API keys (mode `binance`), read by the caller (`main` reads the variables the config names).
    pub credentials: Option<Credentials>,
    pub flatten_on_exit: bool,
    /// Stop after this long (tests, soak runs); `None` = until shutdown or the end of a local replay.
    pub max_duration: Option<Duration>,
    /// Give up start-up when the exchange cannot be reached for this long; `None` = keep trying.
    pub startup_timeout: Option<Duration>,
    /// Stop (the clean path) when this token is cancelled: `main` cancels it on SIGINT and SIGTERM.
    pub shutdown: CancellationToken,
    /// The engine's clock; `None` = the wall clock (binance mode) or the local exchange's replay clock (local mode).
    /// Tests driving an exchange they started themselves pass its replay clock here.
    pub clock: Option<Clock>,
}

impl LiveOptions {
    /// Options with defaults: no keys, no flatten, no time limits, a fresh shutdown token.
    pub fn new(config: Config) -> Self {
        LiveOptions {
            config,
            credentials: None,
            flatten_on_exit: false,
            max_duration: None,
            startup_timeout: None,
            shutdown: CancellationToken::new(),
            clock: None,
        }
    }
}

/// Runs the trader until shutdown; returns its summary.
pub async fn run(opts: LiveOptions) -> Result<LiveSummary, LiveError> {
    let started = Instant::now();
    LiveTrader::start(opts).await?.run(started).await
}
