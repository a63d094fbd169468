//! Run configuration (`config/*.toml`): one table of keys ([`KEYS`]: name, kind, default, unit, doc) drives loading
//! and the README's key table. Loading has two stages — TOML into a table, then every key checked against [`KEYS`] so
//! that all problems are reported at once, each with its file and key (and a "did you mean" for unknown keys).

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
    /// Base of the user-data stream (`{ws_url}/ws/{listenKey}`).
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

/// What a config key holds: its TOML type and the checks its value gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any string.
    Text,
    /// A non-empty path.
    Path,
    /// A path, or empty for none.
    OptionalPath,
    /// A list of paths (one string counts as a list of one).
    Paths,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A URL with one of these schemes, or empty.
    Url(&'static [&'static str]),
    Bool,
    /// A whole number in `min..=max`.
    Int {
        min: u64,
        max: u64,
    },
    /// An exact decimal, written as a string ("0.10") or a number; `positive`: > 0, else ≥ 0.
    Decimal {
        positive: bool,
    },
    /// A fee rate: a decimal fraction in 0..=0.01.
    Fraction,
    /// A number ≥ 0 (floats are fine here: a replay speed, not money).
    Float,
    /// A duration such as "500ms", "5s", "2m" (> 0).
    Duration,
    /// A socket address such as "127.0.0.1:0".
    Addr,
    /// A tracing filter such as "info" or "premia=debug".
    LogFilter,
}

/// One config key: where it lives, what it holds, its default, and what it means (the README table's row).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// `""` for a top-level key, else the `[section]`.
    pub section: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// The default as written in a config file (without quotes); `None`: required; `Some("")`: empty / none.
    pub default: Option<&'static str>,
    pub unit: &'static str,
    pub doc: &'static str,
}

impl Key {
    /// `section.name`, as problems name it.
    pub fn path(&self) -> String {
        if self.section.is_empty() {
            self.name.to_string()
        } else {
            format!("{}.{}", self.section, self.name)
        }
    }
}

const fn key(
    section: &'static str,
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    unit: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        section,
        name,
        kind,
        default,
        unit,
        doc,
    }
}

const HTTP: Kind = Kind::Url(&["http", "https"]);
const WS: Kind = Kind::Url(&["ws", "wss"]);
const POSITIVE: Kind = Kind::Decimal { positive: true };
const NON_NEGATIVE: Kind = Kind::Decimal { positive: false };

