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

/// Quotes both markets at `mid` at t=0, takes the entry that must follow and fills it at `mid`.
fn enter_and_fill(e: &mut Engine, mid: &str, what: &str) -> OrderRecord {
    feed(e, quote(0, Venue::Spot, mid));
    let rec = placed(&feed(e, quote(0, Venue::Perp, mid)))
        .expect(what)
        .clone();
    feed(e, fill_of(&rec, 0, mid));
    rec
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
    assert!(
        j.note.starts_with("max_order_notional: order notional"),
        "{}",
        j.note
    );
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

fn engine_with(src: &str, limits: impl FnOnce(&mut RiskLimits)) -> Engine {
    let mut e = engine(src);
    let mut risk = e.cfg.risk.clone();
    limits(&mut risk);
    let cfg = EngineConfig {
        risk,
        ..e.cfg.clone()
    };
    e = Engine::new(e.strategy.clone(), cfg);
    e
}

fn book(ts: i64, venue: Venue, bid: &str, ask: &str) -> Event {
    Event::Market(MarketEvent {
        ts,
        kind: MarketKind::Quote(Quote {
            venue,
            bid: d(bid),
            ask: d(ask),
            bid_qty: Decimal::ONE,
            ask_qty: Decimal::ONE,
        }),
    })
}

fn journal_of(actions: &[Action], kind: JournalKind) -> Vec<&JournalEntry> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Journal(j) if j.kind == kind => Some(j),
            _ => None,
        })
        .collect()
}

const ALWAYS_LONG: &str = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "enter_long"
[exit]
max_hold = "5s"
[order]
quantity = "0.010"
"#;

#[test]
fn exits_pass_the_order_rate_and_count_in_its_window() {
    let mut e = engine_with(ALWAYS_LONG, |r| r.max_orders_per_minute = 1);
    enter_and_fill(&mut e, "100", "entry");
    // The window is full (the entry at t=0): the max_hold exit at t=5 s goes out anyway.
    let exit = placed(&feed(&mut e, quote(5 * S, Venue::Perp, "100")))
        .expect("exit not rate-limited")
        .clone();
    assert_eq!(exit.request.rule, "max_hold");
    feed(&mut e, fill_of(&exit, 5 * S, "100"));
    // Flat: the entry rule is true at every event but the window is full: one denial episode.
    let mut denials = 0;
    for t in 6..60 {
        let out = feed(&mut e, quote(t * S, Venue::Perp, "100"));
        assert!(placed(&out).is_none(), "t={t}");
        denials += journal_of(&out, JournalKind::RiskDenied).len();
    }
    assert_eq!(denials, 1);
    // At t=60 s the entry left the window, but the exit sent at 5 s still fills it: exits count for entries.
    assert!(placed(&feed(&mut e, quote(60 * S, Venue::Perp, "100"))).is_none());
    assert!(placed(&feed(&mut e, quote(64 * S, Venue::Perp, "100"))).is_none());
    assert!(placed(&feed(&mut e, quote(65 * S, Venue::Perp, "100"))).is_some());
    assert_eq!(e.stats().denials, 1);
    assert_eq!(e.stats().rule_fires, [2]);
    assert_eq!(e.stats().exit_reasons, [1, 0, 0, 0]);
}

#[test]
fn rule_counts_equal_the_decisions_journalled() {
    let mut e = engine_with(ALWAYS_LONG, |r| r.max_orders_per_minute = 3);
    let mut journal = Vec::new();
    let mut pending: Option<OrderRecord> = None;
    for t in 0..300 {
        for ev in [
            quote(t * S, Venue::Spot, "100"),
            quote(t * S, Venue::Perp, "100"),
        ] {
            let out = feed(&mut e, ev);
            pending = placed(&out).cloned().or(pending);
            journal.extend(out.into_iter().filter_map(|a| match a {
                Action::Journal(j) => Some(j),
                _ => None,
            }));
        }
        if let Some(rec) = pending.take() {
            for a in feed(&mut e, fill_of(&rec, t * S, "100")) {
                if let Action::Journal(j) = a {
                    journal.push(j);
                }
            }
        }
    }
    let count = |kind: JournalKind, rule: &str| {
        journal
            .iter()
            .filter(|j| j.kind == kind && (rule.is_empty() || j.rule == rule))
            .count() as u64
    };
    let counts = e.rule_counts();
    assert_eq!(
        counts[0],
        ("in".to_string(), count(JournalKind::Decision, "in"))
    );
    assert_eq!(
        counts[1],
        (
            "[exit] max_hold".to_string(),
            count(JournalKind::Decision, "max_hold")
        )
    );
    assert_eq!(e.stats().orders, count(JournalKind::Decision, ""));
    assert_eq!(e.stats().denials, count(JournalKind::RiskDenied, ""));
    assert!(
        e.stats().denials > 0 && e.stats().orders > 4,
        "{:?}",
        e.stats()
    );
}

