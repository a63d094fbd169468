//! Integration tests: the sled state store (reopen, crash in a child process, duplicates, corruption) and reports.

use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use premia::model::{
    Decimal, Fill, JournalEntry, JournalKind, OrderRecord, OrderRequest, OrderState, OrderType,
    Position, Side,
};
use premia::report::Report;
use premia::store::{Durability, RunKind, RunMeta, Store, StoreError};
use serde_json::Value;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn request(id: &str, side: Side, qty: &str, ts: i64, rule: &str) -> OrderRequest {
    OrderRequest {
        client_id: id.to_string(),
        symbol: "BTCUSDT".into(),
        side,
        order_type: OrderType::Market,
        qty: d(qty),
        price: None,
        reduce_only: side == Side::Sell,
        rule: rule.into(),
        decided_ts: ts,
    }
}

fn with_state(
    mut o: OrderRecord,
    state: OrderState,
    filled: &str,
    px: Option<&str>,
) -> OrderRecord {
    o.state = state;
    o.filled_qty = d(filled);
    o.avg_price = px.map(d);
    o
}

fn fill(
    ts: i64,
    id: &str,
    side: Side,
    qty: &str,
    price: &str,
    trade_id: Option<i64>,
    rule: &str,
) -> Fill {
    Fill {
        ts,
        client_id: id.into(),
        symbol: "BTCUSDT".into(),
        side,
        qty: d(qty),
        price: d(price),
        fee: d("0.24"),
        trade_id,
        rule: rule.into(),
    }
}

fn decision(ts: i64, rule: &str, action: &str, client: &str) -> JournalEntry {
    JournalEntry {
        ts,
        kind: JournalKind::Decision,
        rule: rule.into(),
        action: action.into(),
        values: vec![("premium_bps".into(), 2.5), ("perp_mid".into(), 60000.0)],
        risk: "approved".into(),
        client_id: Some(client.into()),
        note: String::new(),
    }
}

fn meta() -> RunMeta {
    RunMeta {
        kind: RunKind::Backtest,
        strategy_name: "premium-divergence".into(),
        strategy_file: "strategies/premium_divergence.toml".into(),
        symbol: "BTCUSDT".into(),
        started_ts: 1_714_564_800_000_000_000,
        ended_ts: None,
        ended_how: None,
        crash_detected_ts: None,
        market_first_ts: None,
        market_last_ts: None,
        starting_balance: None,
        config_path: Some("config/default.toml".into()),
        data_inputs: vec!["data/btcusdt.rec.gz".into()],
        exchange: Some("simulated".into()),
        premia_version: "0.1.0".into(),
    }
}

/// One write to the store, so a scenario can be replayed on a store and on an in-memory model.
#[derive(Clone)]
enum Op {
    Meta(RunMeta),
    Order(OrderRecord),
    Fill(Fill),
    Position(Position),
    Journal(JournalEntry),
    Flush,
}

fn apply(store: &Store, op: &Op) {
    match op {
        Op::Meta(m) => store.put_meta(m).unwrap(),
        Op::Order(o) => store.put_order(o).unwrap(),
        Op::Fill(f) => {
            store.add_fill(f).unwrap();
        }
        Op::Position(p) => store.put_position(p).unwrap(),
        Op::Journal(j) => {
            store.append_journal(j).unwrap();
        }
        Op::Flush => store.flush().unwrap(),
    }
}

/// What a store should contain after some writes.
#[derive(Debug, Default, PartialEq)]
struct Snapshot {
    meta: Option<RunMeta>,
    orders: Vec<OrderRecord>,
    fills: Vec<Fill>,
    positions: Vec<Position>,
    journal: Vec<JournalEntry>,
}

fn model(ops: &[Op]) -> Snapshot {
    let mut s = Snapshot::default();
    for op in ops {
        match op {
            Op::Meta(m) => s.meta = Some(m.clone()),
            Op::Order(o) => match s
                .orders
                .iter_mut()
                .find(|x| x.request.client_id == o.request.client_id)
            {
                Some(x) => *x = o.clone(),
                None => s.orders.push(o.clone()),
            },
            Op::Fill(f) => s.fills.push(f.clone()),
            Op::Position(p) => match s.positions.iter_mut().find(|x| x.symbol == p.symbol) {
                Some(x) => *x = p.clone(),
                None => s.positions.push(p.clone()),
            },
            Op::Journal(j) => s.journal.push(j.clone()),
            Op::Flush => {}
        }
    }
    s.positions.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    s
}