/// Every config key, in README order: the one place that knows names, types, ranges, defaults and meanings. Loading
/// checks files against it (unknown keys, types, ranges, defaults) and the README's key table is rendered from it.
///
/// To add a key: add one row here (section, name, kind, default, unit, doc), read it where `Reader::config` assembles
/// the `Config` (`v.text("feeds.routing")`, `v.ns(…)`, `v.dec(…)`, …), and paste the table that the failing test
/// `config::tests::readme_table_matches_keys` prints into README.md ("Configuration"). Checks that involve several
/// keys live in `Reader::cross_checks`.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key("", "strategy", Kind::Path, None, "", "strategy file to trade, e.g. \"strategies/premium_divergence.toml\""),
    key("exchange", "mode", Kind::Choice(&["local", "binance"]), Some("local"), "", "premia's local exchange on 127.0.0.1, or a real Binance endpoint (testnet, demo trading)"),
    key("exchange", "rest_url", HTTP, Some(""), "", "REST base; required when mode = \"binance\""),
    key("exchange", "ws_url", WS, Some(""), "", "user-data stream root (`{ws_url}/private/ws/{listenKey}`, or `/ws/{listenKey}` with `feeds.user_stream_routing = \"legacy\"`); required when mode = \"binance\""),
    key("exchange", "api_key_env", Kind::Text, Some("BINANCE_TESTNET_API_KEY"), "env var name", "environment variable holding the API key (never put keys in files)"),
    key("exchange", "api_secret_env", Kind::Text, Some("BINANCE_TESTNET_API_SECRET"), "env var name", "environment variable holding the API secret"),
    key("exchange", "recv_window_ms", Kind::Int { min: 1, max: 60_000 }, Some("5000"), "ms", "how long a signed request stays valid"),
    key("exchange", "timeout_ms", Kind::Int { min: 100, max: 120_000 }, Some("5000"), "ms", "request timeout; a timed-out order is UNKNOWN until resolved by client order id"),
    key("exchange", "leverage", Kind::Int { min: 1, max: 125 }, Some("3"), "×", "leverage set at start"),
    key("feeds", "spot_ws_url", WS, Some(""), "", "spot market-data stream base (the signal; may be mainnet while orders go to testnet); required when mode = \"binance\", empty in local mode"),
    key("feeds", "futures_ws_url", WS, Some(""), "", "USD-M market-data stream base; required when mode = \"binance\", empty in local mode"),
    key("feeds", "silence_timeout", Kind::Duration, Some("30s"), "", "reconnect a feed that sent nothing for this long"),
    key("feeds", "futures_routing", Kind::Choice(&["routed", "legacy", "auto"]), Some("routed"), "", "USD-M market streams: `routed` = Binance's 2026 entry points (`/public` for book data, `/market` for the rest, one connection each); `legacy` = one unrouted `/stream?streams=…` connection (pre-2026 servers); `auto` = routed, falling back to legacy when a routed handshake is refused"),
    key("feeds", "user_stream_routing", Kind::Choice(&["routed", "legacy", "auto"]), Some("routed"), "", "user-data stream under `exchange.ws_url`: `routed` = `/private/ws/<listenKey>`, `legacy` = `/ws/<listenKey>`, `auto` = routed with fallback to legacy"),
    key("feeds", "stream_silence", Kind::Duration, Some("60s"), "", "warn once (log, status, summary) when a subscribed stream pushes nothing this long although its connection is up"),
    key("local", "data", Kind::Paths, Some(""), "", "recordings the local exchange replays; required when mode = \"local\""),
    key("local", "speed", Kind::Float, Some("10"), "×", "replay speed: 1 = real time, 0 = as fast as possible"),
    key("local", "listen", Kind::Addr, Some("127.0.0.1:0"), "", "where the local exchange listens (port 0 = any free port)"),
    key("local", "balance_usdt", POSITIVE, Some("10000"), "USDT", "the local exchange's starting wallet balance"),
    key("storage", "state_dir", Kind::Path, Some("state/run"), "", "sled state of a live run (local mode: a fresh folder under it per run)"),
    key("storage", "sync_intents", Kind::Bool, Some("false"), "", "`true`: fsync each order intent before its request is sent; `false`: the intent is written before the send and its fsync overlaps the request in flight (see *Latency*)"),
    key("fees", "taker_rate", Kind::Fraction, Some("0.0005"), "fraction", "simulated taker fee (0.0005 = 0.05 %; backtest, local exchange)"),
    key("fees", "maker_rate", Kind::Fraction, Some("0.0002"), "fraction", "simulated maker fee"),
    key("filters", "tick_size", POSITIVE, Some("0.10"), "price", "price step (backtest and local exchange; live runs read exchangeInfo)"),
    key("filters", "step_size", POSITIVE, Some("0.001"), "qty", "quantity step"),
    key("filters", "min_qty", NON_NEGATIVE, Some("0.001"), "qty", "smallest order quantity"),
    key("filters", "max_qty", POSITIVE, Some("1000"), "qty", "largest limit order quantity"),
    key("filters", "market_max_qty", POSITIVE, Some("120"), "qty", "largest market order quantity"),
    key("filters", "min_notional", NON_NEGATIVE, Some("100"), "USDT", "smallest order notional the exchange accepts"),
    key("risk", "max_order_notional_usdt", POSITIVE, Some("5000"), "USDT", "one order's notional (at most max_position_notional_usdt)"),
    key("risk", "max_position_notional_usdt", POSITIVE, Some("5000"), "USDT", "the position's notional after the order"),
    key("risk", "max_orders_per_minute", Kind::Int { min: 1, max: 1200 }, Some("10"), "count", "orders in a rolling 60 s"),
    key("risk", "price_band_pct", POSITIVE, Some("1"), "%", "the execution price must lie within this of the last perp mid"),
    key("risk", "max_daily_loss_usdt", POSITIVE, Some("250"), "USDT", "realised + unrealised since 00:00 UTC; trips ACTIVE → REDUCING (exits only) → HALTED (when flat); resets at 00:00 UTC"),
    key("risk", "max_feed_staleness", Kind::Duration, Some("5s"), "", "no entries while either market's last quote is older"),
    key("risk", "min_notional_usdt", NON_NEGATIVE, Some("100"), "USDT", "smallest order premia sends"),
    key("log", "level", Kind::LogFilter, Some("info"), "", "stderr log filter (`info`, `debug`, `premia=debug,info`, …)"),
    key("log", "json_file", Kind::OptionalPath, Some(""), "", "also write JSON log lines to this file (empty: none)"),
];

