//! The `premia` command line: parses arguments, sets up logging, loads configs, and calls into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use premia::config::Config;

#[derive(Parser)]
#[command(name = "premia", version, about = "Paper-trade Binance USD-M futures on the spot premium", long_about = None)]
struct Cli {
    /// Log filter for stderr (overrides the config's log.level and RUST_LOG), e.g. "debug" or "premia=trace".
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    /// Also write logs as JSON lines to this file.
    #[arg(long, global = true, value_name = "FILE")]
    log_json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Backtest a strategy on recorded market data.
    Backtest(BacktestArgs),
    /// Validate a config and the strategy it names; reports every problem at once.
    Check(CheckArgs),
    /// Summarise a state dir (a backtest or a live run): positions, trades, PnL.
    Report(ReportArgs),
    /// Trade live: against the local exchange (the default config: bundled recording, no keys, no network) or a
    /// Binance endpoint (config/testnet.toml, config/demo.toml).
    Run(RunArgs),
    /// Record both markets' raw websocket frames to files that `backtest` and `exchange` replay.
    Record(RecordArgs),
    /// Run the local Binance-speaking exchange on its own, replaying a recording.
    Exchange(ExchangeArgs),
    /// Write a synthetic quote CSV (ts_ns,market,bid,ask,bid_qty,ask_qty) for benchmarks.
    GenTicks(GenTicksArgs),
}

#[derive(Args)]
struct BacktestArgs {
    /// Market data: a recording (`<ts> <frame>` lines), a quote CSV, or `spot:PATH` / `perp:PATH` Binance public
    /// CSVs; plain or .gz. Repeat for several files; they are merged by timestamp.
    #[arg(long, required = true, value_name = "PATH")]
    data: Vec<String>,
    /// Strategy file (default: the config's `strategy`).
    #[arg(long, value_name = "FILE")]
    strategy: Option<PathBuf>,
    /// Config file for fees, filters and risk limits (default: config/default.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write every fill as `ts_ns,symbol,side,qty,price,fee,rule`.
    #[arg(long, value_name = "FILE")]
    fills_csv: Option<PathBuf>,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    json: bool,
    /// State dir for orders, fills and the journal (default: a fresh folder under state/).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    /// Config file (default: config/default.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check this strategy file instead of the one the config names.
    #[arg(long, value_name = "FILE")]
    strategy: Option<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    /// A state dir, or a folder of runs (then the run started most recently). Default: the run under state/
    /// started most recently.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Print one JSON object (metrics, trades, positions, orders, fills, …) for scripts.
    #[arg(long)]
    json: bool,
    /// How many trades the text lists: the last N, or `all`.
    #[arg(long, value_name = "N|all", default_value = "all")]
    trades: premia::report::TradeRows,
    /// Also write every trade, with the values that fired its entry and exit, to this CSV file.
    #[arg(long, value_name = "FILE")]
    trades_csv: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Config file (default: config/default.toml, or its embedded copy).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Close the open position before exiting.
    #[arg(long)]
    flatten_on_exit: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    max_seconds: Option<f64>,
    /// Give up (exit code 3) when the exchange cannot be reached at start-up for this long, e.g. "30s", "5m".
    /// Without it a start-up keeps trying, as an unattended bot should.
    #[arg(long, value_name = "DURATION", value_parser = parse_startup_timeout)]
    startup_timeout: Option<std::time::Duration>,
}

fn parse_startup_timeout(s: &str) -> Result<std::time::Duration, String> {
    premia::config::parse_duration(s)
        .filter(|ns| *ns > 0)
        .map(|ns| std::time::Duration::from_nanos(ns as u64))
        .ok_or_else(|| format!("`{s}` is not a duration like 30s, 5m or 1h"))
}