fn snapshot(store: &Store) -> Snapshot {
    Snapshot {
        meta: store.meta().unwrap(),
        orders: store.orders().unwrap(),
        fills: store.fills().unwrap(),
        positions: store.positions().unwrap(),
        journal: store.journal().unwrap(),
    }
}

/// A long round trip and a short entry still open: what a live run writes, in order. The Intent writes are the
/// points a `Sync` store makes durable.
fn scenario() -> Vec<Op> {
    let buy = OrderRecord::new(request(
        "pm-1-entry",
        Side::Buy,
        "0.010",
        1_000,
        "premium rises into a drop",
    ));
    let sell = OrderRecord::new(request(
        "pm-2-exit",
        Side::Sell,
        "0.010",
        61_000,
        "max_hold",
    ));
    let short = OrderRecord::new(request(
        "pm-3-entry",
        Side::Sell,
        "0.020",
        90_000,
        "premium falls into a drop",
    ));
    let mut pos = Position::flat("BTCUSDT");
    let mut steps = vec![
        Op::Meta(meta()),
        Op::Journal(decision(
            1_000,
            "premium rises into a drop",
            "enter_long",
            "pm-1-entry",
        )),
        Op::Order(buy.clone()),
        Op::Order(with_state(buy.clone(), OrderState::Sent, "0", None)),
        Op::Fill(fill(
            1_500,
            "pm-1-entry",
            Side::Buy,
            "0.010",
            "60000.0",
            Some(11),
            "premium rises into a drop",
        )),
        Op::Order(with_state(
            buy,
            OrderState::Filled,
            "0.010",
            Some("60000.0"),
        )),
    ];
    pos.apply_fill(Side::Buy, d("0.010"), d("60000.0"), d("0.24"));
    pos.opened_ts = Some(1_000);
    steps.push(Op::Position(pos.clone()));
    steps.push(Op::Journal(decision(
        61_000,
        "max_hold",
        "exit",
        "pm-2-exit",
    )));
    steps.push(Op::Order(sell.clone()));
    steps.push(Op::Fill(fill(
        61_200,
        "pm-2-exit",
        Side::Sell,
        "0.010",
        "60100.0",
        Some(12),
        "max_hold",
    )));
    steps.push(Op::Order(with_state(
        sell,
        OrderState::Filled,
        "0.010",
        Some("60100.0"),
    )));
    pos.apply_fill(Side::Sell, d("0.010"), d("60100.0"), d("0.24"));
    steps.push(Op::Position(pos.clone()));
    steps.push(Op::Journal(JournalEntry {
        ts: 80_000,
        kind: JournalKind::RiskDenied,
        rule: "premium falls into a drop".into(),
        action: "enter_short".into(),
        values: vec![],
        risk: "max_orders_per_minute".into(),
        client_id: None,
        note: String::new(),
    }));
    steps.push(Op::Journal(decision(
        90_000,
        "premium falls into a drop",
        "enter_short",
        "pm-3-entry",
    )));
    steps.push(Op::Order(short.clone()));
    steps.push(Op::Order(with_state(
        short.clone(),
        OrderState::PartiallyFilled,
        "0.005",
        Some("60050.0"),
    )));
    steps.push(Op::Fill(fill(
        90_100,
        "pm-3-entry",
        Side::Sell,
        "0.005",
        "60050.0",
        None,
        "premium falls into a drop",
    )));
    pos.apply_fill(Side::Sell, d("0.005"), d("60050.0"), d("0.24"));
    pos.opened_ts = Some(90_000);
    steps.push(Op::Position(pos));
    steps
}