/// The key named `section.name` (or a top-level `name`).
pub fn key_named(path: &str) -> Option<(usize, &'static Key)> {
    let (section, name) = path.split_once('.').unwrap_or(("", path));
    KEYS.iter()
        .enumerate()
        .find(|(_, k)| k.section == section && k.name == name)
}

/// The sections, in table order (`""` first: the top level).
fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = vec![""];
    for k in KEYS {
        if !out.contains(&k.section) {
            out.push(k.section);
        }
    }
    out
}

/// The names allowed directly in `section` (at the top level: top-level keys and section names).
fn known_in(section: &str) -> Vec<&'static str> {
    let mut known: Vec<&'static str> = KEYS
        .iter()
        .filter(|k| k.section == section)
        .map(|k| k.name)
        .collect();
    if section.is_empty() {
        known.extend(sections().into_iter().filter(|s| !s.is_empty()));
    }
    known
}

/// A checked value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Text(String),
    List(Vec<String>),
    Bool(bool),
    Int(u64),
    Dec(Decimal),
    Float(f64),
    Ns(TsNs),
}

/// Checks one value against its kind: the value, or what is wrong with it.
fn check(kind: Kind, v: &toml::Value) -> Result<Val, String> {
    match kind {
        Kind::Text => Ok(Val::Text(string(v)?.to_string())),
        Kind::Path | Kind::OptionalPath => {
            let s = string(v)?;
            if s.trim().is_empty() && kind == Kind::Path {
                return Err("must not be empty: give a path".to_string());
            }
            Ok(Val::Text(s.to_string()))
        }
        Kind::Paths => paths(v).map(Val::List),
        Kind::Choice(words) => {
            let s = string(v)?;
            if words.contains(&s) {
                Ok(Val::Text(s.to_string()))
            } else {
                Err(format!(
                    "`{s}` is not allowed; use {}",
                    quoted(words, " or ")
                ))
            }
        }
        Kind::Url(schemes) => url(v, schemes).map(Val::Text),
        Kind::Bool => v
            .as_bool()
            .map(Val::Bool)
            .ok_or_else(|| format!("must be true or false, got {}", v.type_str())),
        Kind::Int { min, max } => integer(v, min, max).map(Val::Int),
        Kind::Decimal { positive } => decimal(v, positive).map(Val::Dec),
        Kind::Fraction => fraction(v).map(Val::Dec),
        Kind::Float => match v {
            toml::Value::Integer(i) if *i >= 0 => Ok(Val::Float(*i as f64)),
            toml::Value::Float(x) if x.is_finite() && *x >= 0.0 => Ok(Val::Float(*x)),
            _ => Err(format!("must be a number ≥ 0, got {v}")),
        },
        Kind::Duration => duration(v).map(Val::Ns),
        Kind::Addr => {
            let s = string(v)?;
            s.parse::<std::net::SocketAddr>()
                .map(|_| Val::Text(s.to_string()))
                .map_err(|_| format!("`{s}` is not an address like \"127.0.0.1:0\""))
        }
        Kind::LogFilter => {
            let s = string(v)?;
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| Val::Text(s.to_string()))
                .map_err(|_| {
                    format!("`{s}` is not a level or filter (try \"info\", \"debug\", \"premia=debug\")")
                })
        }
    }
}

fn quoted(words: &[&str], sep: &str) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(sep)
}

fn string(v: &toml::Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("must be a string, got {}", v.type_str()))
}

fn paths(v: &toml::Value) -> Result<Vec<String>, String> {
    match v {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "must be a list of paths; item {} is a {}",
                    i + 1,
                    other.type_str()
                )),
            })
            .collect(),
        other => Err(format!("must be a list of paths, got {}", other.type_str())),
    }
}

