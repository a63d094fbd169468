//! Run configuration (`config/*.toml`): read in two stages — TOML into a table, then every key checked by hand so
//! that all problems are reported at once, each with its file and key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::binance::routing::Routing;
use crate::model::{SymbolFilters, TsNs};
use crate::risk::RiskLimits;

/// The configuration shipped as `config/default.toml`, embedded so `premia run` works with no file at hand.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

/// One problem with a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.file, self.key, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

fn render_problems(problems: &[Problem]) -> String {
    let mut s = format!(
        "{} problem{} in the configuration:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
    }
    s
}

/// Where orders go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeMode {
    /// premia's own Binance-speaking exchange on 127.0.0.1, replaying a recording.
    Local,
    /// A real Binance endpoint (testnet or demo trading).
    Binance,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeConfig {
    pub mode: ExchangeMode,
    pub rest_url: String,
    /// Root of the user-data stream (`{ws_url}/private/ws/{listenKey}`; see `FeedsConfig::user_stream_routing`).
    pub ws_url: String,
    /// Names of the environment variables holding the key and secret (never the secrets themselves).
    pub api_key_env: String,
    pub api_secret_env: String,
    pub recv_window_ms: u64,
    pub timeout_ms: u64,
    pub leverage: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedsConfig {
    /// Spot market streams base (`{spot_ws_url}/stream?streams=…`); empty in local mode = the local exchange.
    pub spot_ws_url: String,
    pub futures_ws_url: String,
    /// Reconnect when a feed is silent this long.
    pub silence_timeout_ns: TsNs,
    /// USD-M market-stream routing (`futures_routing`: routed, legacy or auto).
    pub futures_routing: Routing,
    /// USD-M user-data stream routing (`user_stream_routing`), for `exchange.ws_url`.
    pub user_stream_routing: Routing,
    /// Warn once when a subscribed stream pushes nothing this long although its connection is up.
    pub stream_silence_ns: TsNs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    pub data: Vec<String>,
    pub speed: f64,
    pub listen: String,
    pub balance_usdt: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeesConfig {
    pub taker_rate: Decimal,
    pub maker_rate: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: String,
    pub json_file: Option<PathBuf>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from (a path, or "<embedded default>").
    pub source: String,
    pub strategy: PathBuf,
    pub exchange: ExchangeConfig,
    pub feeds: FeedsConfig,
    pub local: LocalConfig,
    pub state_dir: PathBuf,
    /// `storage.sync_intents`: fsync each order intent before its request is sent (strict). `false` (default): the
    /// intent is written to the store before the request and its fsync overlaps the request in flight.
    pub sync_intents: bool,
    pub fees: FeesConfig,
    pub filters: SymbolFilters,
    pub risk: RiskLimits,
    pub log: LogConfig,
}

impl Config {
    /// The engine settings this config gives (filters, risk limits, fee rates), with client order ids starting
    /// with `client_id_prefix`.
    pub fn engine_config(&self, client_id_prefix: &str) -> crate::engine::EngineConfig {
        crate::engine::EngineConfig {
            filters: self.filters.clone(),
            risk: self.risk.clone(),
            client_id_prefix: client_id_prefix.to_string(),
            taker_fee_rate: self.fees.taker_rate,
            maker_fee_rate: self.fees.maker_rate,
        }
    }

    /// Loads a config file; `None` means `config/default.toml`, or the embedded copy of it when that file is absent.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    file: p.display().to_string(),
                    source,
                })?;
                Config::parse(&text, &p.display().to_string())
            }
            None => {
                let p = Path::new(DEFAULT_CONFIG_PATH);
                if p.exists() {
                    Config::load(Some(p))
                } else {
                    Config::parse(DEFAULT_CONFIG, "<embedded default config>")
                }
            }
        }
    }

    /// Parses and validates config text; `file` is used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                file: file.to_string(),
                key: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            }])
        })?;
        let mut r = Reader {
            file,
            problems: Vec::new(),
        };
        let cfg = r.config(&table);
        if r.problems.is_empty() {
            Ok(Config {
                source: file.to_string(),
                ..cfg
            })
        } else {
            Err(ConfigError::Invalid(r.problems))
        }
    }
}

/// Walks a TOML table, collecting problems instead of stopping at the first.
struct Reader<'f> {
    file: &'f str,
    problems: Vec<Problem>,
}

