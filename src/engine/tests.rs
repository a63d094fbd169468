//! Engine semantics on scripted events with a manual clock (the events' timestamps).

use std::str::FromStr;

use super::*;
use crate::market::Quote;
use crate::model::Venue;

const S: i64 = NS_PER_S;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn engine(src: &str) -> Engine {
    let strategy = crate::strategy::parse_str(src, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    Engine::new(
        strategy,
        EngineConfig {
            filters: SymbolFilters {
                min_notional: Decimal::ZERO,
                ..SymbolFilters::default()
            },
            risk: RiskLimits {
                min_notional: Decimal::ZERO,
                max_feed_staleness_ns: 3600 * S,
                max_orders_per_minute: 1000,
                ..RiskLimits::default()
            },
            client_id_prefix: "t-".into(),
            taker_fee_rate: d("0.0005"),
            maker_fee_rate: d("0.0002"),
        },
    )
}

fn quote(ts: i64, venue: Venue, mid: &str) -> Event {
    let m = d(mid);
    let half = d("0.05");
    Event::Market(MarketEvent {
        ts,
        kind: MarketKind::Quote(Quote {
            venue,
            bid: m - half,
            ask: m + half,
            bid_qty: Decimal::ONE,
            ask_qty: Decimal::ONE,
        }),
    })
}

/// Feeds an event, returns the actions.
fn feed(e: &mut Engine, ev: Event) -> Vec<Action> {
    let mut out = Vec::new();
    e.on_event(&ev, &mut out);
    out
}

fn placed(actions: &[Action]) -> Option<&OrderRecord> {
    actions.iter().find_map(|a| match a {
        Action::Place(r) => Some(r),
        _ => None,
    })
}

fn fill_of(rec: &OrderRecord, ts: i64, price: &str) -> Event {
    let f = Fill {
        ts,
        client_id: rec.request.client_id.clone(),
        symbol: rec.request.symbol.clone(),
        side: rec.request.side,
        qty: rec.request.qty,
        price: d(price),
        fee: Decimal::ZERO,
        trade_id: Some(ts),
        rule: String::new(),
    };
    Event::Order(OrderUpdate {
        ts,
        client_id: rec.request.client_id.clone(),
        symbol: rec.request.symbol.clone(),
        exchange_id: Some(1),
        state: OrderState::Filled,
        fill: Some(f),
        cum_qty: rec.request.qty,
        avg_price: Some(d(price)),
        reason: None,
    })
}

const DROP_LONG: &str = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "drop"
when = "change(perp_mid, 10s) <= -1"
action = "enter_long"
[exit]
max_hold = "5s"
[order]
quantity = "0.010"
"#;

#[test]
fn warm_up_then_window_edge() {
    let mut e = engine(DROP_LONG);
    assert!(feed(&mut e, quote(0, Venue::Spot, "100")).is_empty());
    assert!(feed(&mut e, quote(0, Venue::Perp, "100")).is_empty()); // first sample at t=0
                                                                    // 5 s in: dropped by 1 but the 10 s window is still warming up.
    assert!(placed(&feed(&mut e, quote(5 * S, Venue::Perp, "99"))).is_none());
    // Just before the window is warm.
    assert!(placed(&feed(&mut e, quote(10 * S - 1, Venue::Perp, "99"))).is_none());
    // Exactly W after the first sample: x_old is the sample at t=0 (ts >= now - W, inclusive) → fires.
    let out = feed(&mut e, quote(10 * S, Venue::Spot, "100"));
    let rec = placed(&out).expect("entry at the window edge");
    assert_eq!(rec.request.side, Side::Buy);
    assert_eq!(rec.request.rule, "drop");
    assert_eq!(rec.request.decided_ts, 10 * S);
    assert_eq!(rec.request.client_id, "t-1");
    // The order comes first, then its journal entry with the values that fired the rule.
    assert!(matches!(out[0], Action::Place(_)), "{out:?}");
    let Action::Journal(j) = &out[1] else {
        panic!("journal after the order: {out:?}")
    };
    assert_eq!(j.kind, JournalKind::Decision);
    assert!(
        j.values
            .iter()
            .any(|(k, v)| k.starts_with("change(perp_mid") && (*v + 1.0).abs() < 1e-9),
        "{:?}",
        j.values
    );
}

#[test]
fn window_drops_samples_older_than_w() {
    let mut e = engine(DROP_LONG);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    feed(&mut e, quote(0, Venue::Perp, "101"));
    feed(&mut e, quote(S, Venue::Perp, "100"));
    // At t = 11 s the t=0 sample (101) is outside; the oldest in the window is t=1 s (100): change = -0.5.
    assert!(placed(&feed(&mut e, quote(11 * S, Venue::Perp, "99.5"))).is_none());
    // At t = 10 s the t=0 sample is inside: change = 99.5 - 101 = -1.5 would fire; check with a fresh engine.
    let mut e = engine(DROP_LONG);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    feed(&mut e, quote(0, Venue::Perp, "101"));
    feed(&mut e, quote(S, Venue::Perp, "100"));
    assert!(placed(&feed(&mut e, quote(10 * S, Venue::Perp, "99.5"))).is_some());
}

#[test]
fn pending_blocks_new_actions_and_max_hold_counts_from_decision() {
    let mut e = engine(DROP_LONG);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    feed(&mut e, quote(0, Venue::Perp, "100"));
    let out = feed(&mut e, quote(10 * S, Venue::Perp, "99"));
    let rec = placed(&out).unwrap().clone();
    // While the order is in flight nothing else is decided, even though the rule is still true.
    assert!(placed(&feed(&mut e, quote(11 * S, Venue::Perp, "98.9"))).is_none());
    assert!(e.pending().is_some());
    // Filled later; the hold counts from the decision (t=10 s), not the fill (t=12 s).
    let out = feed(&mut e, fill_of(&rec, 12 * S, "99.05"));
    assert!(out.iter().any(|a| matches!(a, Action::Filled { .. })));
    assert_eq!(e.position().qty, d("0.010"));
    assert_eq!(e.position().opened_ts, Some(10 * S));
    assert!(placed(&feed(&mut e, quote(15 * S - 1, Venue::Perp, "99"))).is_none());
    let out = feed(&mut e, quote(15 * S, Venue::Perp, "99"));
    let exit = placed(&out).expect("max_hold exit");
    assert_eq!(exit.request.rule, "max_hold");
    assert!(exit.request.reduce_only);
    assert_eq!(exit.request.side, Side::Sell);
    assert_eq!(exit.request.qty, d("0.010"));
}

#[test]
fn exits_are_checked_before_entries() {
    let src = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "always long"
when = "perp_mid > 0"
action = "enter_long"
[[rule]]
name = "get out"
when = "premium_bps > 50"
action = "exit"
[order]
quantity = "0.010"
"#;
    let mut e = engine(src);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let out = feed(&mut e, quote(0, Venue::Perp, "100"));
    let rec = placed(&out).expect("entry").clone();
    feed(&mut e, fill_of(&rec, 0, "100.05"));
    // Entry rule still true, exit rule true too: the exit wins.
    let out = feed(&mut e, quote(S, Venue::Spot, "101"));
    let exit = placed(&out).expect("exit");
    assert_eq!(exit.request.rule, "get out");
    assert_eq!(exit.request.side, Side::Sell);
    let exit = exit.clone();
    feed(&mut e, fill_of(&exit, S, "99.95"));
    assert!(e.position().is_flat());
    // Flat again: the entry rule fires again on the next event.
    assert!(placed(&feed(&mut e, quote(2 * S, Venue::Spot, "100"))).is_some());
}

#[test]
fn first_matching_rule_in_file_order_wins() {
    let src = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "short first"
when = "perp_mid > 0"
action = "enter_short"
[[rule]]
name = "long second"
when = "perp_mid > 0"
action = "enter_long"
[order]
quantity = "0.010"
"#;
    let mut e = engine(src);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let out = feed(&mut e, quote(0, Venue::Perp, "100"));
    let rec = placed(&out).unwrap();
    assert_eq!(rec.request.side, Side::Sell);
    assert_eq!(rec.request.rule, "short first");
    assert_eq!(
        out.iter().filter(|a| matches!(a, Action::Place(_))).count(),
        1
    );
}

#[test]
fn fill_reported_by_rest_and_stream_is_booked_once() {
    let src = DROP_LONG.replace("change(perp_mid, 10s) <= -1", "perp_mid > 0");
    let mut e = engine(&src);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let out = feed(&mut e, quote(0, Venue::Perp, "100"));
    let rec = placed(&out).unwrap().clone();
    // REST RESULT: FILLED, cumulative qty and average price, no trade detail.
    let rest = Event::Order(OrderUpdate {
        ts: 1,
        client_id: rec.request.client_id.clone(),
        symbol: "BTCUSDT".into(),
        exchange_id: Some(7),
        state: OrderState::Filled,
        fill: None,
        cum_qty: d("0.010"),
        avg_price: Some(d("100.05")),
        reason: None,
    });
    let out = feed(&mut e, rest);
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Action::Filled { .. }))
            .count(),
        1
    );
    // The same execution again from the user-data stream.
    let out = feed(&mut e, fill_of(&rec, 2, "100.05"));
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Action::Filled { .. }))
            .count(),
        0,
        "{out:?}"
    );
    assert_eq!(e.position().qty, d("0.010"));
    assert_eq!(e.stats().fills, 1);
}