fn url(v: &toml::Value, schemes: &[&str]) -> Result<String, String> {
    let s = string(v)?;
    if !s.is_empty() && !schemes.iter().any(|sc| s.starts_with(&format!("{sc}://"))) {
        let starts: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(format!("`{s}` must start with {}", starts.join(" or ")));
    }
    Ok(s.trim_end_matches('/').to_string())
}

fn integer(v: &toml::Value, min: u64, max: u64) -> Result<u64, String> {
    match v {
        toml::Value::Integer(i) if (*i as i128) >= min as i128 && (*i as i128) <= max as i128 => {
            Ok(*i as u64)
        }
        toml::Value::Integer(i) => Err(format!("must be between {min} and {max}, got {i}")),
        other => Err(format!("must be a whole number, got {}", other.type_str())),
    }
}

fn decimal(v: &toml::Value, positive: bool) -> Result<Decimal, String> {
    let d = match v {
        toml::Value::String(s) => {
            Decimal::from_str(s.trim()).map_err(|_| format!("`{s}` is not a number"))?
        }
        toml::Value::Integer(i) => Decimal::from(*i),
        toml::Value::Float(f) => {
            Decimal::from_str(&f.to_string()).map_err(|_| format!("{f} is not a finite number"))?
        }
        other => return Err(format!("must be a number, got {}", other.type_str())),
    };
    if positive && d <= Decimal::ZERO {
        Err(format!("must be greater than 0, got {d}"))
    } else if d < Decimal::ZERO {
        Err(format!("must not be negative, got {d}"))
    } else {
        Ok(d)
    }
}

fn fraction(v: &toml::Value) -> Result<Decimal, String> {
    let d = decimal(v, false)?;
    if d > Decimal::new(1, 2) {
        return Err(format!(
            "{d} is a fraction (0.0005 = 0.05 %); above 0.01 is surely a mistake"
        ));
    }
    Ok(d)
}

fn duration(v: &toml::Value) -> Result<TsNs, String> {
    match v {
        toml::Value::String(s) => match parse_duration(s) {
            Some(ns) if ns > 0 => Ok(ns),
            _ => Err(format!(
                "`{s}` is not a duration; write e.g. \"500ms\", \"5s\", \"2m\", \"1h\""
            )),
        },
        other => Err(format!(
            "must be a duration string like \"5s\", got {}",
            other.type_str()
        )),
    }
}

/// A key's default as the TOML value a file would hold.
fn default_value(k: &Key) -> Option<toml::Value> {
    let d = k.default?;
    Some(match k.kind {
        Kind::Bool => toml::Value::Boolean(d.parse().ok()?),
        Kind::Int { .. } => toml::Value::Integer(d.parse().ok()?),
        Kind::Float => toml::Value::Float(d.parse().ok()?),
        Kind::Paths if d.is_empty() => toml::Value::Array(Vec::new()),
        _ => toml::Value::String(d.to_string()),
    })
}

/// A key's default, checked like a value from a file (a required key's stand-in is an empty value).
fn default_val(k: &Key) -> Val {
    default_value(k)
        .and_then(|v| check(k.kind, &v).ok())
        .unwrap_or_else(|| match k.kind {
            Kind::Paths => Val::List(Vec::new()),
            Kind::Bool => Val::Bool(false),
            Kind::Int { min, .. } => Val::Int(min),
            Kind::Decimal { .. } | Kind::Fraction => Val::Dec(Decimal::ZERO),
            Kind::Float => Val::Float(0.0),
            Kind::Duration => Val::Ns(0),
            _ => Val::Text(String::new()),
        })
}

/// Every key's value: from the file where it was given and valid, else the table's default.
struct Values(Vec<Val>);