const TOP_KEYS: &[&str] = &[
    "strategy", "exchange", "feeds", "local", "storage", "fees", "filters", "risk", "log",
];

impl Reader<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn unknown_keys(&mut self, table: &toml::Table, prefix: &str, known: &[&str]) {
        for k in table.keys() {
            if !known.contains(&k.as_str()) {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let hint = crate::strategy::suggest(k, known.iter().copied())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                self.problem(
                    &key,
                    format!("unknown key{hint}; known keys here: {}", known.join(", ")),
                );
            }
        }
    }

    fn section<'t>(
        &mut self,
        table: &'t toml::Table,
        name: &str,
        known: &[&str],
    ) -> Option<&'t toml::Table> {
        match table.get(name) {
            None => None,
            Some(toml::Value::Table(t)) => {
                self.unknown_keys(t, name, known);
                Some(t)
            }
            Some(_) => {
                self.problem(name, "must be a table (a [section])");
                None
            }
        }
    }

    fn string(&mut self, t: Option<&toml::Table>, sect: &str, key: &str, default: &str) -> String {
        match t.and_then(|t| t.get(key)) {
            None => default.to_string(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(v) => {
                self.problem(
                    &path(sect, key),
                    format!("must be a string, got {}", v.type_str()),
                );
                default.to_string()
            }
        }
    }

    /// A `[feeds]` routing key: "routed" (the default), "legacy" or "auto".
    fn routing(&mut self, t: Option<&toml::Table>, key: &str) -> Routing {
        let s = self.string(t, "feeds", key, "routed");
        match s.parse::<Routing>() {
            Ok(r) => r,
            Err(e) => {
                self.problem(&path("feeds", key), e.to_string());
                Routing::Routed
            }
        }
    }

    fn boolean(&mut self, t: Option<&toml::Table>, sect: &str, key: &str, default: bool) -> bool {
        match t.and_then(|t| t.get(key)) {
            None => default,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => {
                self.problem(
                    &path(sect, key),
                    format!("must be true or false, got {}", v.type_str()),
                );
                default
            }
        }
    }

    /// A decimal given as a string ("0.010") or a number (1000 or 0.5).
    fn decimal(
        &mut self,
        t: Option<&toml::Table>,
        sect: &str,
        key: &str,
        default: &str,
        min_exclusive_zero: bool,
    ) -> Decimal {
        let fallback = Decimal::from_str(default).unwrap_or_default();
        let parsed = match t.and_then(|t| t.get(key)) {
            None => return fallback,
            Some(toml::Value::String(s)) => {
                Decimal::from_str(s.trim()).map_err(|_| format!("`{s}` is not a number"))
            }
            Some(toml::Value::Integer(i)) => Ok(Decimal::from(*i)),
            Some(toml::Value::Float(f)) => {
                Decimal::from_str(&f.to_string()).map_err(|_| format!("{f} is not a finite number"))
            }
            Some(v) => Err(format!("must be a number, got {}", v.type_str())),
        };
        match parsed {
            Ok(d) if min_exclusive_zero && d <= Decimal::ZERO => {
                self.problem(&path(sect, key), format!("must be greater than 0, got {d}"));
                fallback
            }
            Ok(d) if d < Decimal::ZERO => {
                self.problem(&path(sect, key), format!("must not be negative, got {d}"));
                fallback
            }
            Ok(d) => d,
            Err(m) => {
                self.problem(&path(sect, key), m);
                fallback
            }
        }
    }

    fn integer(
        &mut self,
        t: Option<&toml::Table>,
        sect: &str,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        match t.and_then(|t| t.get(key)) {
            None => default,
            Some(toml::Value::Integer(i))
                if (*i as i128) >= min as i128 && (*i as i128) <= max as i128 =>
            {
                *i as u64
            }
            Some(toml::Value::Integer(i)) => {
                self.problem(
                    &path(sect, key),
                    format!("must be between {min} and {max}, got {i}"),
                );
                default
            }
            Some(v) => {
                self.problem(
                    &path(sect, key),
                    format!("must be a whole number, got {}", v.type_str()),
                );
                default
            }
        }
    }

    fn duration(
        &mut self,
        t: Option<&toml::Table>,
        sect: &str,
        key: &str,
        default_ns: TsNs,
    ) -> TsNs {
        match t.and_then(|t| t.get(key)) {
            None => default_ns,
            Some(toml::Value::String(s)) => {
                match parse_duration(s) {
                    Some(ns) if ns > 0 => ns,
                    _ => {
                        self.problem(&path(sect, key), format!("`{s}` is not a duration; write e.g. \"500ms\", \"5s\", \"2m\", \"1h\""));
                        default_ns
                    }
                }
            }
            Some(v) => {
                self.problem(
                    &path(sect, key),
                    format!(
                        "must be a duration string like \"5s\", got {}",
                        v.type_str()
                    ),
                );
                default_ns
            }
        }
    }

    fn url(
        &mut self,
        t: Option<&toml::Table>,
        sect: &str,
        key: &str,
        default: &str,
        schemes: &[&str],
    ) -> String {
        let s = self.string(t, sect, key, default);
        if !s.is_empty() && !schemes.iter().any(|sc| s.starts_with(&format!("{sc}://"))) {
            self.problem(
                &path(sect, key),
                format!(
                    "`{s}` must start with {}",
                    schemes
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            );
        }
        s.trim_end_matches('/').to_string()
    }

    fn config(&mut self, t: &toml::Table) -> Config {
        self.unknown_keys(t, "", TOP_KEYS);
        let strategy = match t.get("strategy") {
            Some(toml::Value::String(s)) if !s.is_empty() => PathBuf::from(s),
            Some(toml::Value::String(_)) | None => {
                self.problem("strategy", "missing: the path of the strategy file to trade, e.g. \"strategies/premium_divergence.toml\"");
                PathBuf::new()
            }
            Some(v) => {
                self.problem(
                    "strategy",
                    format!("must be a string (a path), got {}", v.type_str()),
                );
                PathBuf::new()
            }
        };

        let e = self.section(
            t,
            "exchange",
            &[
                "mode",
                "rest_url",
                "ws_url",
                "api_key_env",
                "api_secret_env",
                "recv_window_ms",
                "timeout_ms",
                "leverage",
            ],
        );
        let mode = match self.string(e, "exchange", "mode", "local").as_str() {
            "local" => ExchangeMode::Local,
            "binance" => ExchangeMode::Binance,
            other => {
                self.problem(
                    "exchange.mode",
                    format!("`{other}` is not a mode; use \"local\" or \"binance\""),
                );
                ExchangeMode::Local
            }
        };
        let rest_url = self.url(e, "exchange", "rest_url", "", &["http", "https"]);
        let ws_url = self.url(e, "exchange", "ws_url", "", &["ws", "wss"]);
        if mode == ExchangeMode::Binance {
            if rest_url.is_empty() {
                self.problem(
                    "exchange.rest_url",
                    "required when mode = \"binance\" (e.g. \"https://testnet.binancefuture.com\")",
                );
            }
            if ws_url.is_empty() {
                self.problem(
                    "exchange.ws_url",
                    "required when mode = \"binance\" (e.g. \"wss://fstream.binancefuture.com\")",
                );
            }
        }
        let exchange = ExchangeConfig {
            mode,
            rest_url,
            ws_url,
            api_key_env: self.string(e, "exchange", "api_key_env", "BINANCE_TESTNET_API_KEY"),
            api_secret_env: self.string(
                e,
                "exchange",
                "api_secret_env",
                "BINANCE_TESTNET_API_SECRET",
            ),
            recv_window_ms: self.integer(e, "exchange", "recv_window_ms", 5000, 1, 60_000),
            timeout_ms: self.integer(e, "exchange", "timeout_ms", 5000, 100, 120_000),
            leverage: self.integer(e, "exchange", "leverage", 3, 1, 125) as u32,
        };

        let f = self.section(
            t,
            "feeds",
            &[
                "spot_ws_url",
                "futures_ws_url",
                "silence_timeout",
                "futures_routing",
                "user_stream_routing",
                "stream_silence",
            ],
        );
        let feeds = FeedsConfig {
            spot_ws_url: self.url(f, "feeds", "spot_ws_url", "", &["ws", "wss"]),
            futures_ws_url: self.url(f, "feeds", "futures_ws_url", "", &["ws", "wss"]),
            silence_timeout_ns: self.duration(
                f,
                "feeds",
                "silence_timeout",
                30 * crate::model::NS_PER_S,
            ),
            futures_routing: self.routing(f, "futures_routing"),
            user_stream_routing: self.routing(f, "user_stream_routing"),
            stream_silence_ns: self.duration(
                f,
                "feeds",
                "stream_silence",
                60 * crate::model::NS_PER_S,
            ),
        };
        if mode == ExchangeMode::Binance
            && (feeds.spot_ws_url.is_empty() || feeds.futures_ws_url.is_empty())
        {
            self.problem(
                "feeds",
                "spot_ws_url and futures_ws_url are required when exchange.mode = \"binance\"",
            );
        }

        let l = self.section(t, "local", &["data", "speed", "listen", "balance_usdt"]);
        let data = match l.and_then(|l| l.get("data")) {
            None => Vec::new(),
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    toml::Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(v) => {
                self.problem(
                    "local.data",
                    format!("must be a list of recording paths, got {}", v.type_str()),
                );
                Vec::new()
            }
        };
        if mode == ExchangeMode::Local && data.is_empty() {
            self.problem("local.data", "required when exchange.mode = \"local\": recordings to replay, e.g. [\"data/btcusdt_20240808_spot.rec.gz\", \"data/btcusdt_20240808_usdm.rec.gz\"]");
        }
        let speed = match l.and_then(|l| l.get("speed")) {
            None => 10.0,
            Some(toml::Value::Integer(i)) if *i >= 0 => *i as f64,
            Some(toml::Value::Float(x)) if x.is_finite() && *x >= 0.0 => *x,
            Some(v) => {
                self.problem(
                    "local.speed",
                    format!("must be a number ≥ 0 (0 = as fast as possible), got {v}"),
                );
                10.0
            }
        };
        let local = LocalConfig {
            data,
            speed,
            listen: self.string(l, "local", "listen", "127.0.0.1:0"),
            balance_usdt: self.decimal(l, "local", "balance_usdt", "10000", true),
        };
        if local.listen.parse::<std::net::SocketAddr>().is_err() {
            self.problem(
                "local.listen",
                format!("`{}` is not an address like \"127.0.0.1:0\"", local.listen),
            );
        }

        let s = self.section(t, "storage", &["state_dir", "sync_intents"]);
        let state_dir = PathBuf::from(self.string(s, "storage", "state_dir", "state/run"));
        let sync_intents = self.boolean(s, "storage", "sync_intents", false);

        let fe = self.section(t, "fees", &["taker_rate", "maker_rate"]);
        let fees = FeesConfig {
            taker_rate: self.decimal(fe, "fees", "taker_rate", "0.0005", false),
            maker_rate: self.decimal(fe, "fees", "maker_rate", "0.0002", false),
        };
        for (k, v) in [
            ("fees.taker_rate", fees.taker_rate),
            ("fees.maker_rate", fees.maker_rate),
        ] {
            if v > Decimal::new(1, 2) {
                self.problem(
                    k,
                    format!("{v} is a fraction (0.0005 = 0.05 %); above 0.01 is surely a mistake"),
                );
            }
        }

        let fi = self.section(
            t,
            "filters",
            &[
                "tick_size",
                "step_size",
                "min_qty",
                "max_qty",
                "market_max_qty",
                "min_notional",
            ],
        );
        let d = SymbolFilters::default();
        let filters = SymbolFilters {
            tick_size: self.decimal(fi, "filters", "tick_size", &d.tick_size.to_string(), true),
            step_size: self.decimal(fi, "filters", "step_size", &d.step_size.to_string(), true),
            min_qty: self.decimal(fi, "filters", "min_qty", &d.min_qty.to_string(), false),
            max_qty: self.decimal(fi, "filters", "max_qty", &d.max_qty.to_string(), true),
            market_max_qty: Some(self.decimal(
                fi,
                "filters",
                "market_max_qty",
                &d.market_max_qty.unwrap_or(d.max_qty).to_string(),
                true,
            )),
            min_notional: self.decimal(
                fi,
                "filters",
                "min_notional",
                &d.min_notional.to_string(),
                false,
            ),
            min_price: d.min_price,
            max_price: d.max_price,
        };

        let rk = self.section(
            t,
            "risk",
            &[
                "max_order_notional_usdt",
                "max_position_notional_usdt",
                "max_orders_per_minute",
                "price_band_pct",
                "max_daily_loss_usdt",
                "max_feed_staleness",
                "min_notional_usdt",
            ],
        );
        let dr = RiskLimits::default();
        let risk = RiskLimits {
            max_order_notional: self.decimal(
                rk,
                "risk",
                "max_order_notional_usdt",
                &dr.max_order_notional.to_string(),
                true,
            ),
            max_position_notional: self.decimal(
                rk,
                "risk",
                "max_position_notional_usdt",
                &dr.max_position_notional.to_string(),
                true,
            ),
            max_orders_per_minute: self.integer(
                rk,
                "risk",
                "max_orders_per_minute",
                dr.max_orders_per_minute as u64,
                1,
                1200,
            ) as u32,
            price_band_pct: self.decimal(
                rk,
                "risk",
                "price_band_pct",
                &dr.price_band_pct.to_string(),
                true,
            ),
            max_daily_loss: self.decimal(
                rk,
                "risk",
                "max_daily_loss_usdt",
                &dr.max_daily_loss.to_string(),
                true,
            ),
            max_feed_staleness_ns: self.duration(
                rk,
                "risk",
                "max_feed_staleness",
                dr.max_feed_staleness_ns,
            ),
            min_notional: self.decimal(
                rk,
                "risk",
                "min_notional_usdt",
                &dr.min_notional.to_string(),
                false,
            ),
        };
        if risk.max_order_notional > risk.max_position_notional {
            self.problem(
                "risk.max_order_notional_usdt",
                format!(
                    "{} is above risk.max_position_notional_usdt ({})",
                    risk.max_order_notional, risk.max_position_notional
                ),
            );
        }

        let lg = self.section(t, "log", &["level", "json_file"]);
        let level = self.string(lg, "log", "level", "info");
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            self.problem("log.level", format!("`{level}` is not a level or filter (try \"info\", \"debug\", \"premia=debug\")"));
        }
        let json_file = Some(self.string(lg, "log", "json_file", ""))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);

        Config {
            source: String::new(),
            strategy,
            exchange,
            feeds,
            local,
            state_dir,
            sync_intents,
            fees,
            filters,
            risk,
            log: LogConfig { level, json_file },
        }
    }
}