/// Index of the last op a `Sync` store has made durable (the last Intent write), plus one.
fn durable_prefix_sync(ops: &[Op]) -> usize {
    ops.iter()
        .rposition(|op| matches!(op, Op::Order(o) if o.state == OrderState::Intent))
        .map_or(0, |i| i + 1)
}

fn durable_prefix_lazy(ops: &[Op]) -> usize {
    ops.iter()
        .rposition(|op| matches!(op, Op::Flush))
        .map_or(0, |i| i + 1)
}

/// The Lazy crash scenario: the first half, an explicit flush, then the rest.
fn lazy_scenario() -> Vec<Op> {
    let mut ops = scenario();
    ops.insert(9, Op::Flush);
    ops
}

const CHILD_ENV: &str = "PREMIA_STORE_CRASH_CHILD";

/// Not a test of its own: the child process of the crash tests. It writes a scenario and aborts without flushing
/// or dropping the store. Runs only when re-executed with `--ignored` and the env var set.
#[test]
#[ignore = "child process of the crash tests; runs only when they start it"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, dir) = spec.split_once('|').expect("mode|dir");
    let (durability, ops) = match mode {
        "sync" => (Durability::Sync, scenario()),
        _ => (Durability::Lazy, lazy_scenario()),
    };
    let store = Store::open_with(Path::new(dir), durability).unwrap();
    for op in &ops {
        apply(&store, op);
    }
    println!("crash-child: wrote {} ops, aborting", ops.len());
    std::process::abort();
}

fn run_crashing_child(mode: &str, dir: &Path) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "store::crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}|{}", dir.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("crash-child: wrote"),
        "child did not run the scenario: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "child should have aborted");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "child should die of SIGABRT: {:?}",
            out.status
        );
    }
}

/// After a crash the store holds exactly the state after some prefix of the writes — never less than the durable
/// point, never a torn or partial mixture.
fn assert_recovered_prefix(dir: &Path, ops: &[Op], durable: usize) -> usize {
    let store = Store::open(dir).unwrap();
    let got = snapshot(&store);
    let matched = (durable..=ops.len())
        .rev()
        .find(|&k| model(&ops[..k]) == got);
    match matched {
        Some(k) => k,
        None => panic!(
            "recovered state is not the state after any prefix ≥ {durable} of {} writes:\n{got:#?}\nexpected at least:\n{:#?}",
            ops.len(),
            model(&ops[..durable])
        ),
    }
}

#[test]
fn crash_after_sync_intent_keeps_everything_up_to_the_intent() {
    let dir = tempfile::tempdir().unwrap();
    let ops = scenario();
    run_crashing_child("sync", dir.path());
    let durable = durable_prefix_sync(&ops);
    assert!(durable > 0 && durable < ops.len());
    let k = assert_recovered_prefix(dir.path(), &ops, durable);
    // The intent of the last order is on disk and it is listed as open, so a restart can resolve it.
    let store = Store::open(dir.path()).unwrap();
    let open = store.open_orders().unwrap();
    assert!(
        open.iter().any(|o| o.request.client_id == "pm-3-entry"),
        "open orders after crash (prefix {k}): {open:?}"
    );
    assert!(store
        .order("pm-1-entry")
        .unwrap()
        .is_some_and(|o| o.state == OrderState::Filled));
}

#[test]
fn crash_of_a_lazy_store_keeps_what_was_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let ops = lazy_scenario();
    run_crashing_child("lazy", dir.path());
    let durable = durable_prefix_lazy(&ops);
    assert!(durable > 0);
    assert_recovered_prefix(dir.path(), &ops, durable);
}