impl Values {
    fn get(&self, path: &str) -> Option<&Val> {
        let found = key_named(path).and_then(|(i, _)| self.0.get(i));
        debug_assert!(found.is_some(), "`{path}` is not in config::KEYS");
        found
    }
    fn text(&self, path: &str) -> String {
        match self.get(path) {
            Some(Val::Text(s)) => s.clone(),
            _ => String::new(),
        }
    }
    fn list(&self, path: &str) -> Vec<String> {
        match self.get(path) {
            Some(Val::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }
    fn boolean(&self, path: &str) -> bool {
        matches!(self.get(path), Some(Val::Bool(true)))
    }
    fn int(&self, path: &str) -> u64 {
        match self.get(path) {
            Some(Val::Int(i)) => *i,
            _ => 0,
        }
    }
    fn dec(&self, path: &str) -> Decimal {
        match self.get(path) {
            Some(Val::Dec(d)) => *d,
            _ => Decimal::ZERO,
        }
    }
    fn float(&self, path: &str) -> f64 {
        match self.get(path) {
            Some(Val::Float(x)) => *x,
            _ => 0.0,
        }
    }
    fn ns(&self, path: &str) -> TsNs {
        match self.get(path) {
            Some(Val::Ns(ns)) => *ns,
            _ => 0,
        }
    }
    /// A routing choice (the table's `Choice` already rejected anything else).
    fn routing(&self, path: &str) -> Routing {
        self.text(path).parse().unwrap_or(Routing::Routed)
    }
}

/// Walks a TOML table, collecting problems instead of stopping at the first.
struct Reader<'f> {
    file: &'f str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn unknown_keys(&mut self, table: &toml::Table, section: &str) {
        let known = known_in(section);
        for k in table.keys() {
            if known.contains(&k.as_str()) {
                continue;
            }
            let key = if section.is_empty() {
                k.clone()
            } else {
                format!("{section}.{k}")
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

    /// The `[section]` table (the root for `""`), reporting unknown keys in it; `None` when absent or not a table.
    fn section<'t>(&mut self, root: &'t toml::Table, section: &str) -> Option<&'t toml::Table> {
        let table = if section.is_empty() {
            root
        } else {
            match root.get(section) {
                None => return None,
                Some(toml::Value::Table(t)) => t,
                Some(_) => {
                    self.problem(section, "must be a table (a [section])");
                    return None;
                }
            }
        };
        self.unknown_keys(table, section);
        Some(table)
    }

    /// Stage two: every key of the table checked, every problem collected; defaults where a key is absent.
    fn values(&mut self, root: &toml::Table) -> Values {
        let mut values = Values(KEYS.iter().map(default_val).collect());
        for section in sections() {
            let table = self.section(root, section);
            for (i, k) in KEYS
                .iter()
                .enumerate()
                .filter(|(_, k)| k.section == section)
            {
                match table.and_then(|t| t.get(k.name)) {
                    Some(v) => match check(k.kind, v) {
                        Ok(val) => values.0[i] = val,
                        Err(m) => self.problem(&k.path(), m),
                    },
                    None if k.default.is_none() => {
                        self.problem(&k.path(), format!("missing: the {}", k.doc))
                    }
                    None => {}
                }
            }
        }
        values
    }

    fn config(&mut self, root: &toml::Table) -> Config {
        let v = self.values(root);
        let mode = match v.text("exchange.mode").as_str() {
            "binance" => ExchangeMode::Binance,
            _ => ExchangeMode::Local,
        };
        let d = SymbolFilters::default();
        let cfg = Config {
            source: String::new(),
            strategy: PathBuf::from(v.text("strategy")),
            exchange: ExchangeConfig {
                mode,
                rest_url: v.text("exchange.rest_url"),
                ws_url: v.text("exchange.ws_url"),
                api_key_env: v.text("exchange.api_key_env"),
                api_secret_env: v.text("exchange.api_secret_env"),
                recv_window_ms: v.int("exchange.recv_window_ms"),
                timeout_ms: v.int("exchange.timeout_ms"),
                leverage: v.int("exchange.leverage") as u32,
            },
            feeds: FeedsConfig {
                spot_ws_url: v.text("feeds.spot_ws_url"),
                futures_ws_url: v.text("feeds.futures_ws_url"),
                silence_timeout_ns: v.ns("feeds.silence_timeout"),
                futures_routing: v.routing("feeds.futures_routing"),
                user_stream_routing: v.routing("feeds.user_stream_routing"),
                stream_silence_ns: v.ns("feeds.stream_silence"),
            },
            local: LocalConfig {
                data: v.list("local.data"),
                speed: v.float("local.speed"),
                listen: v.text("local.listen"),
                balance_usdt: v.dec("local.balance_usdt"),
            },
            state_dir: PathBuf::from(v.text("storage.state_dir")),
            sync_intents: v.boolean("storage.sync_intents"),
            fees: FeesConfig {
                taker_rate: v.dec("fees.taker_rate"),
                maker_rate: v.dec("fees.maker_rate"),
            },
            filters: SymbolFilters {
                tick_size: v.dec("filters.tick_size"),
                step_size: v.dec("filters.step_size"),
                min_qty: v.dec("filters.min_qty"),
                max_qty: v.dec("filters.max_qty"),
                market_max_qty: Some(v.dec("filters.market_max_qty")),
                min_notional: v.dec("filters.min_notional"),
                min_price: d.min_price,
                max_price: d.max_price,
            },
            risk: RiskLimits {
                max_order_notional: v.dec("risk.max_order_notional_usdt"),
                max_position_notional: v.dec("risk.max_position_notional_usdt"),
                max_orders_per_minute: v.int("risk.max_orders_per_minute") as u32,
                price_band_pct: v.dec("risk.price_band_pct"),
                max_daily_loss: v.dec("risk.max_daily_loss_usdt"),
                max_feed_staleness_ns: v.ns("risk.max_feed_staleness"),
                min_notional: v.dec("risk.min_notional_usdt"),
            },
            log: LogConfig {
                level: v.text("log.level"),
                json_file: Some(v.text("log.json_file"))
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from),
            },
        };
        self.cross_checks(&cfg);
        cfg
    }