#[test]
fn take_profit_and_stop_loss_on_perp_mid() {
    let src = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "enter_short"
[exit]
take_profit_pct = 1.0
stop_loss_pct = 0.5
[order]
notional_usdt = 1000
"#;
    let mut e = engine(src);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let out = feed(&mut e, quote(0, Venue::Perp, "100"));
    let rec = placed(&out).unwrap_or_else(|| panic!("{out:?}")).clone();
    // 1000 USDT at the bid 99.95 → 10.005 → rounded down to the 0.001 step.
    assert_eq!(rec.request.qty, d("10.005"));
    feed(&mut e, fill_of(&rec, 0, "100"));
    // Short from 100: mid 100.4 is -0.4 % → nothing; 100.5 is -0.5 % → stop loss.
    assert!(placed(&feed(&mut e, quote(S, Venue::Perp, "100.4"))).is_none());
    let out = feed(&mut e, quote(2 * S, Venue::Perp, "100.5"));
    assert_eq!(placed(&out).unwrap().request.rule, "stop_loss");
}

#[test]
fn risk_denial_is_journalled_not_sent() {
    let src = DROP_LONG
        .replace("change(perp_mid, 10s) <= -1", "perp_mid > 0")
        .replace("0.010", "100");
    let mut e = engine(&src);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let out = feed(&mut e, quote(0, Venue::Perp, "100"));
    assert!(placed(&out).is_none());
    let Some(Action::Journal(j)) = out.first() else {
        panic!("{out:?}")
    };
    assert_eq!(j.kind, JournalKind::RiskDenied);
    assert_eq!(j.risk, "max_order_notional");
    assert!(j.note.starts_with("max_order_notional: order notional"), "{}", j.note);
    // The rule stays true and stays denied: one episode, not journalled or counted again, however long it lasts.
    for t in 1..100 {
        assert!(feed(&mut e, quote(t * S, Venue::Perp, "100")).is_empty());
    }
    assert_eq!(e.stats().denials, 1);
}

