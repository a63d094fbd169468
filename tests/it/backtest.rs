//! Integration tests: the real `premia` binary backtesting real and scripted data, `report` and `check`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::support::{self, ok, premia};

fn root(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

const SPOT: &str = "data/btcusdt_20240808_spot.rec.gz";
const USDM: &str = "data/btcusdt_20240808_usdm.rec.gz";

struct Row {
    ts: i64,
    side: String,
    qty: Decimal,
    price: Decimal,
    fee: Decimal,
    rule: String,
}

fn rows(csv: &str) -> Vec<Row> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("ts_ns,symbol,side,qty,price,fee,rule"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.splitn(7, ',').collect();
            assert_eq!(f.len(), 7, "{l}");
            assert_eq!(f[1], "BTCUSDT");
            Row {
                ts: f[0].parse().unwrap(),
                side: f[2].to_string(),
                qty: Decimal::from_str(f[3]).unwrap(),
                price: Decimal::from_str(f[4]).unwrap(),
                fee: Decimal::from_str(f[5]).unwrap(),
                rule: f[6].to_string(),
            }
        })
        .collect()
}

/// The perp touch (bid, ask) in force at `ts` according to the recording, read independently of the backtest.
fn perp_touch_at(ts: i64) -> (Decimal, Decimal) {
    let reader = premia::market::open(&[root(USDM)]).unwrap();
    let mut touch = None;
    for ev in reader.flatten() {
        if ev.ts > ts {
            break;
        }
        if let premia::market::MarketKind::Quote(q) = ev.kind {
            touch = Some((q.bid, q.ask));
        }
    }
    touch.expect("a perp quote before the fill")
}