    /// Rules that involve more than one key.
    fn cross_checks(&mut self, c: &Config) {
        if c.exchange.mode == ExchangeMode::Binance {
            if c.exchange.rest_url.is_empty() {
                self.problem(
                    "exchange.rest_url",
                    "required when mode = \"binance\" (e.g. \"https://testnet.binancefuture.com\")",
                );
            }
            if c.exchange.ws_url.is_empty() {
                self.problem(
                    "exchange.ws_url",
                    "required when mode = \"binance\" (e.g. \"wss://fstream.binancefuture.com\")",
                );
            }
            if c.feeds.spot_ws_url.is_empty() || c.feeds.futures_ws_url.is_empty() {
                self.problem(
                    "feeds",
                    "spot_ws_url and futures_ws_url are required when exchange.mode = \"binance\"",
                );
            }
        }
        if c.exchange.mode == ExchangeMode::Local && c.local.data.is_empty() {
            self.problem("local.data", "required when exchange.mode = \"local\": recordings to replay, e.g. [\"data/btcusdt_20240808_spot.rec.gz\", \"data/btcusdt_20240808_usdm.rec.gz\"]");
        }
        if c.risk.max_order_notional > c.risk.max_position_notional {
            self.problem(
                "risk.max_order_notional_usdt",
                format!(
                    "{} is above risk.max_position_notional_usdt ({})",
                    c.risk.max_order_notional, c.risk.max_position_notional
                ),
            );
        }
    }
}

/// The README's table of config keys, rendered from [`KEYS`].
pub fn keys_markdown() -> String {
    let mut s = String::from("| key | type | default | unit | meaning |\n|---|---|---|---|---|\n");
    for k in KEYS {
        let name = if k.section.is_empty() {
            format!("`{}`", k.name)
        } else {
            format!("`[{}] {}`", k.section, k.name)
        };
        let default = match k.default {
            None => "required".to_string(),
            Some("") => "empty".to_string(),
            Some(d) => format!("`{d}`"),
        };
        let unit = if k.unit.is_empty() { "" } else { k.unit };
        let row = [
            name,
            kind_text(k.kind),
            default,
            unit.to_string(),
            k.doc.to_string(),
        ];
        s.push_str("| ");
        s.push_str(&row.map(|c| c.replace('|', "\\|")).join(" | "));
        s.push_str(" |\n");
    }
    s
}