#[test]
fn degraded_while_a_quote_is_stale_and_back_when_fresh() {
    let src = ALWAYS_LONG.replace("5s", "6s");
    let mut e = engine_with(&src, |r| r.max_feed_staleness_ns = 5 * S);
    assert_eq!(e.trading_state(), TradingState::Degraded, "no quotes yet");
    feed(&mut e, quote(0, Venue::Spot, "100"));
    let rec = placed(&feed(&mut e, quote(0, Venue::Perp, "100")))
        .expect("entry when both are fresh")
        .clone();
    assert_eq!(e.trading_state(), TradingState::Active);
    feed(&mut e, fill_of(&rec, 0, "100"));
    // Spot silent: at 5 s its quote is at the limit (fresh), 1 ns later stale.
    assert!(journal_of(
        &feed(&mut e, quote(5 * S, Venue::Perp, "100")),
        JournalKind::TradingState
    )
    .is_empty());
    assert_eq!(e.trading_state(), TradingState::Active);
    let out = feed(&mut e, quote(5 * S + 1, Venue::Perp, "100"));
    let states = journal_of(&out, JournalKind::TradingState);
    assert_eq!(states.len(), 1, "{out:?}");
    assert_eq!(states[0].action, "DEGRADED");
    assert_eq!(states[0].note, "last spot quote 5000 ms old (max 5000 ms)");
    assert_eq!(e.trading_state(), TradingState::Degraded);
    // Exits still run while DEGRADED: max_hold (6 s) fires.
    let out = feed(&mut e, quote(6 * S, Venue::Perp, "100"));
    let exit = placed(&out).expect("exit").clone();
    assert_eq!(exit.request.rule, "max_hold");
    feed(&mut e, fill_of(&exit, 6 * S, "100"));
    // Flat and DEGRADED: the entry rule is true but no entry is decided (and no denial is journalled).
    let out = feed(&mut e, quote(7 * S, Venue::Perp, "100"));
    assert!(out.is_empty(), "{out:?}");
    // Time passing alone (live clock ticks) keeps it DEGRADED; the spot quote brings it back.
    assert!(feed(&mut e, Event::Clock(8 * S)).is_empty());
    let out = feed(&mut e, quote(9 * S, Venue::Spot, "100"));
    let states = journal_of(&out, JournalKind::TradingState);
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].action, "ACTIVE");
    assert_eq!(e.trading_state(), TradingState::Active);
    assert!(placed(&out).is_some(), "entries resume: {out:?}");
    assert_eq!(e.stats().denials, 0);
}

#[test]
fn degraded_while_a_feed_is_down_even_with_fresh_quotes() {
    let mut e = engine_with(ALWAYS_LONG, |r| r.max_feed_staleness_ns = 5 * S);
    enter_and_fill(&mut e, "100", "entry");
    let out = feed(&mut e, Event::FeedDown(Venue::Perp, S));
    assert_eq!(
        journal_of(&out, JournalKind::TradingState)[0].note,
        "perp feed down"
    );
    assert_eq!(e.trading_state(), TradingState::Degraded);
    // A clock tick while the feed is down: the position's max_hold exit still goes out.
    let out = feed(&mut e, Event::Clock(5 * S));
    let exit = placed(&out).expect("exit while DEGRADED").clone();
    feed(&mut e, fill_of(&exit, 5 * S, "100"));
    // The feed is back but its last quote is 5.5 s old: still DEGRADED.
    assert!(journal_of(
        &feed(&mut e, Event::FeedUp(Venue::Perp, 5 * S + S / 2)),
        JournalKind::TradingState
    )
    .is_empty());
    assert_eq!(e.trading_state(), TradingState::Degraded);
    assert!(placed(&feed(&mut e, quote(6 * S, Venue::Spot, "100"))).is_none());
    // A perp quote: connected and fresh → ACTIVE, and the entry rule fires on that event.
    let out = feed(&mut e, quote(6 * S, Venue::Perp, "100"));
    assert_eq!(e.trading_state(), TradingState::Active);
    assert!(placed(&out).is_some());
    // Down again, briefly: DEGRADED at once, ACTIVE again on FeedUp (quotes are fresh).
    let mut e2 = engine_with(ALWAYS_LONG, |r| r.max_feed_staleness_ns = 5 * S);
    feed(&mut e2, quote(0, Venue::Spot, "100"));
    feed(&mut e2, Event::FeedDown(Venue::Spot, 0));
    assert!(placed(&feed(&mut e2, quote(0, Venue::Perp, "100"))).is_none());
    assert_eq!(e2.trading_state(), TradingState::Degraded);
    feed(&mut e2, Event::FeedUp(Venue::Spot, S));
    assert_eq!(e2.trading_state(), TradingState::Active);
    assert!(placed(&feed(&mut e2, quote(2 * S, Venue::Perp, "100"))).is_some());
}

