//! Soak: the real `premia run` binary (mode binance) against the in-process local exchange injecting seeded faults
//! of every kind, killed with SIGKILL at seeded points of the order flow and restarted at once on the same state
//! dir; and startups inside a 429 window and a 418 ban. The checks read sled (between runs, when the bot holds no
//! lock) and the exchange's fault ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use premia::local_exchange::{
    FaultKind, FaultLedger, FaultPlan, LocalExchangeConfig, RunningExchange,
};

use crate::support;
use premia::model::{Decimal, JournalKind, Side};
use premia::store::Store;

const SEED: u64 = 20_261_203;
/// How long the bot trades under faults.
const SOAK: Duration = Duration::from_secs(90);
/// The bot's staleness limit and request timeout (written into its config).
const STALENESS_MS: i64 = 2_000;
const TIMEOUT_MS: u64 = 1_000;

/// Faults tuned to their opportunities (market frames are many, orders few), so each kind fires many times.
fn soak_plan() -> FaultPlan {
    let rates = "market-close-1001=0.0008,market-close-1008=0.0008,market-stall=0.0003,\
                 malformed=0.002,truncated=0.002,\
                 user-close-1001=0.05,user-close-1008=0.05,user-stall=0.05,listen-key-expired=0.05,\
                 clock-skew=0.05,rate-limit=0.015,ban=0.005,\
                 order-unknown=0.08,order-rejected=0.08,order-delayed=0.08,order-lost=0.08";
    FaultPlan {
        seed: SEED,
        rates: FaultPlan::parse_rates(rates).expect("valid rates"),
        retry_after: Duration::from_secs(1),
        ban: Duration::from_secs(3),
        ban_after: 3,
        stall: Duration::from_millis(2_500),
        delay: Duration::from_millis(2_500),
        user_tick: Duration::from_millis(200),
    }
}

async fn exchange(plan: FaultPlan, speed: f64) -> RunningExchange {
    support::start(LocalExchangeConfig {
        loop_replay: true,
        faults: plan,
        ..support::head2000(speed, 2)
    })
    .await
}

const KEY_ENV: &str = "PREMIA_SOAK_API_KEY";
const SECRET_ENV: &str = "PREMIA_SOAK_API_SECRET";

/// A temp dir with the strategy and a `mode = "binance"` config pointing at the exchange.
struct Bot {
    dir: tempfile::TempDir,
    config: PathBuf,
    key: String,
    secret: String,
    runs: u32,
}

impl Bot {
    fn new(ex: &RunningExchange) -> Bot {
        let dir = tempfile::tempdir().expect("tempdir");
        // Enters long whenever flat, holds one second: an order every couple of seconds.
        let config = support::BinanceConfig {
            key_env: KEY_ENV,
            secret_env: SECRET_ENV,
            timeout_ms: TIMEOUT_MS,
            exchange: "leverage = 5\n",
            risk: &format!(
                "max_orders_per_minute = 1000\nmax_feed_staleness = \"{STALENESS_MS}ms\"\n"
            ),
            tail: "",
        }
        .write(
            ex,
            dir.path(),
            &support::always_long("soak-busy", "1s"),
            "config.toml",
        );
        Bot {
            dir,
            config,
            key: ex.keys().api_key.clone(),
            secret: ex.keys().secret.clone(),
            runs: 0,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("run{run}.log"))
    }