#[derive(Args)]
struct RecordArgs {
    /// Folder for the recordings (`spot_<symbol>_<time>.rec.gz`, `usdm_<symbol>_<time>.rec.gz`).
    #[arg(long, default_value = "data/recordings", value_name = "DIR")]
    out: PathBuf,
    /// Perp symbol (default: the config's strategy's symbol).
    #[arg(long)]
    symbol: Option<String>,
    /// Spot streams base (default: the config's feeds.spot_ws_url, else Binance's public mainnet streams).
    #[arg(long, value_name = "URL")]
    spot_url: Option<String>,
    /// USD-M streams base (default: the config's feeds.futures_ws_url, else Binance's public mainnet streams).
    #[arg(long, value_name = "URL")]
    futures_url: Option<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    /// Write plain text instead of gzip.
    #[arg(long)]
    plain: bool,
    /// Config file (default: config/default.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ExchangeArgs {
    /// Recordings to replay (spot and USD-M; `spot:PATH` / `perp:PATH` to say which). Repeatable.
    #[arg(long, required = true, value_name = "FILE")]
    data: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100", value_name = "ADDR")]
    listen: String,
    /// Replay speed (1 = real time, 10 = ten times faster, 0 = as fast as possible).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start the recording over when it ends.
    #[arg(long = "loop")]
    loop_replay: bool,
    /// Serve the pre-2026 websocket paths (every futures stream and the user stream on `/ws/…`, `/stream?…`)
    /// instead of Binance's routing (`/public`, `/market`, `/private`), for clients not yet migrated.
    #[arg(long)]
    legacy_routing: bool,
    /// Market-stream connections to wait for before the replay starts; 0 starts it at once (for clients that
    /// only use REST).
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_subscribers: usize,
    /// Config for fees, filters and the starting balance (default: config/default.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Inject faults: KIND=RATE,... with RATE the probability per opportunity (`all=RATE` for every kind).
    /// Kinds: market-close-1001, market-close-1008, user-close-1001, user-close-1008, market-stall, user-stall,
    /// malformed, truncated, listen-key-expired, clock-skew, rate-limit, ban, order-unknown, order-rejected,
    /// order-delayed, order-lost.
    #[arg(long, value_name = "SPEC", default_value = "")]
    faults: String,
    /// Seed of the fault schedule (same seed, same faults).
    #[arg(long, default_value_t = 0, value_name = "N")]
    fault_seed: u64,
    /// Retry-After of an injected 429, in ms.
    #[arg(long, default_value_t = 2_000, value_name = "MS")]
    fault_retry_after_ms: u64,
    /// Length of a 418 ban, in ms.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    fault_ban_ms: u64,
    /// Requests inside one 429 window that escalate to a ban.
    #[arg(long, default_value_t = 3, value_name = "N")]
    fault_ban_after: u32,
    /// How long a stall lasts, in ms.
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    fault_stall_ms: u64,
    /// How long a delayed order answer is held, in ms.
    #[arg(long, default_value_t = 15_000, value_name = "MS")]
    fault_delay_ms: u64,
    /// How often an open user stream draws its faults, in ms.
    #[arg(long, default_value_t = 1_000, value_name = "MS")]
    fault_user_tick_ms: u64,
}

impl ExchangeArgs {
    fn fault_plan(&self) -> anyhow::Result<premia::local_exchange::FaultPlan> {
        let ms = std::time::Duration::from_millis;
        Ok(premia::local_exchange::FaultPlan {
            seed: self.fault_seed,
            rates: premia::local_exchange::FaultPlan::parse_rates(&self.faults)
                .context("--faults")?,
            retry_after: ms(self.fault_retry_after_ms),
            ban: ms(self.fault_ban_ms),
            ban_after: self.fault_ban_after,
            stall: ms(self.fault_stall_ms),
            delay: ms(self.fault_delay_ms),
            user_tick: ms(self.fault_user_tick_ms),
        })
    }
}

#[derive(Args)]
struct GenTicksArgs {
    /// Output file (`.gz` to compress).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Number of ticks.
    #[arg(long, default_value_t = 1_000_000)]
    ticks: u64,
    /// Random seed (same seed, same file).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Set once logging is up: fatal errors then go through it (to stderr and the JSON log alike).
static LOGGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            fatal(&describe(&e));
            ExitCode::from(1)
        }
    }
}