const PREMIUM_RISES: &str = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "premium rises"
when = "change(premium_bps, 20s) >= 15"
action = "enter_long"
[order]
quantity = "0.010"
"#;

/// The issue's soak in small: the spot feed goes silent for 7 s (limit 5 s) while the perp falls. Before the gap the
/// premium was −20 bps, after it 0: a 20 s window spanning the gap would show a +20 bps "move" that never happened.
#[test]
fn a_feed_gap_creates_no_signal() {
    let mut e = engine_with(PREMIUM_RISES, |r| r.max_feed_staleness_ns = 5 * S);
    let mut entries = Vec::new();
    let mut step = |e: &mut Engine, ev: Event| {
        entries.extend(placed(&feed(e, ev)).map(|r| r.request.decided_ts));
    };
    for t in 0..=30 {
        step(&mut e, quote(t * S, Venue::Spot, "99.8"));
        step(&mut e, quote(t * S, Venue::Perp, "100"));
    }
    // Spot silent after 30 s. Perp quotes until 35 s still pair a spot mid ≤ 5 s old.
    for t in 31..=35 {
        step(&mut e, quote(t * S, Venue::Perp, "100"));
    }
    let samples = e.stats().samples;
    // The perp falls while the spot quote is stale: no sample pairs it.
    for ms in [35_500, 36_000, 36_500] {
        step(&mut e, quote(ms * 1_000_000, Venue::Perp, "99.8"));
    }
    assert_eq!(
        e.stats().samples,
        samples,
        "no sample with a stale spot mid"
    );
    assert_eq!(e.trading_state(), TradingState::Degraded);
    // The spot comes back at 37 s (premium now 0). A 20 s window would span the gap until 57 s: undefined.
    for t in 37..=56 {
        step(&mut e, quote(t * S, Venue::Spot, "99.8"));
        step(&mut e, quote(t * S, Venue::Perp, "99.8"));
        let mut values = Vec::new();
        e.signals
            .rule_values(&e.strategy, 0, e.now, &Context::flat(), &mut values);
        assert!(values[0].1.is_nan(), "t={t}: {values:?}");
    }
    assert_eq!(e.trading_state(), TradingState::Active);
    // A real +20 bps move at 56 s: the window is not warm yet (19 s after the gap) → nothing.
    step(&mut e, quote(56 * S + 1, Venue::Spot, "100"));
    // At 57 s (20 s after the gap) the window holds only samples after it: the real move fires.
    step(&mut e, quote(57 * S, Venue::Perp, "99.8"));
    assert_eq!(entries, [57 * S]);
}

/// The same data with a staleness limit longer than the gap: the gap is no gap, and the move across it fires.
#[test]
fn a_silence_within_the_staleness_limit_is_no_gap() {
    let mut e = engine_with(PREMIUM_RISES, |r| r.max_feed_staleness_ns = 10 * S);
    for t in 0..=30 {
        feed(&mut e, quote(t * S, Venue::Spot, "99.8"));
        feed(&mut e, quote(t * S, Venue::Perp, "100"));
    }
    let out = feed(&mut e, quote(36 * S, Venue::Perp, "99.8"));
    assert!(placed(&out).is_some(), "{out:?}");
}