#[test]
fn backtest_of_the_bundled_real_recording_trades_at_the_touch_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let csv1 = tmp.path().join("fills1.csv");
    let csv2 = tmp.path().join("fills2.csv");
    let state = tmp.path().join("state");
    let run = |csv: &PathBuf, state: &PathBuf| {
        support::backtest_json(&[
            "--data",
            SPOT,
            "--data",
            USDM,
            "--strategy",
            "strategies/demo_window_b.toml",
            "--fills-csv",
            csv.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
    };
    let j = run(&csv1, &state);
    assert!(j["events"].as_u64().unwrap() > 100_000, "{j}");
    for key in ["elapsed_s", "events_per_s", "realized_pnl"] {
        assert!(j[key].is_number(), "{key} in {j}");
    }
    let fills = j["fills"].as_u64().unwrap();
    assert!(fills >= 2, "the demo strategy trades on window B: {j}");
    assert_eq!(
        j["orders"].as_u64().unwrap(),
        fills,
        "market orders fill whole"
    );

    let text = std::fs::read_to_string(&csv1).unwrap();
    let rows = rows(&text);
    assert_eq!(rows.len() as u64, fills);
    // Entries and exits alternate, with the same quantity, on opposite sides.
    for pair in rows.chunks(2) {
        if let [a, b] = pair {
            assert_ne!(a.side, b.side);
            assert_eq!(a.qty, b.qty);
            assert!(b.ts >= a.ts);
            assert!(!a.rule.is_empty() && !b.rule.is_empty());
        }
    }
    let taker = Decimal::from_str("0.0005").unwrap();
    let mut pnl = Decimal::ZERO;
    for r in &rows {
        // Market orders fill at the perp touch of the deciding event: buy at the ask, sell at the bid.
        let (bid, ask) = perp_touch_at(r.ts);
        let expect = if r.side == "BUY" { ask } else { bid };
        assert_eq!(r.price, expect, "fill at {} {}", r.ts, r.side);
        assert_eq!(r.fee, (r.qty * r.price * taker).normalize());
        assert!(r.price > Decimal::from(61_500) && r.price < Decimal::from(61_900));
        let sign = if r.side == "BUY" {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        };
        pnl += sign * r.qty * r.price - r.fee;
    }
    if rows.len() % 2 == 0 {
        let reported = j["realized_pnl"].as_f64().unwrap();
        let computed: f64 = pnl.to_string().parse().unwrap();
        assert!(
            (reported - computed).abs() < 1e-6,
            "{reported} vs {computed}"
        );
    }

    // Same inputs → byte-identical fills CSV.
    run(&csv2, &tmp.path().join("state2"));
    assert_eq!(std::fs::read(&csv1).unwrap(), std::fs::read(&csv2).unwrap());

    // `premia report` reads the backtest's state like a live run's.
    let rep: serde_json::Value = serde_json::from_str(
        ok(&premia(&[
            "report",
            "--state",
            state.to_str().unwrap(),
            "--json",
        ]))
        .trim(),
    )
    .unwrap();
    assert_eq!(rep["fills"].as_array().unwrap().len() as u64, fills);
    assert_eq!(rep["orders"].as_array().unwrap().len() as u64, fills);
    assert!(
        (rep["realized_pnl"].as_f64().unwrap() - j["realized_pnl"].as_f64().unwrap()).abs() < 1e-9
    );
    for o in rep["orders"].as_array().unwrap() {
        assert_eq!(o["state"], "FILLED");
        assert!(o["client_id"].as_str().unwrap().len() <= 36);
    }
    let text = ok(&premia(&["report", "--state", state.to_str().unwrap()]));
    assert!(text.contains("BTCUSDT"), "{text}");
}

/// A hand-made quote CSV where the answer is known: the perp drops 1.0 over 2 s while the premium rises → long at the
/// ask of that event; `max_hold` 1 s → the exit at the bid of the first event ≥ 1 s later.
#[test]
fn backtest_of_scripted_quotes_has_exact_fills() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.csv");
    let s = 1_000_000_000i64;
    let mut csv = String::from("ts_ns,market,bid,ask,bid_qty,ask_qty\n");
    let lines = [
        (0, "spot", "100.00", "100.02"),
        (0, "perp", "99.90", "100.00"),
        (s, "perp", "99.60", "99.70"),
        (2 * s, "perp", "98.90", "99.00"), // perp mid 98.95: change_pct over 2 s = -1.0 %; premium up → long
        (2 * s + 500_000_000, "perp", "99.10", "99.20"),
        (3 * s, "perp", "99.30", "99.40"), // 1 s after the entry decision → max_hold exit at the bid 99.30
        (4 * s, "perp", "99.30", "99.40"),
    ];
    for (ts, m, b, a) in lines {
        csv.push_str(&format!("{ts},{m},{b},{a},1.5,2.5\n"));
    }
    csv.push_str("garbage line\n");
    std::fs::write(&data, csv).unwrap();
    let strat = tmp.path().join("s.toml");
    std::fs::write(
        &strat,
        r#"
name = "scripted"
symbol = "BTCUSDT"
[[rule]]
name = "premium rises into a drop"
when = "change_pct(perp_mid, 2s) <= -0.5 and change(premium_bps, 2s) >= 2"
action = "enter_long"
[exit]
max_hold = "1s"
[order]
quantity = "1.5"
"#,
    )
    .unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        r#"
strategy = "unused.toml"
[local]
data = ["unused"]
[filters]
tick_size = "0.01"
min_notional = 5
[risk]
min_notional_usdt = 5
max_feed_staleness = "10s"
"#,
    )
    .unwrap();
    let fills = tmp.path().join("f.csv");
    let out = premia(&[
        "backtest",
        "--data",
        data.to_str().unwrap(),
        "--strategy",
        strat.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--fills-csv",
        fills.to_str().unwrap(),
        "--state",
        tmp.path().join("st").to_str().unwrap(),
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(j["events"], 7);
    assert_eq!(j["malformed_lines"], 1);
    let text = std::fs::read_to_string(&fills).unwrap();
    assert_eq!(
        text,
        format!(
            "ts_ns,symbol,side,qty,price,fee,rule\n\
             {},BTCUSDT,BUY,1.500,99.00,0.07425,premium rises into a drop\n\
             {},BTCUSDT,SELL,1.500,99.30,0.074475,max_hold\n",
            2 * s,
            3 * s
        )
    );
    // (99.30 - 99.00) * 1.5 - fees
    assert!(
        (j["realized_pnl"].as_f64().unwrap() - (0.45 - 0.07425 - 0.074475)).abs() < 1e-9,
        "{j}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("q.csv:9:"),
        "malformed line is named: {stderr}"
    );
}

#[test]
fn check_reports_every_problem_with_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "strategy = \"strategies/premium_divergence.toml\"\n[exchange]\nmode = \"paper\"\n[risk]\nmax_dayly_loss_usdt = 5\nmax_feed_staleness = \"soon\"\n",
    )
    .unwrap();
    let out = premia(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`exchange.mode`"), "{err}");
    assert!(
        err.contains(
            "`risk.max_dayly_loss_usdt`: unknown key (did you mean `max_daily_loss_usdt`?)"
        ),
        "{err}"
    );
    assert!(err.contains("`risk.max_feed_staleness`"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");

    let ok_out = premia(&["check"]);
    assert_eq!(
        ok_out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok_out.stderr)
    );
    for cfg in ["config/testnet.toml", "config/demo.toml"] {
        let o = premia(&["check", "--config", cfg]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{cfg}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn every_command_has_help_and_version() {
    assert!(ok(&premia(&["--version"])).starts_with("premia "));
    for cmd in [
        "backtest",
        "check",
        "report",
        "gen-ticks",
        "run",
        "exchange",
    ] {
        let text = ok(&premia(&[cmd, "--help"]));
        assert!(text.contains("Usage: premia"), "{cmd}: {text}");
    }
}

#[test]
fn gen_ticks_writes_a_quote_csv_the_backtest_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("t.csv");
    ok(&premia(&[
        "gen-ticks",
        "--out",
        f.to_str().unwrap(),
        "--ticks",
        "20000",
        "--seed",
        "3",
    ]));
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.starts_with("ts_ns,market,bid,ask,bid_qty,ask_qty\n"));
    assert_eq!(text.lines().count(), 20_001);
    let j = support::backtest_json(&[
        "--data",
        f.to_str().unwrap(),
        "--strategy",
        "strategies/premium_divergence.toml",
        "--state",
        tmp.path().join("st").to_str().unwrap(),
    ]);
    assert_eq!(j["events"], 20_000);
}

#[test]
fn run_without_keys_names_the_variables_and_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(["run", "--config", "config/testnet.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("BINANCE_TESTNET_API_KEY")
        .env_remove("BINANCE_TESTNET_API_SECRET")
        .output()
        .expect("run premia");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BINANCE_TESTNET_API_KEY") && err.contains("BINANCE_TESTNET_API_SECRET"),
        "{err}"
    );
}