fn path(sect: &str, key: &str) -> String {
    format!("{sect}.{key}")
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1d` into nanoseconds (the strategy language's duration syntax).
pub fn parse_duration(s: &str) -> Option<TsNs> {
    crate::strategy::parse_duration(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NS_PER_MS;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::parse(DEFAULT_CONFIG, "default").unwrap();
        assert_eq!(c.exchange.mode, ExchangeMode::Local);
        assert!(!c.local.data.is_empty());
    }

    #[test]
    fn every_problem_reported_at_once() {
        let text = r#"
strategy = "s.toml"
[exchange]
mode = "paper"
recv_window_ms = -5
[risk]
max_daily_los_usdt = 100
max_feed_staleness = "5 parsecs"
[fees]
taker_rate = "abc"
"#;
        let Err(ConfigError::Invalid(p)) = Config::parse(text, "bad.toml") else {
            panic!("expected problems")
        };
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"exchange.mode"), "{keys:?}");
        assert!(keys.contains(&"exchange.recv_window_ms"));
        assert!(keys.contains(&"risk.max_daily_los_usdt"));
        assert!(keys.contains(&"risk.max_feed_staleness"));
        assert!(keys.contains(&"fees.taker_rate"));
        let msg = ConfigError::Invalid(p).to_string();
        assert!(msg.contains("bad.toml: `risk.max_daily_los_usdt`: unknown key (did you mean `max_daily_loss_usdt`?)"), "{msg}");
    }

    #[test]
    fn sync_intents() {
        let c = Config::parse(DEFAULT_CONFIG, "default").unwrap();
        assert!(!c.sync_intents);
        let c = Config::parse(
            "strategy = \"s.toml\"\n[local]\ndata = [\"x\"]\n[storage]\nsync_intents = true\n",
            "t.toml",
        )
        .unwrap();
        assert!(c.sync_intents);
        let text = "strategy = \"s.toml\"\n[local]\ndata = [\"x\"]\n[storage]\nsync_intents = \"yes\"\nsync_intent = true\n";
        let Err(e) = Config::parse(text, "bad.toml") else {
            panic!("expected problems")
        };
        let msg = e.to_string();
        assert!(
            msg.contains("bad.toml: `storage.sync_intents`: must be true or false, got string"),
            "{msg}"
        );
        assert!(
            msg.contains("`storage.sync_intent`: unknown key (did you mean `sync_intents`?)"),
            "{msg}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500 * NS_PER_MS));
        assert_eq!(parse_duration("1.5s"), Some(1_500 * NS_PER_MS));
        assert_eq!(parse_duration("2m"), Some(120 * crate::model::NS_PER_S));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