/// Reports an error that ends the process: on stderr, and in the JSON log when one is set up.
fn fatal(message: &str) {
    if LOGGING.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(fatal = true, "{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// The error and its causes on one line, skipping a cause whose text the message already contains.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Sets up tracing: human lines on stderr, optionally JSON lines to a file.
fn init_logging(filter: &str, json_file: Option<&Path>) -> Result<()> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let env = std::env::var("RUST_LOG").ok();
    let make_filter = || {
        EnvFilter::try_new(env.as_deref().unwrap_or(filter)).or_else(|_| EnvFilter::try_new("info"))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(make_filter()?);
    let json = match json_file {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening log file {}", p.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(make_filter()?),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(json)
        .init();
    LOGGING.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let log = cli.log.clone();
    let log_json = cli.log_json.clone();
    let setup = |cfg: Option<&Config>| -> Result<()> {
        let level = log
            .clone()
            .or_else(|| cfg.map(|c| c.log.level.clone()))
            .unwrap_or_else(|| "info".into());
        let json = log_json
            .clone()
            .or_else(|| cfg.and_then(|c| c.log.json_file.clone()));
        init_logging(&level, json.as_deref())
    };
    match cli.command {
        Command::Backtest(a) => {
            let config = Config::load(a.config.as_deref())?;
            // Backtests log warnings only unless asked: decisions would drown the summary.
            let quiet = log.is_none() && std::env::var_os("RUST_LOG").is_none();
            if quiet {
                init_logging("warn", log_json.as_deref())?;
            } else {
                setup(Some(&config))?;
            }
            let strategy_path = a
                .strategy
                .clone()
                .unwrap_or_else(|| config.strategy.clone());
            let strategy = premia::strategy::load_file(&strategy_path)?;
            let state_dir = a
                .state
                .clone()
                .unwrap_or_else(|| fresh_state_dir("backtest", &strategy.name));
            let result = premia::backtest::run(premia::backtest::BacktestOptions {
                data: a.data,
                strategy,
                config,
                state_dir,
                fills_csv: a.fills_csv,
                progress: !a.json,
            })?;
            if a.json {
                println!("{}", result.to_json());
            } else {
                print!("{}", result.render_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(a) => {
            setup(None)?;
            check(a)
        }
        Command::Report(a) => {
            setup(None)?;
            report(a)
        }
        Command::Run(a) => {
            let config = match Config::load(a.config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    setup(None)?;
                    fatal(&e.to_string());
                    return Ok(ExitCode::from(2));
                }
            };
            setup(Some(&config))?;
            run_live(a, config)
        }
        Command::Record(a) => {
            let config = Config::load(a.config.as_deref())?;
            setup(Some(&config))?;
            let (symbol, spot_symbol) = match a.symbol {
                Some(s) => (s.to_ascii_uppercase(), s.to_ascii_uppercase()),
                None => {
                    let s = premia::strategy::load_file(&config.strategy)?;
                    (s.symbol.clone(), s.spot_symbol.clone())
                }
            };
            let pick = |flag: Option<String>, cfg: &str, public: &str| {
                flag.or_else(|| Some(cfg.to_string()).filter(|u| !u.is_empty()))
                    .unwrap_or_else(|| public.to_string())
            };
            let opts = premia::record::RecordOptions {
                spot_ws_url: pick(
                    a.spot_url,
                    &config.feeds.spot_ws_url,
                    "wss://stream.binance.com:9443",
                ),
                futures_ws_url: pick(
                    a.futures_url,
                    &config.feeds.futures_ws_url,
                    "wss://fstream.binance.com",
                ),
                symbol,
                spot_symbol,
                out_dir: a.out,
                gzip: !a.plain,
                duration: a
                    .seconds
                    .filter(|s| *s > 0.0)
                    .map(std::time::Duration::from_secs_f64),
                max_frames: None,
                shutdown: tokio_util::sync::CancellationToken::new(),
                clock: None,
            };
            let routing = config.feeds.futures_routing;
            let stamp = fresh_stamp();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let summary = runtime.block_on(async {
                let stop = opts.shutdown.clone();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        stop.cancel();
                    }
                });
                premia::record::record_with_routing(opts, &stamp, routing).await
            })?;
            println!(
                "recorded {} spot frames to {}\nrecorded {} perp frames to {}",
                summary.spot_frames,
                summary.spot_file.display(),
                summary.perp_frames,
                summary.perp_file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Exchange(a) => {
            let config = Config::load(a.config.as_deref())?;
            setup(Some(&config))?;
            let listen = a.listen.parse().with_context(|| {
                format!(
                    "--listen `{}` is not an address like 127.0.0.1:9100",
                    a.listen
                )
            })?;
            let faults = a.fault_plan()?;
            let cfg = premia::local_exchange::LocalExchangeConfig {
                faults,
                listen,
                data: a.data,
                speed: a.speed,
                starting_balance: config.local.balance_usdt,
                taker_fee: config.fees.taker_rate,
                maker_fee: config.fees.maker_rate,
                filters: config.filters.clone(),
                loop_replay: a.loop_replay,
                legacy_routing: a.legacy_routing,
                min_subscribers: a.min_subscribers,
                ..premia::local_exchange::LocalExchangeConfig::default()
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(premia::local_exchange::serve_standalone(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::GenTicks(a) => {
            setup(None)?;
            let file = std::fs::File::create(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            let gz = a.out.extension().is_some_and(|e| e == "gz");
            let mut out: Box<dyn std::io::Write> = if gz {
                Box::new(flate2::write::GzEncoder::new(
                    file,
                    flate2::Compression::fast(),
                ))
            } else {
                Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
            };
            premia::market::gen::generate_ticks(a.ticks, a.seed, &mut out)?;
            out.flush()?;
            eprintln!("wrote {} ticks to {}", a.ticks, a.out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `premia run`: the keys from the environment, SIGINT/SIGTERM as the shutdown, the trader on one thread.
fn run_live(a: RunArgs, config: Config) -> Result<ExitCode> {
    if config.strategy.as_os_str().is_empty() {
        fatal("the config names no strategy: set `strategy = \"strategies/….toml\"`");
        return Ok(ExitCode::from(2));
    }
    let credentials = match credentials(&config) {
        Ok(c) => c,
        Err(e) => {
            fatal(&e.to_string());
            return Ok(ExitCode::from(2));
        }
    };
    // The bot's tasks (feeds → engine → router, the user-data stream, the HTTP connections) share one thread:
    // a frame's way to an order request is then a few task switches, never a wake-up of another worker
    // (the embedded local exchange runs on a thread of its own). The fsyncs run on blocking threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut opts = premia::live::LiveOptions::new(config);
    opts.credentials = credentials;
    opts.flatten_on_exit = a.flatten_on_exit;
    opts.max_duration = a
        .max_seconds
        .filter(|s| *s > 0.0)
        .map(std::time::Duration::from_secs_f64);
    opts.startup_timeout = a.startup_timeout;
    let shutdown = opts.shutdown.clone();
    // A task, not the block_on future itself: woken tasks run in turn, without waiting for the scheduler to
    // drain its queue and poll the I/O driver first.
    let run = runtime.block_on(async {
        tokio::spawn(watch_signals(shutdown));
        tokio::spawn(premia::live::run(opts)).await
    });
    let run = run.map_err(|e| anyhow::anyhow!("the trader's task failed: {e}"))?;
    match run {
        Ok(summary) => {
            print!("{}", summary.render_text());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if e.exit_code() == 0 {
                tracing::info!("{e}");
            } else {
                fatal(&e.to_string());
            }
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

/// The API keys from the environment variables the config names (mode `binance`; the local exchange needs none).
fn credentials(
    config: &Config,
) -> Result<Option<premia::binance::Credentials>, premia::live::LiveError> {
    if config.exchange.mode != premia::config::ExchangeMode::Binance {
        return Ok(None);
    }
    let (k, s) = (
        &config.exchange.api_key_env,
        &config.exchange.api_secret_env,
    );
    premia::binance::Credentials::from_values(
        (k, std::env::var(k).ok()),
        (s, std::env::var(s).ok()),
    )
    .map(Some)
    .map_err(|premia::binance::sign::SignError::MissingEnv(vars)| {
        premia::live::LiveError::MissingKeys(vars)
    })
}

/// SIGINT and SIGTERM both take the clean path (cancel `shutdown`); a second signal exits at once.
async fn watch_signals(shutdown: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install the SIGTERM/SIGINT handlers; stop premia with SIGKILL");
        return;
    };
    let first = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = first, "stopping cleanly: entries stop, the order in flight settles, state is flushed (a second signal exits at once)");
    shutdown.cancel();
    let second = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::warn!(
        signal = second,
        "second signal: exiting at once; the store is reconciled at the next start"
    );
    std::process::exit(130);
}

/// `premia check`: config and strategy problems, all of them, then a one-line verdict.
fn check(a: CheckArgs) -> Result<ExitCode> {
    let mut failed = false;
    let config = match Config::load(a.config.as_deref()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("{e}");
            failed = true;
            None
        }
    };
    let strategy_path = a
        .strategy
        .or_else(|| config.as_ref().map(|c| c.strategy.clone()))
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = &strategy_path {
        match premia::strategy::load_file(p) {
            Ok(s) => println!(
                "strategy {} ({}): {} rule{}, symbol {}",
                p.display(),
                s.name,
                s.rules.len(),
                if s.rules.len() == 1 { "" } else { "s" },
                s.symbol
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if let Some(c) = &config {
        println!(
            "config {}: ok (exchange mode {:?}, state dir {})",
            c.source,
            c.exchange.mode,
            c.state_dir.display()
        );
    }
    if failed {
        eprintln!("check failed");
        Ok(ExitCode::from(2))
    } else {
        println!("check passed");
        Ok(ExitCode::SUCCESS)
    }
}

/// The current UTC time as `YYYYMMDDTHHMMSSZ`.
fn fresh_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (d, t) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = premia::report::text::civil_from_days(d);
    format!(
        "{y:04}{m:02}{day:02}T{:02}{:02}{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// A new folder name under state/ for a run: `state/<kind>-<strategy>-<UTC time>`.
fn fresh_state_dir(kind: &str, strategy: &str) -> PathBuf {
    let name: String = strategy
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = format!("{kind}-{name}-{}", fresh_stamp());
    let mut dir = Path::new("state").join(&base);
    let mut i = 2;
    while dir.exists() {
        dir = Path::new("state").join(format!("{base}-{i}"));
        i += 1;
    }
    dir
}

/// `premia report`: reads a run without writing anything; exit 2 when the folder holds no run.
fn report(a: ReportArgs) -> Result<ExitCode> {
    let path = a.state.unwrap_or_else(|| PathBuf::from("state"));
    let located = match premia::store::locate(&path) {
        Ok(l) => l,
        Err(e @ premia::store::StoreError::NotStateDir { .. }) => {
            fatal(&e.to_string());
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let store = premia::store::Store::open_existing(&located.dir)?;
    let mut report = premia::report::Report::load(&store)?;
    report.chosen_from = located.chosen_from;
    if let Some(path) = &a.trades_csv {
        let write = || -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
            premia::report::csv::write_trades(&report.stats, &mut w)
        };
        write().with_context(|| format!("cannot write the trades CSV {}", path.display()))?;
    }
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text_with(a.trades));
    }
    Ok(ExitCode::SUCCESS)
}