#[test]
fn reopen_after_drop_gives_identical_state_and_continues_sequences() {
    for durability in [Durability::Lazy, Durability::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let ops = scenario();
        {
            let store = Store::open_with(dir.path(), durability).unwrap();
            for op in &ops {
                apply(&store, op);
            }
            store.put_meta_value("note", "first run").unwrap();
        }
        let store = Store::open_with(dir.path(), durability).unwrap();
        assert_eq!(snapshot(&store), model(&ops));
        assert_eq!(
            store.meta_value("note").unwrap().as_deref(),
            Some("first run")
        );
        let open: Vec<_> = store
            .open_orders()
            .unwrap()
            .into_iter()
            .map(|o| o.request.client_id)
            .collect();
        assert_eq!(open, ["pm-3-entry"]);
        let pos = store.position("BTCUSDT").unwrap().unwrap();
        assert_eq!((pos.qty, pos.entry_price), (d("-0.005"), d("60050.0")));
        assert_eq!(store.realized_pnl().unwrap(), d("1") - d("0.72"));

        // New writes after a reopen go after the old ones, not over them.
        let later = fill(
            100_000,
            "pm-4",
            Side::Buy,
            "0.005",
            "60000",
            Some(99),
            "exit",
        );
        assert!(store.add_fill(&later).unwrap());
        let j = decision(100_000, "take_profit", "exit", "pm-4");
        store.append_journal(&j).unwrap();
        store
            .put_order(&OrderRecord::new(request(
                "pm-0-late",
                Side::Buy,
                "0.005",
                100_000,
                "take_profit",
            )))
            .unwrap();
        assert_eq!(store.fills().unwrap().last(), Some(&later));
        assert_eq!(store.fills().unwrap().len(), 4);
        assert_eq!(store.journal().unwrap().last(), Some(&j));
        assert_eq!(
            store
                .orders()
                .unwrap()
                .last()
                .map(|o| o.request.client_id.clone())
                .as_deref(),
            Some("pm-0-late")
        );
    }
}

#[test]
fn duplicate_fills_are_counted_once_even_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let by_id = fill(1, "pm-1", Side::Buy, "0.010", "60000", Some(7), "r");
    let no_id = fill(2, "pm-2", Side::Buy, "0.010", "60000.0", None, "r");
    {
        let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
        assert!(store.add_fill(&by_id).unwrap());
        // Same trade id arriving again (REST result, then user stream), even with a different timestamp.
        let mut again = by_id.clone();
        again.ts = 5;
        assert!(!store.add_fill(&again).unwrap());
        assert!(store.add_fill(&no_id).unwrap());
        // Without a trade id: same client id, ts, qty and price (scale does not matter).
        let mut same = no_id.clone();
        same.price = d("60000");
        same.qty = d("0.01");
        assert!(!store.add_fill(&same).unwrap());
        // A second partial fill of the same order at another price is a different fill.
        let mut other = no_id.clone();
        other.price = d("60000.1");
        assert!(store.add_fill(&other).unwrap());
        assert_eq!(store.fills().unwrap().len(), 3);
    }
    let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
    assert!(!store.add_fill(&by_id).unwrap());
    assert!(!store.add_fill(&no_id).unwrap());
    assert_eq!(store.fills().unwrap().len(), 3);
}

#[test]
fn corrupt_and_future_records_give_errors_naming_tree_and_key() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
        for op in scenario() {
            apply(&store, &op);
        }
    }
    {
        // Damage the stored bytes behind the store's back.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("fills")
            .unwrap()
            .insert(2u64.to_be_bytes(), &b"\x01{\"ts\": tru"[..])
            .unwrap();
        db.open_tree("positions")
            .unwrap()
            .insert("BTCUSDT", &b"\x07{}"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.fills().unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { tree: "fills", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("#2"), "{err}");
    let err = store.positions().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnknownVersion {
                tree: "positions",
                version: 7,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("BTCUSDT"), "{err}");
    // Undamaged trees still read, and a report says what is wrong instead of panicking.
    assert_eq!(store.orders().unwrap().len(), 3);
    let err = Report::load(&store).unwrap_err();
    assert!(err.to_string().contains("record"), "{err}");
}

#[test]
fn a_state_dir_in_use_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is in use by another premia process"),
        "{err}"
    );
}

fn report_of_scenario() -> (tempfile::TempDir, Report) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Durability::Lazy).unwrap();
    for op in scenario() {
        apply(&store, &op);
    }
    let report = Report::load(&store).unwrap();
    (dir, report)
}