#[test]
fn limit_prices_start_at_the_own_touch_and_move_toward_the_other_side() {
    // Bid 60000.0, ask 60000.1, tick 0.1. 1 bp of 60000 is 6.
    let cases = [
        ("enter_long", "-1", "59994.0"),
        ("enter_long", "0", "60000.0"),
        ("enter_long", "1", "60006.0"),
        ("enter_short", "-1", "60006.2"), // 60006.10001 rounded up (sells round away from the bid)
        ("enter_short", "0", "60000.1"),
        ("enter_short", "1", "59994.1"), // 59994.09999 rounded up
    ];
    for (action, off, price) in cases {
        let src = format!(
            "{}type = \"limit\"\nlimit_offset_bps = {off}\n",
            ALWAYS_LONG.replace("enter_long", action)
        );
        let mut e = engine(&src);
        feed(&mut e, book(0, Venue::Spot, "60000.0", "60000.1"));
        let out = feed(&mut e, book(0, Venue::Perp, "60000.0", "60000.1"));
        let rec = placed(&out).unwrap_or_else(|| panic!("{action} {off}: {out:?}"));
        assert_eq!(rec.request.order_type, OrderType::Limit);
        assert_eq!(rec.request.price, Some(d(price)), "{action} at {off} bps");
        let spec = &e.strategy().order;
        let raw = spec.limit_price(rec.request.side, d("60000.0"), d("60000.1"));
        assert_eq!(e.cfg.filters.round_price(raw, rec.request.side), d(price));
    }
}

/// `pnl_pct` exactly at a threshold: the built-in exits and a rule on `pnl_pct` fire on the same event.
#[test]
fn pnl_pct_and_built_in_exits_agree_at_the_exact_tie() {
    let builtin = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "{SIDE}"
[exit]
take_profit_pct = 0.05
stop_loss_pct = 0.05
[order]
quantity = "0.010"
"#;
    let rules = r#"
name = "t"
symbol = "BTCUSDT"
[[rule]]
name = "in"
when = "perp_mid > 0"
action = "{SIDE}"
[[rule]]
name = "tp"
when = "pnl_pct >= 0.05"
action = "exit"
[[rule]]
name = "sl"
when = "pnl_pct <= -0.05"
action = "exit"
[order]
quantity = "0.010"
"#;
    // (side, perp mid just inside, mid at the tie, exit expected) with the entry at 60000.
    let cases = [
        ("enter_long", "60029.9", "60030", ("take_profit", "tp")),
        ("enter_long", "59970.1", "59970", ("stop_loss", "sl")),
        ("enter_short", "59970.1", "59970", ("take_profit", "tp")),
        ("enter_short", "60029.9", "60030", ("stop_loss", "sl")),
    ];
    for (side, inside, tie, (builtin_name, rule_name)) in cases {
        for (src, expect) in [(builtin, builtin_name), (rules, rule_name)] {
            let mut e = engine(&src.replace("{SIDE}", side));
            enter_and_fill(&mut e, "60000", "entry");
            let out = feed(&mut e, quote(S, Venue::Perp, inside));
            assert!(
                placed(&out).is_none(),
                "{side} {expect} at {inside}: {out:?}"
            );
            let out = feed(&mut e, quote(2 * S, Venue::Perp, tie));
            let exit = placed(&out).unwrap_or_else(|| panic!("{side} {expect} at {tie}"));
            assert_eq!(exit.request.rule, expect);
            let j = journal_of(&out, JournalKind::Decision);
            let pnl = j[0].values.iter().find(|(k, _)| k == "pnl_pct").unwrap().1;
            assert_eq!(pnl.abs(), 0.05, "{side} {expect}");
        }
    }
    assert_eq!(pnl_pct(d("1"), d("60000"), d("60030")), 0.05);
    assert_eq!(pnl_pct(d("-1"), d("60000"), d("60030")), -0.05);
    assert!(pnl_pct(Decimal::ZERO, d("60000"), d("60030")).is_nan());
}

#[test]
fn a_hold_until_defers_every_decision_to_its_end() {
    let mut e = engine(DROP_LONG);
    feed(&mut e, quote(0, Venue::Spot, "100"));
    feed(&mut e, quote(0, Venue::Perp, "100"));
    // The exchange's ban window is open until 30 s: the rule is true at 10 s but nothing is decided.
    assert!(placed(&feed(
        &mut e,
        Event::Control(Control::HoldUntil(30 * S), 5 * S)
    ))
    .is_none());
    assert!(placed(&feed(&mut e, quote(10 * S, Venue::Perp, "99"))).is_none());
    assert!(placed(&feed(&mut e, quote(30 * S - 1, Venue::Perp, "98"))).is_none());
    // A shorter hold never shortens a longer one.
    feed(&mut e, Event::Control(Control::HoldUntil(20 * S), 29 * S));
    let out = feed(&mut e, quote(30 * S, Venue::Perp, "97"));
    assert!(placed(&out).is_some(), "decided once the window closed");
}