fn kind_text(kind: Kind) -> String {
    match kind {
        Kind::Text => "string".into(),
        Kind::Path => "path".into(),
        Kind::OptionalPath => "path or empty".into(),
        Kind::Paths => "list of paths".into(),
        Kind::Choice(words) => words
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(" or "),
        Kind::Url(schemes) => format!(
            "URL ({})",
            schemes
                .iter()
                .map(|s| format!("`{s}://`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::Bool => "bool".into(),
        Kind::Int { min, max } => format!("integer {min}–{max}"),
        Kind::Decimal { positive: true } => "decimal > 0".into(),
        Kind::Decimal { positive: false } => "decimal ≥ 0".into(),
        Kind::Fraction => "decimal 0–0.01".into(),
        Kind::Float => "number ≥ 0".into(),
        Kind::Duration => "duration (`500ms`, `5s`, `2m`, `1h`)".into(),
        Kind::Addr => "address".into(),
        Kind::LogFilter => "log filter".into(),
    }
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

    /// The README's key table is rendered from `KEYS`; this fails (printing the table to paste) when they differ.
    #[test]
    fn readme_table_matches_keys() {
        let readme = include_str!("../README.md");
        let (begin, end) = ("<!-- config-keys:begin -->\n", "<!-- config-keys:end -->");
        let table = keys_markdown();
        let found = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(t, _)| t);
        assert_eq!(
            found,
            Some(table.as_str()),
            "README.md's key table (between {begin:?} and {end:?}) must be exactly:\n{table}"
        );
    }

    #[test]
    fn every_default_passes_its_own_check() {
        for k in KEYS {
            if let Some(d) = k.default {
                let v = default_value(k).unwrap_or_else(|| panic!("{}: default {d:?}", k.path()));
                assert!(check(k.kind, &v).is_ok(), "{}: default {d:?}", k.path());
            }
            assert_eq!(key_named(&k.path()).map(|(_, f)| f.path()), Some(k.path()));
        }
    }

    /// The engine-side defaults (`RiskLimits`, `SymbolFilters`) and the table agree.
    #[test]
    fn table_defaults_are_the_domain_defaults() {
        let c =
            Config::parse("strategy = \"s.toml\"\n[local]\ndata = [\"x\"]\n", "t.toml").unwrap();
        assert_eq!(c.risk, RiskLimits::default());
        assert_eq!(c.filters, SymbolFilters::default());
        assert_eq!(c.state_dir, PathBuf::from("state/run"));
        assert_eq!(c.exchange.recv_window_ms, 5000);
        assert_eq!(c.feeds.silence_timeout_ns, 30 * crate::model::NS_PER_S);
    }

    /// `config/default.toml` may spell out a default, but only with the table's value (so the two cannot drift);
    /// keys whose default is empty (recordings, URLs) are what it fills in.
    #[test]
    fn default_toml_repeats_only_table_defaults() {
        let root: toml::Table = toml::from_str(DEFAULT_CONFIG).unwrap();
        for k in KEYS {
            let Some(d) = k.default.filter(|d| !d.is_empty()) else {
                continue;
            };
            let table = if k.section.is_empty() {
                Some(&root)
            } else {
                root.get(k.section).and_then(|t| t.as_table())
            };
            if let Some(v) = table.and_then(|t| t.get(k.name)) {
                let want = check(k.kind, &default_value(k).unwrap());
                assert_eq!(
                    check(k.kind, v),
                    want,
                    "config/default.toml `{}` vs table default {d:?}",
                    k.path()
                );
            }
        }
    }

    #[test]
    fn problems_name_the_key_for_every_kind() {
        let text = "strategy = 5\n[exchange]\nmode = \"local\"\nrest_url = \"ftp://x\"\nleverage = 500\n\
            [local]\ndata = [\"a\", 3]\nspeed = -1\nlisten = \"nowhere\"\n[fees]\ntaker_rate = 0.5\n\
            [log]\nlevel = \"[[\"\nfeeds = 1\n";
        let Err(ConfigError::Invalid(p)) = Config::parse(text, "k.toml") else {
            panic!("expected problems")
        };
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "strategy",
            "exchange.rest_url",
            "exchange.leverage",
            "local.data",
            "local.speed",
            "local.listen",
            "fees.taker_rate",
            "log.level",
            "log.feeds",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(p
            .iter()
            .all(|p| p.file == "k.toml" && !p.message.is_empty()));
        let Err(e) = Config::parse(
            "exchange = 3\nstrategy = \"s\"\n[local]\ndata = \"x\"\n",
            "t.toml",
        ) else {
            panic!("a section that is not a table")
        };
        assert!(e.to_string().contains("`exchange`: must be a table"), "{e}");
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