    /// Starts `premia run`; the keys go to the child's environment only.
    fn spawn(&mut self) -> Child {
        self.runs += 1;
        let log = File::create(self.log(self.runs)).expect("log file");
        let err = log.try_clone().expect("log file");
        Command::new(env!("CARGO_BIN_EXE_premia"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env(KEY_ENV, &self.key)
            .env(SECRET_ENV, &self.secret)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("premia run starts")
    }

    fn tail(&self, run: u32) -> String {
        let text = std::fs::read_to_string(self.log(run)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// sled's view of the run, read while no bot holds the store.
struct Sled {
    position: Decimal,
    /// Booked quantity per client order id, and the number of fills with the same trade id booked twice.
    booked: BTreeMap<String, Decimal>,
    duplicate_trade_ids: Vec<i64>,
    /// Approved entry decisions (wall ms).
    entries: Vec<i64>,
}

fn read_sled(dir: &Path) -> Sled {
    let store = Store::open(dir).expect("the state dir opens after a kill");
    let position = store
        .positions()
        .expect("positions")
        .into_iter()
        .find(|p| p.symbol == "BTCUSDT")
        .map_or(Decimal::ZERO, |p| p.qty);
    let mut booked: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut duplicate_trade_ids = Vec::new();
    for f in store.fills().expect("fills") {
        *booked.entry(f.client_id.clone()).or_default() += f.qty;
        if let Some(t) = f.trade_id {
            if !seen.insert(t) {
                duplicate_trade_ids.push(t);
            }
        }
    }
    let entries = store
        .journal()
        .expect("journal")
        .into_iter()
        .filter(|j| {
            j.kind == JournalKind::Decision && j.action.starts_with("enter") && j.risk == "approved"
        })
        .map(|j| j.ts / 1_000_000)
        .collect();
    Sled {
        position,
        booked,
        duplicate_trade_ids,
        entries,
    }
}

/// Exchange trades per client id, and the position they make.
fn exchange_fills(l: &FaultLedger) -> (BTreeMap<String, Decimal>, Decimal) {
    let mut per: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut pos = Decimal::ZERO;
    for t in &l.trades {
        *per.entry(t.client_id.clone()).or_default() += t.qty;
        pos += match t.side {
            Side::Buy => t.qty,
            Side::Sell => -t.qty,
        };
    }
    (per, pos)
}

/// Problems found by one check after a kill; `unbooked` are exchange fills sled does not have yet.
#[derive(Default)]
struct Check {
    problems: Vec<String>,
    unbooked: BTreeSet<String>,
}

fn check_after_kill(ex: &RunningExchange, sled: &Sled, prev_unbooked: &BTreeSet<String>) -> Check {
    let mut c = Check::default();
    let ledger = ex.fault_ledger();
    let (per, ex_pos) = exchange_fills(&ledger);
    if ex.snapshot().position.qty != ex_pos {
        c.problems
            .push("the ledger's trades do not make the exchange position".into());
    }
    for t in &sled.duplicate_trade_ids {
        c.problems.push(format!("trade {t} booked twice in sled"));
    }
    // Fills of orders in flight at this kill (new since the last one) may be missing; the restart books them.
    let mut in_flight = Decimal::ZERO;
    for (id, qty) in &per {
        let got = sled.booked.get(id).copied().unwrap_or_default();
        if got > *qty {
            c.problems.push(format!(
                "{id}: sled booked {got}, the exchange filled {qty}"
            ));
        } else if got < *qty {
            c.unbooked.insert(id.clone());
            let side = ledger
                .trades
                .iter()
                .find(|t| &t.client_id == id)
                .map(|t| t.side);
            if !prev_unbooked.contains(id) {
                in_flight += match side {
                    Some(Side::Sell) => got - qty,
                    _ => qty - got,
                };
            }
        }
    }
    for (id, qty) in &sled.booked {
        if !per.contains_key(id) {
            c.problems
                .push(format!("{id}: sled booked {qty} the exchange never filled"));
        }
    }
    // Fills missing at the previous kill were the restarted bot's to reconcile.
    for id in prev_unbooked.intersection(&c.unbooked) {
        c.problems.push(format!(
            "{id}: still not booked after a restart's reconciliation"
        ));
    }
    if sled.position + in_flight != ex_pos {
        c.problems.push(format!(
            "sled position {} (+ {in_flight} in flight at the kill) != exchange position {ex_pos}",
            sled.position
        ));
    }
    c
}

/// Entries decided while a feed had been cut by a fault for longer than the staleness limit.
fn stale_entries(ledger: &FaultLedger, entries: &[i64]) -> Vec<String> {
    let mut bad = Vec::new();
    for &t in entries {
        for o in &ledger.outages {
            let end = o.to_ms.unwrap_or(i64::MAX);
            if t > o.from_ms + STALENESS_MS && t < end {
                bad.push(format!(
                    "entry at {t} while {} had no frame since {} (until {end})",
                    o.venue.as_str(),
                    o.from_ms
                ));
            }
        }
    }
    bad
}

fn percentile(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return -1;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(i).copied().unwrap_or(-1)
}

/// Milliseconds from each instant to the first order accepted after it.
fn to_trading(ledger: &FaultLedger, from: &[i64]) -> Vec<i64> {
    from.iter()
        .filter_map(|&t| {
            ledger
                .accepted
                .iter()
                .map(|(_, at)| *at)
                .find(|at| *at >= t)
                .map(|at| at - t)
        })
        .collect()
}

/// Waits (bounded) for an order accepted after `seen` orders, then a seeded 0–250 ms more: a point in the
/// order flow (the bot has the intent in sled and the answer may be in flight).
async fn order_flow_point(ex: &RunningExchange, seen: usize, rng: &mut fastrand::Rng) {
    let t0 = Instant::now();
    while ex.fault_ledger().accepted.len() <= seen && t0.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(rng.u64(0..250))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_faults_of_every_kind_and_kill_9_restarts() {
    let ex = exchange(soak_plan(), 5.0).await;
    let mut bot = Bot::new(&ex);
    let mut rng = fastrand::Rng::with_seed(SEED);
    let mut problems: Vec<String> = Vec::new();
    let mut self_exits: Vec<String> = Vec::new();
    let mut restarts_at: Vec<i64> = Vec::new();
    let mut prev_unbooked = BTreeSet::new();
    let mut recoveries = 0usize;
    let mut kills = 0u32;
    let mut reported = BTreeSet::new();
    let started = Instant::now();
    let mut child = bot.spawn();
    restarts_at.push(support::now_ms());
    while started.elapsed() < SOAK {
        // Run for a seeded while, watching for the bot exiting by itself.
        let until = Instant::now() + Duration::from_millis(rng.u64(4_000..9_000));
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                self_exits.push(format!(
                    "run {} exited by itself ({status}):\n{}",
                    bot.runs,
                    bot.tail(bot.runs)
                ));
                // As a supervisor would (systemd's RestartSec): restart after a pause.
                tokio::time::sleep(Duration::from_secs(1)).await;
                child = bot.spawn();
                restarts_at.push(support::now_ms());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = ex.fault_ledger().accepted.len();
        order_flow_point(&ex, seen, &mut rng).await;
        if let Ok(Some(status)) = child.try_wait() {
            self_exits.push(format!("run {} exited by itself ({status})", bot.runs));
        }
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        let sled = read_sled(&bot.state());
        let c = check_after_kill(&ex, &sled, &prev_unbooked);
        recoveries += prev_unbooked.difference(&c.unbooked).count();
        // Each finding once, with the kill that first showed it.
        for p in c.problems {
            if reported.insert(p.clone()) {
                problems.push(format!("kill {kills}: {p}"));
            }
        }
        prev_unbooked = c.unbooked;
        child = bot.spawn();
        restarts_at.push(support::now_ms());
    }

    // Quiet end: no faults; the last restart must reconcile and trade again.
    let faults_off = support::now_ms();
    ex.set_fault_plan(&FaultPlan {
        seed: SEED,
        ..FaultPlan::default()
    });
    let quiet_from = ex.fault_ledger().accepted.len();
    let t0 = Instant::now();
    while ex.fault_ledger().accepted.len() < quiet_from + 3
        && t0.elapsed() < Duration::from_secs(20)
    {
        if let Ok(Some(status)) = child.try_wait() {
            self_exits.push(format!(
                "run {} exited by itself ({status}):\n{}",
                bot.runs,
                bot.tail(bot.runs)
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let traded_at_end = ex.fault_ledger().accepted.len() - quiet_from;
    // Stop between orders: right after an order was answered and its fill booked.
    order_flow_point(&ex, ex.fault_ledger().accepted.len(), &mut rng).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let sled = read_sled(&bot.state());
    let c = check_after_kill(&ex, &sled, &prev_unbooked);
    recoveries += prev_unbooked.difference(&c.unbooked).count();
    for p in c.problems {
        if reported.insert(p.clone()) {
            problems.push(format!("final: {p}"));
        }
    }

    let ledger = ex.fault_ledger();
    // A quiet stop (no faults, no order in flight): sled and the exchange agree exactly.
    let (_, quiet_pos) = exchange_fills(&ledger);
    if sled.position != quiet_pos || !c.unbooked.is_empty() {
        problems.push(format!(
            "final: at a quiet stop sled position {} vs exchange {quiet_pos}, {} orders' fills not in sled",
            sled.position,
            c.unbooked.len()
        ));
    }
    let mut ids = BTreeSet::new();
    for (id, _) in &ledger.accepted {
        if !ids.insert(id) {
            problems.push(format!("client order id {id} accepted twice"));
        }
    }
    // The staleness check compares journal times with the exchange's wall clock: they must be on the same clock.
    let soak_began = restarts_at.first().copied().unwrap_or_default();
    if !sled
        .entries
        .iter()
        .any(|t| (soak_began..=support::now_ms()).contains(t))
    {
        problems.push("no entry decision journalled on the wall clock during the soak".into());
    }
    problems.extend(stale_entries(&ledger, &sled.entries));

    let counts = ex.fault_counts();
    let (_, ex_pos) = exchange_fills(&ledger);
    let mut restart_ms = to_trading(&ledger, &restarts_at);
    let reconnects: Vec<i64> = ledger.outages.iter().filter_map(|o| o.to_ms).collect();
    let mut reconnect_ms = to_trading(&ledger, &reconnects);
    println!("soak: faults {counts}");
    println!(
        "soak: {} faults, {} orders accepted, {} trades, {} runs ({} kills), {} self-exits, {} recoveries, \
         {} feed outages, exchange position {ex_pos}, sled position {}",
        counts.total(),
        ledger.accepted.len(),
        ledger.trades.len(),
        bot.runs,
        kills,
        self_exits.len(),
        recoveries,
        ledger.outages.len(),
        sled.position
    );
    println!(
        "soak: restart → trading p50 {} ms p99 {} ms; feed back → trading p50 {} ms p99 {} ms; \
         orders after faults stopped: {traded_at_end} (faults off at {faults_off})",
        percentile(&mut restart_ms.clone(), 0.5),
        percentile(&mut restart_ms, 0.99),
        percentile(&mut reconnect_ms.clone(), 0.5),
        percentile(&mut reconnect_ms, 0.99),
    );
    for e in self_exits.iter().take(5) {
        println!("soak: {e}");
    }
    for p in problems.iter().take(40) {
        println!("soak problem: {p}");
    }
    ex.shutdown().await;

    assert!(counts.total() >= 300, "too few faults: {counts}");
    let missing: Vec<_> = FaultKind::ALL
        .iter()
        .filter(|k| counts.get(**k) == 0)
        .collect();
    assert!(missing.is_empty(), "kinds never injected: {missing:?}");
    assert!(
        self_exits.is_empty(),
        "the bot exited by itself {} times (first ones printed above)",
        self_exits.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems (first ones printed above)",
        problems.len()
    );
    assert!(traded_at_end >= 3, "the bot was not trading at the end");
}

/// Starts the bot while the exchange refuses every request (a 429 window, or a ban), and checks that it waits the
/// window out without a request inside it, then trades.
async fn startup_inside(kind: FaultKind) {
    let plan = FaultPlan {
        seed: SEED,
        retry_after: Duration::from_secs(3),
        ban: Duration::from_secs(4),
        ..FaultPlan::default()
    };
    let ex = exchange(plan, 3.0).await;
    ex.arm_fault(kind);
    let mut bot = Bot::new(&ex);
    let mut child = bot.spawn();
    let t0 = Instant::now();
    let mut exited = None;
    while ex.fault_ledger().accepted.is_empty() && t0.elapsed() < Duration::from_secs(40) {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(format!("{status}:\n{}", bot.tail(1)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let counts = ex.fault_counts();
    let accepted = ex.fault_ledger().accepted.len();
    ex.shutdown().await;
    println!("startup inside {kind}: {counts}; orders {accepted}");
    assert_eq!(counts.get(kind), 1, "the window was opened: {counts}");
    assert!(
        exited.is_none(),
        "premia run exited inside the {kind} window: {exited:?}"
    );
    assert_eq!(counts.violations, 0, "requests inside the {kind} window");
    assert!(accepted > 0, "no order after the {kind} window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_inside_a_429_window_waits_then_trades() {
    startup_inside(FaultKind::RateLimit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_inside_a_418_ban_waits_then_trades() {
    startup_inside(FaultKind::Ban).await;
}