#[test]
fn a_denial_episode_ends_when_the_rule_goes_false() {
    let src = DROP_LONG
        .replace("change(perp_mid, 10s) <= -1", "perp_mid > 100")
        .replace("0.010", "100");
    let mut e = engine(&src);
    let denied = |out: &[Action]| {
        out.iter()
            .filter(|a| matches!(a, Action::Journal(j) if j.kind == JournalKind::RiskDenied))
            .count()
    };
    feed(&mut e, quote(0, Venue::Spot, "101"));
    assert_eq!(denied(&feed(&mut e, quote(0, Venue::Perp, "101"))), 1);
    assert_eq!(denied(&feed(&mut e, quote(S, Venue::Perp, "101"))), 0);
    // The rule goes false for one event: the episode ends; true again is a new denial.
    assert_eq!(denied(&feed(&mut e, quote(2 * S, Venue::Perp, "99"))), 0);
    assert_eq!(denied(&feed(&mut e, quote(3 * S, Venue::Perp, "101"))), 1);
    assert_eq!(denied(&feed(&mut e, quote(4 * S, Venue::Perp, "101"))), 0);
    assert_eq!(e.stats().denials, 2);
    assert_eq!(e.stats().rule_fires, [0]);
}

#[test]
fn trades_advance_the_clock_for_max_hold() {
    let src = DROP_LONG.replace("change(perp_mid, 10s) <= -1", "perp_mid > 0");
    let mut e = engine(&src);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let out = feed(&mut e, quote(0, Venue::Perp, "100"));
    let rec = placed(&out).unwrap().clone();
    feed(&mut e, fill_of(&rec, 0, "100"));
    let trade = Event::Market(MarketEvent {
        ts: 5 * S,
        kind: MarketKind::Trade(crate::market::Trade {
            venue: Venue::Perp,
            price: d("100"),
            qty: d("1"),
            taker_side: Side::Buy,
        }),
    });
    assert_eq!(
        placed(&feed(&mut e, trade)).unwrap().request.rule,
        "max_hold"
    );
}
