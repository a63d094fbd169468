//! Settings of the local exchange and its well-known test API key pair.

use std::net::SocketAddr;
use std::time::Duration;

use super::account::AccountConfig;
use super::error::LocalExchangeError;
use super::faults::FaultPlan;
use crate::model::{Decimal, SymbolFilters};

/// The API key and secret the local exchange accepts. The default pair is public and fixed (it guards nothing but
/// the protocol), so it may be printed; a configured pair is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyPair {
    pub api_key: String,
    pub secret: String,
}

impl ApiKeyPair {
    /// The well-known test key of the local exchange.
    pub const TEST_API_KEY: &'static str =
        "premiaLocalTestKey0000000000000000000000000000000000000000000000";
    /// The well-known test secret of the local exchange.
    pub const TEST_SECRET: &'static str =
        "premiaLocalTestSecret000000000000000000000000000000000000000000";

    pub fn test_pair() -> Self {
        ApiKeyPair {
            api_key: Self::TEST_API_KEY.to_string(),
            secret: Self::TEST_SECRET.to_string(),
        }
    }

    /// True when this is the public test pair (safe to print).
    pub fn is_test_pair(&self) -> bool {
        self.api_key == Self::TEST_API_KEY && self.secret == Self::TEST_SECRET
    }
}

impl Default for ApiKeyPair {
    fn default() -> Self {
        Self::test_pair()
    }
}

impl std::fmt::Debug for ApiKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api_key: &str = if self.is_test_pair() {
            &self.api_key
        } else {
            "<redacted>"
        };
        f.debug_struct("ApiKeyPair")
            .field("api_key", &api_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Everything `LocalExchange::start` needs.
#[derive(Debug, Clone)]
pub struct LocalExchangeConfig {
    /// Address to bind, e.g. `127.0.0.1:0` for an ephemeral port.
    pub listen: SocketAddr,
    /// Recordings to replay: `spot:PATH`, `perp:PATH`, or bare paths (a file name containing `spot` is spot,
    /// anything else perp). Empty: no market data (the exchange still answers REST, but market orders get -1112).
    pub data: Vec<String>,
    /// Replay speed: 1 = real time, 10 = ten times faster, 0 = as fast as possible.
    pub speed: f64,
    /// Wallet balance in USDT at start.
    pub starting_balance: Decimal,
    /// Fee rates as fractions (0.0005 = 0.05 %).
    pub taker_fee: Decimal,
    pub maker_fee: Decimal,
    /// The one tradable symbol and its filters.
    pub symbol: String,
    pub filters: SymbolFilters,
    pub max_leverage: u32,
    /// The replay starts once this many websockets carrying book data (spot streams, futures `bookTicker`/`depth*`)
    /// are open (0 = at once).
    pub min_subscribers: usize,
    /// Start the recording over when it ends (virtual time keeps increasing).
    pub loop_replay: bool,
    pub keys: ApiKeyPair,
    /// Frames a market subscriber may fall behind before it is disconnected.
    pub stream_buffer: usize,
    /// A listen key expires this long (tokio clock) after its last POST/PUT.
    pub listen_key_ttl: Duration,
    /// Seeded fault injection (none by default).
    pub faults: FaultPlan,
    /// Serve the pre-2026 websocket paths: every futures stream and the user stream on the unrouted `/ws/…` and
    /// `/stream?…`, no `/public`, `/market`, `/private` (default: Binance's routing, as mainnet).
    pub legacy_routing: bool,
}

impl Default for LocalExchangeConfig {
    fn default() -> Self {
        LocalExchangeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data: Vec::new(),
            speed: 1.0,
            starting_balance: Decimal::from(10_000),
            taker_fee: Decimal::new(5, 4),
            maker_fee: Decimal::new(2, 4),
            symbol: "BTCUSDT".to_string(),
            filters: SymbolFilters::default(),
            max_leverage: 20,
            min_subscribers: 1,
            loop_replay: false,
            keys: ApiKeyPair::test_pair(),
            stream_buffer: 16_384,
            listen_key_ttl: Duration::from_secs(60 * 60),
            faults: FaultPlan::default(),
            legacy_routing: false,
        }
    }
}

impl LocalExchangeConfig {
    /// Checks the settings; collects every problem.
    pub fn validate(&self) -> Result<(), LocalExchangeError> {
        let mut problems = Vec::new();
        if !self.speed.is_finite() || self.speed < 0.0 {
            problems.push(format!("speed must be >= 0, got {}", self.speed));
        }
        if self.starting_balance < Decimal::ZERO {
            problems.push("starting_balance must be >= 0".to_string());
        }
        if self.taker_fee < Decimal::ZERO || self.maker_fee < Decimal::ZERO {
            problems.push("fee rates must be >= 0".to_string());
        }
        if self.max_leverage == 0 || self.max_leverage > 125 {
            problems.push("max_leverage must be in 1..=125".to_string());
        }
        if self.symbol.is_empty() {
            problems.push("symbol must not be empty".to_string());
        }
        if self.filters.tick_size <= Decimal::ZERO || self.filters.step_size <= Decimal::ZERO {
            problems.push("tick and step sizes must be > 0".to_string());
        }
        if self.stream_buffer == 0 {
            problems.push("stream_buffer must be > 0".to_string());
        }
        if self.keys.api_key.is_empty() || self.keys.secret.is_empty() {
            problems.push("api key and secret must not be empty".to_string());
        }
        problems.extend(self.faults.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LocalExchangeError::Config(problems.join("; ")))
        }
    }

    pub(crate) fn account(&self) -> AccountConfig {
        AccountConfig {
            symbol: self.symbol.clone(),
            filters: self.filters.clone(),
            starting_balance: self.starting_balance,
            taker_fee: self.taker_fee,
            maker_fee: self.maker_fee,
            max_leverage: self.max_leverage,
        }
    }
}