#[test]
fn report_json_has_the_documented_shape() {
    let (_dir, report) = report_of_scenario();
    let j = report.to_json();
    assert!(j.is_object());

    let pos = &j["positions"][0];
    assert_eq!(pos["symbol"], "BTCUSDT");
    assert_eq!(pos["qty"].as_f64(), Some(-0.005));
    assert_eq!(pos["entry_price"].as_f64(), Some(60050.0));

    let orders = j["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 3);
    assert_eq!(orders[0]["client_id"], "pm-1-entry");
    assert_eq!(orders[0]["side"], "BUY");
    assert_eq!(orders[0]["qty"].as_f64(), Some(0.01));
    assert_eq!(orders[0]["state"], "FILLED");
    assert_eq!(orders[2]["side"], "SELL");
    assert_eq!(orders[2]["state"], "PARTIALLY_FILLED");
    assert_eq!(j["open_orders"], 1);

    let fills = j["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 3);
    let f = &fills[1];
    assert_eq!(f["ts_ns"], 61_200);
    assert_eq!(f["symbol"], "BTCUSDT");
    assert_eq!(f["side"], "SELL");
    assert_eq!(f["qty"].as_f64(), Some(0.01));
    assert_eq!(f["price"].as_f64(), Some(60100.0));
    assert_eq!(f["fee"].as_f64(), Some(0.24));
    assert_eq!(f["rule"], "max_hold");
    assert_eq!(f["client_id"], "pm-2-exit");

    // Positions: +1 gross on the long, three fees of 0.24.
    assert!(
        (j["realized_pnl"].as_f64().unwrap() - 0.28).abs() < 1e-9,
        "{}",
        j["realized_pnl"]
    );
    let trades = j["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0]["side"], "BUY");
    assert_eq!(trades[0]["entry_rule"], "premium rises into a drop");
    assert!((trades[0]["net_pnl"].as_f64().unwrap() - 0.52).abs() < 1e-9);
    assert_eq!(trades[0]["exit_reason"], "max_hold");
    assert_eq!(trades[0]["entry_price"].as_f64(), Some(60000.0));
    assert_eq!(trades[0]["exit_price"].as_f64(), Some(60100.0));
    assert_eq!(j["open_trades"].as_array().map(Vec::len), Some(1));
    // The account's figures are the positions': every fee paid, the open trade's entry fee included.
    assert_eq!(j["fees"], pos["fees"]);
    assert_eq!(j["realized_pnl"], pos["realized_pnl"]);
    assert!((j["fees"].as_f64().unwrap() - 0.72).abs() < 1e-9);
    // Metrics cover the closed trade.
    let m = &j["metrics"];
    assert_eq!(
        (m["trades"].as_u64(), m["wins"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(m["win_rate"].as_f64(), Some(1.0));
    assert!((m["fees"].as_f64().unwrap() - 0.48).abs() < 1e-9);
    assert!((m["net_pnl"].as_f64().unwrap() - 0.52).abs() < 1e-9);
    assert_eq!(m["max_drawdown"].as_f64(), Some(0.0));
    assert_eq!(j["state_dir"], report.dir.display().to_string());
    assert_eq!(j["meta"]["kind"], "backtest");
    assert_eq!(j["meta"]["strategy_name"], "premium-divergence");
    assert_eq!(j["decisions"]["max_hold"], 1);
    assert_eq!(j["risk_denials"]["max_orders_per_minute"], 1);
    // Round trip through text: it is one valid JSON document.
    let text = serde_json::to_string(&j).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, j);
}

#[test]
fn report_text_shows_run_positions_trades_and_counts() {
    let (_dir, report) = report_of_scenario();
    let text = report.render_text();
    for needle in [
        "backtest · strategy premium-divergence (strategies/premium_divergence.toml) · BTCUSDT",
        "2024-05-01 12:00:00.000 UTC",
        "-0.005",
        "60050",
        "LONG",
        "SHORT",
        "premium rises into a drop",
        "+0.5200",
        "win rate 100.0%",
        "max_orders_per_minute",
        "pm-3-entry SELL 0.02 BTCUSDT [PARTIALLY_FILLED]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("Decimal") && !text.contains("Some("),
        "debug noise in:\n{text}"
    );
}
