//! Integration tests: engine semantics through the real `premia` binary — limit prices and maker/taker fills in a
//! backtest, feed gaps in recordings, and decision/denial counts that agree between the summary, the journal and
//! `premia report`.

use std::path::Path;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::support::{self, ok, premia};

const S: i64 = 1_000_000_000;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A backtest of `quotes` (ts, market, bid, ask) with `strategy` and a config whose `[risk]` section gets `risk`
/// appended. Returns the summary JSON, the fills CSV rows (side, price, fee) and the state dir's report JSON.
struct Run {
    summary: Value,
    fills: Vec<(String, Decimal, Decimal)>,
    report: Value,
}

fn backtest(dir: &Path, quotes: &[(i64, &str, &str, &str)], strategy: &str, risk: &str) -> Run {
    let mut csv = String::from("ts_ns,market,bid,ask,bid_qty,ask_qty\n");
    for (ts, m, b, a) in quotes {
        csv.push_str(&format!("{ts},{m},{b},{a},1,1\n"));
    }
    let data = dir.join("q.csv");
    std::fs::write(&data, csv).unwrap();
    let strat = dir.join("s.toml");
    std::fs::write(&strat, strategy).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "strategy = \"unused.toml\"\n[local]\ndata = [\"unused\"]\n[fees]\ntaker_rate = 0.0005\n\
             maker_rate = 0.0002\n[filters]\ntick_size = \"0.10\"\nmin_notional = 5\n[risk]\n\
             min_notional_usdt = 5\n{risk}\n"
        ),
    )
    .unwrap();
    let (fills, state) = (dir.join("f.csv"), dir.join("st"));
    let summary: Value = support::backtest_json(&[
        "--data",
        data.to_str().unwrap(),
        "--strategy",
        strat.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--fills-csv",
        fills.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    let fills = std::fs::read_to_string(&fills)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].to_string(), d(f[4]), d(f[5]))
        })
        .collect();
    let report = ok(&premia(&[
        "report",
        "--state",
        state.to_str().unwrap(),
        "--json",
    ]));
    Run {
        summary,
        fills,
        report: serde_json::from_str(report.trim()).unwrap(),
    }
}

const LIMIT_LONG: &str = r#"
name = "limit"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "enter_long"
[exit]
max_hold = "10s"
[order]
quantity = "0.010"
type = "limit"
limit_offset_bps = OFFSET
"#;

/// Limit buys priced from the bid: +1 bp crosses the spread (taker, filled at the ask at once), 0 joins the bid and
/// −1 bp rests 6 below it (makers, filled at their price when the ask comes down to it). Fees follow.
#[test]
fn limit_entries_fill_as_maker_or_taker_by_offset() {
    let quotes = [
        (0, "spot", "60000.0", "60000.1"),
        (0, "perp", "60000.0", "60000.1"),
        (S, "perp", "59999.9", "60000.0"), // the ask reaches a buy resting at the bid
        (2 * S, "perp", "59990.0", "59994.0"), // the ask reaches a buy resting 1 bp below the bid
        (3 * S, "perp", "59990.0", "59994.0"),
    ];
    let qty = d("0.010");
    let (taker, maker) = (d("0.0005"), d("0.0002"));
    for (offset, price, at, rate) in [
        ("1", "60000.1", "taker at the ask", taker),
        ("0", "60000.0", "maker at the bid", maker),
        ("-1", "59994.0", "maker 1 bp below the bid", maker),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let run = backtest(
            tmp.path(),
            &quotes,
            &LIMIT_LONG.replace("OFFSET", offset),
            "max_feed_staleness = \"60s\"",
        );
        let (side, p, fee) = run
            .fills
            .first()
            .unwrap_or_else(|| panic!("{offset}: no fill"));
        assert_eq!(side, "BUY");
        assert_eq!(*p, d(price), "offset {offset} bp: {at}");
        assert_eq!(*fee, qty * d(price) * rate, "offset {offset} bp: {at}");
    }
}

/// A recording with a 7 s silence of the spot feed while the perp falls, and the premium −20 bps before it and 0
/// after: with the default 5 s staleness the gap makes no signal; with a 60 s limit the same data fires.
#[test]
fn a_gap_in_a_recording_makes_no_signal_in_a_backtest() {
    let mut quotes: Vec<(i64, &str, &str, &str)> = Vec::new();
    for t in 0..=30 {
        quotes.push((t * S, "spot", "99.75", "99.85"));
        quotes.push((t * S, "perp", "99.95", "100.05"));
    }
    for ms in [35_500, 36_000, 36_500] {
        quotes.push((ms * 1_000_000, "perp", "99.75", "99.85"));
    }
    for t in 37..=50 {
        quotes.push((t * S, "spot", "99.75", "99.85"));
        quotes.push((t * S, "perp", "99.75", "99.85"));
    }
    let strategy = r#"
name = "gap"
symbol = "BTCUSDT"
[[rule]]
name = "premium rises"
when = "change(premium_bps, 20s) >= 15"
action = "enter_long"
[order]
quantity = "0.100"
"#;
    let tmp = tempfile::tempdir().unwrap();
    let run = backtest(tmp.path(), &quotes, strategy, "max_feed_staleness = \"5s\"");
    assert_eq!(run.summary["orders"], 0, "{}", run.summary);
    // Samples with a stale spot quote are not taken: 31 + 14 paired seconds, each spot then perp, less the
    // first spot quote (no perp yet); none from the three perp quotes in the gap.
    assert_eq!(
        run.summary["samples"],
        2 * 31 - 1 + 2 * 14,
        "{}",
        run.summary
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = backtest(
        tmp.path(),
        &quotes,
        strategy,
        "max_feed_staleness = \"60s\"",
    );
    assert_eq!(run.summary["orders"], 1, "{}", run.summary);
}

/// A rule that stays true while `max_orders_per_minute` denies it: one denial per episode, and the backtest
/// summary, the journal (through `premia report`) and the decisions per rule all agree.
#[test]
fn summary_and_report_agree_on_decisions_and_denials() {
    let mut quotes = Vec::new();
    for t in 0..300 {
        quotes.push((t * S, "spot", "60000.0", "60000.1"));
        quotes.push((t * S, "perp", "60000.0", "60000.1"));
    }
    let strategy = r#"
name = "busy"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "enter_long"
[exit]
max_hold = "2s"
[order]
quantity = "0.010"
"#;
    let tmp = tempfile::tempdir().unwrap();
    let run = backtest(tmp.path(), &quotes, strategy, "max_orders_per_minute = 4");
    let (s, r) = (&run.summary, &run.report);
    // 4 orders a minute for 5 minutes: 2 entries and their 2 exits, each minute; the rule is denied once a minute.
    assert_eq!(s["orders"], 20, "{s}");
    assert_eq!(s["risk_denials"], 5, "{s}");
    assert_eq!(r["risk_denials"]["max_orders_per_minute"], 5, "{r}");
    let rules = s["rules"].as_array().unwrap();
    let decisions = |name: &str| {
        rules
            .iter()
            .find(|x| x["rule"] == name || x["rule"] == format!("[exit] {name}"))
            .map(|x| x["decisions"].clone())
    };
    assert_eq!(
        decisions("in"),
        Some(r["decisions"]["in"].clone()),
        "{s}\n{r}"
    );
    assert_eq!(
        decisions("max_hold"),
        Some(r["decisions"]["max_hold"].clone()),
        "{s}\n{r}"
    );
    assert_eq!(r["decisions"]["in"], 10);
    assert_eq!(r["decisions"]["max_hold"], 10);
    assert_eq!(run.fills.len(), 20);
}
