//! Integration tests: `premia report` through the real binary — undefined journal values, folders that are not
//! state dirs, folders of runs, a backtest's time span and end, one set of fee and PnL figures, `--trades`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use premia::model::{Decimal, Fill, JournalEntry, JournalKind, Position, Side};
use premia::store::{Durability, RunKind, RunMeta, Store};
use serde_json::Value;

/// 2024-05-01 12:00:00 UTC.
const T0: i64 = 1_714_564_800_000_000_000;
const S: i64 = 1_000_000_000;

fn premia_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run premia")
}

fn premia(args: &[&str]) -> Output {
    premia_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "premia failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(ok(out).trim()).unwrap()
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn fill(ts: i64, side: Side, price: &str, rule: &str) -> Fill {
    Fill {
        ts,
        client_id: format!("c{ts}"),
        symbol: "BTCUSDT".into(),
        side,
        qty: d("0.01"),
        price: d(price),
        fee: d("0.24"),
        trade_id: None,
        rule: rule.into(),
    }
}

/// A state dir with a run record started at `started_ts`, one closed trade per price pair and a journal.
fn make_run(dir: &Path, started_ts: i64, exits: &[&str]) {
    let store = Store::open_with(dir, Durability::Lazy).unwrap();
    store
        .put_meta(&RunMeta {
            kind: RunKind::Live,
            strategy_name: format!("started-{started_ts}"),
            started_ts,
            ended_ts: Some(started_ts + 60 * S),
            ..RunMeta::default()
        })
        .unwrap();
    for (i, exit) in exits.iter().enumerate() {
        let ts = T0 + i as i64 * 10 * S;
        store
            .add_fill(&fill(ts, Side::Buy, "60000", "dip"))
            .unwrap();
        store
            .add_fill(&fill(ts + S, Side::Sell, exit, "take_profit"))
            .unwrap();
    }
    store.flush().unwrap();
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            all.push(p);
        }
    }
    all.sort();
    all
}

#[test]
fn a_decision_with_an_undefined_value_does_not_break_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    make_run(tmp.path(), T0, &["60100"]);
    {
        let store = Store::open_with(tmp.path(), Durability::Lazy).unwrap();
        store
            .append_journal(&JournalEntry {
                ts: T0,
                kind: JournalKind::Decision,
                rule: "dip or warm".into(),
                action: "enter_long".into(),
                values: vec![
                    ("change_pct(perp_mid, 30s)".into(), -0.0535),
                    ("change(premium_bps, 1h)".into(), f64::NAN),
                ],
                risk: "approved".into(),
                client_id: Some(format!("c{T0}")),
                note: String::new(),
            })
            .unwrap();
        let back = store.journal().unwrap();
        assert_eq!(back[0].values[0].1, -0.0535);
        assert!(back[0].values[1].1.is_nan(), "undefined stays undefined");
    }
    let dir = tmp.path().to_str().unwrap();
    let j = json(&premia(&["report", "--state", dir, "--json"]));
    assert_eq!(j["decisions"]["dip or warm"], 1);
    let text = ok(&premia(&["report", "--state", dir]));
    assert!(text.contains("dip or warm"), "{text}");
}

