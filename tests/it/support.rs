//! Helpers the integration-test modules share: fixtures, a local exchange replaying real frames, a binance-mode
//! config written into a temp dir, and running the real `premia` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use premia::local_exchange::{LocalExchange, LocalExchangeConfig, RunningExchange};

/// The path of a recorded market-data fixture.
pub fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/market_data/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A config replaying the first 2,000 real frames of each market (2024-08-08, ~9 s with both markets).
pub fn head2000(speed: f64, min_subscribers: usize) -> LocalExchangeConfig {
    LocalExchangeConfig {
        data: vec![
            format!("spot:{}", fixture("spot_btcusdt_20240808_head2000.gz")),
            format!("perp:{}", fixture("usdm_btcusdt_20240808_head2000.gz")),
        ],
        speed,
        min_subscribers,
        ..LocalExchangeConfig::default()
    }
}

/// Starts a local exchange on 127.0.0.1; a test cannot go on without it.
pub async fn start(config: LocalExchangeConfig) -> RunningExchange {
    LocalExchange::start(config)
        .await
        .expect("local exchange starts")
}

/// Wall-clock milliseconds since the Unix epoch (what signed requests carry).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A strategy that enters long whenever flat and holds for `max_hold`.
pub fn always_long(name: &str, max_hold: &str) -> String {
    format!(
        r#"
name = "{name}"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "enter_long"
[exit]
max_hold = "{max_hold}"
[order]
quantity = "0.002"
"#
    )
}

/// A `mode = "binance"` config pointing every edge at a local exchange; the keys are read from `key_env` /
/// `secret_env`. `exchange` and `risk` are extra lines of those sections, `tail` more sections after them.
pub struct BinanceConfig<'a> {
    pub key_env: &'a str,
    pub secret_env: &'a str,
    pub timeout_ms: u64,
    pub exchange: &'a str,
    pub risk: &'a str,
    pub tail: &'a str,
}

impl BinanceConfig<'_> {
    /// Writes `strategy` to `dir/strategy.toml` and returns the config text (state under `dir/state`).
    pub fn text(&self, ex: &RunningExchange, dir: &Path, strategy: &str) -> String {
        let strategy_path = dir.join("strategy.toml");
        std::fs::write(&strategy_path, strategy).expect("write strategy");
        format!(
            r#"
strategy = "{strategy}"
[exchange]
mode = "binance"
rest_url = "{rest}"
ws_url = "{user}"
api_key_env = "{key_env}"
api_secret_env = "{secret_env}"
timeout_ms = {timeout_ms}
{exchange}[feeds]
spot_ws_url = "{spot}"
futures_ws_url = "{fut}"
[storage]
state_dir = "{state}"
[risk]
{risk}{tail}"#,
            strategy = strategy_path.display(),
            rest = ex.rest_url(),
            user = ex.user_ws_url(),
            key_env = self.key_env,
            secret_env = self.secret_env,
            timeout_ms = self.timeout_ms,
            exchange = self.exchange,
            spot = ex.spot_ws_url(),
            fut = ex.futures_ws_url(),
            state = dir.join("state").display(),
            risk = self.risk,
            tail = self.tail,
        )
    }

    /// [`BinanceConfig::text`] written to `dir/<name>`; returns its path.
    pub fn write(&self, ex: &RunningExchange, dir: &Path, strategy: &str, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.text(ex, dir, strategy)).expect("write config");
        path
    }
}

/// Runs the real binary from the crate root with `args`, without the caller's `RUST_LOG`.
pub fn premia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run premia")
}

/// The stdout of a run that must have succeeded; fails showing both streams otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "premia failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `premia backtest <args> --json`, which must succeed; its summary.
pub fn backtest_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["backtest"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(ok(&premia(&all)).trim()).expect("one JSON object")
}