#[test]
fn a_folder_that_is_not_a_state_dir_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let before = listing(tmp.path());
    for target in [tmp.path().to_path_buf(), tmp.path().join("missing")] {
        let out = premia(&["report", "--state", target.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a premia state dir"), "{err}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(listing(tmp.path()), before, "nothing was written");
    // Bare `report` in a folder without state/ says the same, and writes nothing either.
    let out = premia_in(tmp.path(), &["report"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(listing(tmp.path()), before);
}

#[test]
fn a_folder_of_runs_shows_the_run_started_most_recently() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("state");
    // Made first, but started last by its run record.
    make_run(
        &runs.join("local").join("run-newest"),
        T0 + 3_600 * S,
        &["60100"],
    );
    make_run(
        &runs.join("local").join("run-older"),
        T0,
        &["59900", "60100"],
    );
    make_run(&runs.join("backtest-x"), T0 + 60 * S, &[]);
    // What a backtest that failed before it started leaves: a state dir without a run record, and an empty folder.
    drop(Store::open_with(&runs.join("backtest-failed"), Durability::Lazy).unwrap());
    std::fs::create_dir_all(runs.join("backtest-empty")).unwrap();
    let before = listing(tmp.path());

    let j = json(&premia(&[
        "report",
        "--state",
        runs.to_str().unwrap(),
        "--json",
    ]));
    let newest = runs.join("local").join("run-newest");
    assert_eq!(j["state_dir"], newest.display().to_string());
    assert_eq!(j["chosen_from"], runs.display().to_string());
    assert_eq!(j["metrics"]["trades"], 1);

    let text = ok(&premia(&[
        "report",
        "--state",
        runs.join("local").to_str().unwrap(),
    ]));
    assert!(text.contains("run-newest"), "{text}");
    assert!(text.contains("started most recently in"), "{text}");

    // Bare `report` reads state/ under the working directory.
    let j = json(&premia_in(tmp.path(), &["report", "--json"]));
    assert!(
        j["state_dir"].as_str().unwrap().ends_with("run-newest"),
        "{j}"
    );
    assert!(!runs.join("db").exists() && !runs.join("conf").exists());
    assert!(!runs.join("backtest-empty").join("db").exists());
    let after = listing(tmp.path());
    // sled may leave a snapshot of its log when it opens a database; nothing else appears, and nothing at all
    // outside the state dirs.
    let new: Vec<_> = after
        .iter()
        .filter(|p| !before.contains(p))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !(name.starts_with("snap.") && premia::store::is_state_dir(p.parent().unwrap()))
        })
        .collect();
    assert!(new.is_empty(), "no file was created: {new:?}");
}

#[test]
fn trades_option_limits_the_text_and_bad_values_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    make_run(tmp.path(), T0, &["60100", "59900", "60200"]);
    let dir = tmp.path().to_str().unwrap();
    let all = ok(&premia(&["report", "--state", dir]));
    assert!(
        all.contains("Trades (3 closed)") && all.contains("\n  3 "),
        "{all}"
    );
    assert!(!all.contains("not shown"), "all trades by default:\n{all}");
    let last = ok(&premia(&["report", "--state", dir, "--trades", "1"]));
    assert!(last.contains("the first 2 trades are not shown"), "{last}");
    assert!(!last.contains("\n  1  BTCUSDT"), "{last}");
    assert!(last.contains("\n  3  BTCUSDT"), "{last}");
    let out = premia(&["report", "--state", dir, "--trades", "some"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a number of trades nor `all`"));
}

#[test]
fn metrics_and_tables_are_in_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    make_run(tmp.path(), T0, &["60100", "59900", "60200"]);
    let dir = tmp.path().to_str().unwrap();
    let j = json(&premia(&["report", "--state", dir, "--json"]));
    let m = &j["metrics"];
    // Gross +1, −1, +2 on 0.01 BTC; 0.48 fees a trade.
    assert_eq!(
        (
            m["trades"].as_u64(),
            m["wins"].as_u64(),
            m["losses"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert!((m["gross_pnl"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{m}");
    assert!((m["fees"].as_f64().unwrap() - 1.44).abs() < 1e-9, "{m}");
    assert!((m["net_pnl"].as_f64().unwrap() - 0.56).abs() < 1e-9, "{m}");
    assert!(
        (m["expectancy"].as_f64().unwrap() - 0.56 / 3.0).abs() < 1e-9,
        "{m}"
    );
    assert!(
        (m["max_drawdown"].as_f64().unwrap() - 1.48).abs() < 1e-9,
        "{m}"
    );
    for key in [
        "profit_factor",
        "win_rate",
        "exposure_pct",
        "max_drawdown_duration_s",
    ] {
        assert!(m[key].is_number(), "{key}: {m}");
    }
    for key in [
        "sharpe",
        "sortino",
        "calmar",
        "buy_and_hold_pct",
        "max_drawdown_pct",
    ] {
        assert!(m.get(key).is_some(), "{key} present: {m}");
    }
    let t = &j["trades"][1];
    for key in [
        "entry_ts_ns",
        "exit_ts_ns",
        "side",
        "qty",
        "entry_price",
        "exit_price",
        "fees",
        "net_pnl",
        "entry_rule",
        "exit_reason",
    ] {
        assert!(!t[key].is_null(), "{key}: {t}");
    }
    assert_eq!(t["exit_price"].as_f64(), Some(59900.0));
    let text = ok(&premia(&["report", "--state", dir]));
    for needle in [
        "Metrics (closed trades)",
        "Profit factor",
        "By entry rule",
        "By exit reason",
        "Warning: only 3 closed trades",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

/// A backtest ending with a position open: its summary, the report's account line and its Positions table agree;
/// the report shows the market-time span and the run's end.
#[test]
fn a_backtest_records_its_span_and_end_and_every_view_agrees_on_fees_and_pnl() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("q.csv");
    let mut csv = String::from("ts_ns,market,bid,ask,bid_qty,ask_qty\n");
    for (ts, m, b, a) in [
        (0, "spot", "100.00", "100.02"),
        (0, "perp", "99.90", "100.00"),
        (S, "perp", "99.60", "99.70"),
        (2 * S, "perp", "98.90", "99.00"),
        (3 * S, "perp", "99.30", "99.40"),
        (4 * S, "perp", "99.30", "99.40"),
    ] {
        csv.push_str(&format!("{},{m},{b},{a},1.5,2.5\n", T0 + ts));
    }
    std::fs::write(&data, csv).unwrap();
    let strat = tmp.path().join("s.toml");
    std::fs::write(
        &strat,
        "name = \"held\"\nsymbol = \"BTCUSDT\"\n[[rule]]\nname = \"drop\"\n\
         when = \"change_pct(perp_mid, 2s) <= -0.5 and change(premium_bps, 2s) >= 2\"\naction = \"enter_long\"\n\
         [exit]\nmax_hold = \"1h\"\n[order]\nquantity = \"1.5\"\n",
    )
    .unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "strategy = \"unused.toml\"\n[local]\ndata = [\"unused\"]\n[filters]\ntick_size = \"0.01\"\nmin_notional = 5\n\
         [risk]\nmin_notional_usdt = 5\nmax_feed_staleness = \"10s\"\n",
    )
    .unwrap();
    let state = tmp.path().join("state").join("bt");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "--data",
            data.to_str().unwrap(),
            "--strategy",
            strat.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        premia(&args)
    };

    // A backtest that cannot start leaves no state dir behind.
    let bad_csv = tmp.path().join("no-such-dir").join("f.csv");
    let out = run(&["--fills-csv", bad_csv.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!state.exists(), "a failed start leaves nothing");

    let bt = json(&run(&["--json"]));
    let summary_text = {
        let s = state.to_str().unwrap();
        ok(&premia(&["report", "--state", s]))
    };
    let rep = json(&premia(&[
        "report",
        "--state",
        state.to_str().unwrap(),
        "--json",
    ]));
    let pos: Position = serde_json::from_value(serde_json::json!({
        "symbol": rep["positions"][0]["symbol"],
        "qty": rep["positions"][0]["qty"].to_string(),
        "entry_price": rep["positions"][0]["entry_price"].to_string(),
        "realized_pnl": rep["positions"][0]["realized_pnl"].to_string(),
        "fees": rep["positions"][0]["fees"].to_string(),
    }))
    .unwrap();
    assert_eq!(pos.qty, d("1.5"), "the position is still open");
    // Entry fee 99.00 × 1.5 × taker 0.05 %.
    assert_eq!(pos.fees, d("0.07425"));
    assert_eq!(pos.realized_pnl, d("-0.07425"));
    for (view, fees, pnl) in [
        ("backtest summary", &bt["fees"], &bt["realized_pnl"]),
        ("report", &rep["fees"], &rep["realized_pnl"]),
    ] {
        assert_eq!(fees.as_f64(), Some(0.07425), "{view} fees");
        assert_eq!(pnl.as_f64(), Some(-0.07425), "{view} realised PnL");
    }
    assert_eq!(rep["metrics"]["trades"], 0);
    assert_eq!(rep["open_trades"].as_array().map(Vec::len), Some(1));

    let meta = &rep["meta"];
    assert_eq!(meta["market_first_ts"], T0);
    assert_eq!(meta["market_last_ts"], T0 + 4 * S);
    let (start, end) = (
        meta["started_ts"].as_i64().unwrap(),
        meta["ended_ts"].as_i64().unwrap(),
    );
    assert!(
        start > T0 && end >= start,
        "wall-clock start {start} and end {end}"
    );
    assert!(!summary_text.contains("1970"), "{summary_text}");
    assert!(
        summary_text.contains(
            "Market     2024-05-01 12:00:00.000 UTC → 2024-05-01 12:00:04.000 UTC (4.0s)"
        ),
        "{summary_text}"
    );
    assert!(!summary_text.contains("no end recorded"), "{summary_text}");
    assert_eq!(meta["ended_how"], "clean");
    assert!(summary_text.contains("ended cleanly"), "{summary_text}");
    assert!(
        summary_text.contains("Realised   -0.0742 USDT net of 0.0742 USDT fees"),
        "{summary_text}"
    );
}

/// A local run of the real binary records its end; `report` on the config's folder of runs finds it.
#[test]
fn a_local_run_records_its_end_and_its_folder_of_runs_shows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/default.toml")).unwrap();
    let runs = tmp.path().join("runs");
    let text = text
        .replace(
            "state_dir = \"state/run\"",
            &format!("state_dir = {:?}", runs.display().to_string()),
        )
        .replace("speed = 10.0", "speed = 60.0");
    assert!(
        text.contains(&runs.display().to_string()),
        "state_dir replaced"
    );
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = premia(&[
        "run",
        "--max-seconds",
        "3",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    ok(&out);
    let j = json(&premia(&[
        "report",
        "--state",
        runs.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(j["chosen_from"], runs.display().to_string());
    let meta = &j["meta"];
    assert_eq!(meta["kind"], "live");
    let (start, end) = (meta["started_ts"].as_i64(), meta["ended_ts"].as_i64());
    assert!(
        matches!((start, end), (Some(s), Some(e)) if e >= s && s > T0),
        "{meta}"
    );
    assert_eq!(meta["starting_balance"].as_f64(), Some(10_000.0));
    assert_eq!(
        meta["ended_how"], "clean",
        "the time limit ends a run cleanly"
    );
    assert!(j["metrics"].is_object());
}

/// `name=value;…` of a trades-CSV cell, by name (`null` → NaN); the value follows the last `=`.
fn csv_values(cell: &str) -> Vec<(String, f64)> {
    cell.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.rsplit_once('=').expect("name=value");
            let v = if v == "null" {
                f64::NAN
            } else {
                v.parse().unwrap()
            };
            (k.to_string(), v)
        })
        .collect()
}

/// Splits one CSV line (RFC 4180 quoting) into its fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// A backtest of the bundled recording: every trade carries the values that fired its entry (they meet the entry
/// rule's thresholds) and its exit, and the premium at both, in JSON, in the text and in `--trades-csv`.
#[test]
fn every_trade_carries_the_values_that_fired_its_entry_and_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("bt");
    let csv_path = tmp.path().join("trades.csv");
    crate::support::backtest_json(&[
        "--data",
        "data/btcusdt_20240808_spot.rec.gz",
        "--data",
        "data/btcusdt_20240808_usdm.rec.gz",
        "--strategy",
        "strategies/demo_window_b.toml",
        "--state",
        state.to_str().unwrap(),
    ]);
    let dir = state.to_str().unwrap();
    let j = json(&premia(&["report", "--state", dir, "--json"]));
    let trades = j["trades"].as_array().unwrap();
    assert!(trades.len() >= 2, "the demo strategy trades: {j}");
    let drop = "change_pct(perp_mid, 30s)";
    let premium_move = "change(premium_bps, 30s)";
    for t in trades {
        let (entry, exit) = (&t["entry_values"], &t["exit_values"]);
        let value = |v: &Value, k: &str| {
            v[k].as_f64()
                .unwrap_or_else(|| panic!("{k} is a number: {t}"))
        };
        // The demo's entry rules both need a 0.05 % drop in 30 s; "premium rises" a +1 bp premium move,
        // "premium falls" a −1 bp one.
        assert!(value(entry, drop) <= -0.05, "{t}");
        match t["entry_rule"].as_str().unwrap() {
            "premium rises into a drop" => assert!(value(entry, premium_move) >= 1.0, "{t}"),
            "premium falls into a drop" => assert!(value(entry, premium_move) <= -1.0, "{t}"),
            other => panic!("unexpected entry rule {other}"),
        }
        assert_eq!(
            t["entry_premium_bps"].as_f64(),
            Some(value(entry, "premium_bps"))
        );
        assert!(t["exit_premium_bps"].is_number(), "{t}");
        let hold = value(exit, "hold_s");
        value(exit, "pnl_pct");
        if t["exit_reason"] == "max_hold" {
            assert!(hold >= 30.0, "max_hold is 30 s: {t}");
        }
    }

    let text = ok(&premia(&["report", "--state", dir, "--trades", "all"]));
    let entry_lines = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .starts_with("in  change_pct(perp_mid, 30s) = -")
        })
        .count();
    let exit_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with("out ") && l.contains("hold_s = "))
        .count();
    assert_eq!(
        (entry_lines, exit_lines),
        (trades.len(), trades.len()),
        "{text}"
    );
    assert!(text.contains(" bps\n"), "the premium is shown: {text}");

    ok(&premia(&[
        "report",
        "--state",
        dir,
        "--trades-csv",
        csv_path.to_str().unwrap(),
    ]));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let open = j["open_trades"].as_array().map_or(0, Vec::len);
    assert_eq!(rows.len(), trades.len() + open, "{csv}");
    for (row, t) in rows.iter().zip(trades) {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[col("status")], "closed");
        assert_eq!(row[col("entry_ts_ns")], t["entry_ts_ns"].to_string());
        assert_eq!(row[col("entry_rule")], t["entry_rule"].as_str().unwrap());
        assert_eq!(row[col("exit_reason")], t["exit_reason"].as_str().unwrap());
        for (cell, obj) in [
            ("entry_values", "entry_values"),
            ("exit_values", "exit_values"),
        ] {
            let values = csv_values(&row[col(cell)]);
            let expect = t[obj].as_object().unwrap();
            assert_eq!(values.len(), expect.len(), "{cell} {row:?} vs {t}");
            for (k, v) in values {
                assert_eq!(expect[&k].as_f64(), Some(v), "{cell} {k}");
            }
        }
        let premium: f64 = row[col("entry_premium_bps")].parse().unwrap();
        assert_eq!(t["entry_premium_bps"].as_f64(), Some(premium));
    }
}

const KEY_ENV: &str = "PREMIA_REPORT_IT_KEY";
const SECRET_ENV: &str = "PREMIA_REPORT_IT_SECRET";
const KEY: &str = "reportKeyQ7r2LmZp9Vt3Wn8Bc5Ds1Fg6Hj0Kl4Mn7Pq2Rs9Tu3Vw8Xy5Za1Bc6De0";
const SECRET: &str = "reportSecretJ8sL2dF6gH1jK5lZ9xC3vB7nM0qW4eR8tY2uI6oP1aS5dF9gH3jK";

/// Starts `premia run --config <cfg>` with the keys in its environment and waits (bounded) for a stderr line
/// containing `until`; returns the running child.
fn run_until_line(cfg: &Path, until: &'static str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_premia"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env(KEY_ENV, KEY)
        .env(SECRET_ENV, SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start premia run");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let hit = line.contains(until);
            if tx.send(line).is_err() || hit {
                // Keep draining so the child never blocks on a full pipe.
                continue;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(until) => return child,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no `{until}` within 60 s; stderr so far:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
}

/// A binance-mode run (its state dir is reused) killed with SIGKILL right after a fill: `report` says it ended
/// uncleanly; the next run in that state dir records it as crashed; SIGTERM ends that one cleanly, as a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_shown_uncleanly_ended_and_marked_crashed_by_the_next_run() {
    let ex = crate::support::start(premia::local_exchange::LocalExchangeConfig {
        keys: premia::local_exchange::ApiKeyPair {
            api_key: KEY.to_string(),
            secret: SECRET.to_string(),
        },
        loop_replay: true,
        ..crate::support::head2000(1.0, 2)
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crate::support::BinanceConfig {
        key_env: KEY_ENV,
        secret_env: SECRET_ENV,
        timeout_ms: 5000,
        exchange: "",
        risk: "max_feed_staleness = \"3s\"\n",
        tail: "",
    }
    .write(
        &ex,
        tmp.path(),
        &crate::support::always_long("always-long", "1h"),
        "premia.toml",
    );
    let state = tmp.path().join("state");
    let dir = state.to_str().unwrap().to_string();
    let report = move |json_out: bool| {
        let mut args = vec!["report", "--state", dir.as_str()];
        if json_out {
            args.push("--json");
        }
        premia(&args)
    };

    let cfg2 = cfg.clone();
    let first_started = tokio::task::spawn_blocking(move || {
        let mut child = run_until_line(&cfg2, "fill client_id");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed: {status:?}");
    });
    first_started.await.unwrap();
    let report2 = report.clone();
    let (j, text) =
        tokio::task::spawn_blocking(move || (json(&report2(true)), ok(&report2(false))))
            .await
            .unwrap();
    assert!(
        j["meta"]["ended_ts"].is_null() && j["meta"]["ended_how"].is_null(),
        "{}",
        j["meta"]
    );
    assert!(
        text.contains("ended uncleanly (no end recorded: the process died or is still running)"),
        "{text}"
    );
    let first_start = j["meta"]["started_ts"].as_i64().unwrap();

    let cfg2 = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let mut child = run_until_line(&cfg2, "user stream connected");
        let pid = child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "SIGTERM stops premia cleanly: {status:?}");
    })
    .await
    .unwrap();
    let (j, text) = tokio::task::spawn_blocking(move || (json(&report(true)), ok(&report(false))))
        .await
        .unwrap();
    let meta = &j["meta"];
    assert_eq!(meta["ended_how"], "signal", "{meta}");
    assert!(meta["ended_ts"].is_i64(), "{meta}");
    let prev = &j["previous_runs"][0];
    assert_eq!(prev["started_ts"].as_i64(), Some(first_start), "{j}");
    assert_eq!(prev["ended_how"], "crashed", "{prev}");
    assert!(prev["ended_ts"].is_null(), "{prev}");
    assert!(
        prev["crash_detected_ts"].as_i64() >= meta["started_ts"].as_i64(),
        "found when the second run opened the state dir: {j}"
    );
    assert!(
        text.contains("ended by a signal (SIGINT/SIGTERM), cleanly"),
        "{text}"
    );
    assert!(
        text.contains("Earlier    live run") && text.contains("crashed: its process died"),
        "{text}"
    );
}
