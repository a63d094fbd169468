//! Integration tests: rules — the strategy language and its rolling windows, fed scripted samples.

use std::path::Path;
use std::str::FromStr;

use premia::model::{Decimal, OrderType, Side};
use premia::signal::{Sample, SeriesId, SERIES_COUNT};
use premia::strategy::{
    load_file, parse_str, Context, OrderSize, RuleAction, Signals, Strategy, StrategyError, Tri,
};

const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// An arbitrary epoch offset so nothing depends on timestamps starting at 0.
const T0: i64 = 1_723_161_254_000_000_000;

/// A strategy with one entry rule per `when` (rule i = `when[i]`).
fn strat(whens: &[&str]) -> Strategy {
    let mut src = String::from("name = \"t\"\nsymbol = \"BTCUSDT\"\n[order]\nquantity = 1\n");
    for (i, w) in whens.iter().enumerate() {
        src.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nwhen = '{w}'\naction = \"enter_long\"\n"
        ));
    }
    parse_str(&src, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn sample(ts: i64, pairs: &[(SeriesId, f64)]) -> Sample {
    let mut values = [f64::NAN; SERIES_COUNT];
    for &(id, v) in pairs {
        values[id as usize] = v;
    }
    Sample { ts, values }
}

/// Feeds `(seconds after T0, perp_mid)` samples.
fn feed_perp(sig: &mut Signals, pts: &[(f64, f64)]) {
    for &(t, v) in pts {
        let ts = T0 + (t * S as f64).round() as i64;
        sig.on_sample(&sample(ts, &[(SeriesId::PerpMid, v)]));
    }
}

/// The value of the rule's first labelled term (a function call or series) at `now`.
fn value(s: &Strategy, sig: &Signals, rule: usize, now: i64) -> f64 {
    let mut out = Vec::new();
    sig.rule_values(s, rule, now, &Context::flat(), &mut out);
    out[0].1
}

fn at(secs: f64) -> i64 {
    T0 + (secs * S as f64).round() as i64
}

#[test]
fn issue_example_parses_exactly_as_written() {
    let src = r#"name = "premium-divergence"
symbol = "BTCUSDT"                 # the perp traded; the spot leg has the same symbol unless spot_symbol is set

[[rule]]
name = "premium rises into a drop"
when = "change_pct(perp_mid, 300s) <= -0.30 and change(premium_bps, 300s) >= 2"
action = "enter_long"

[[rule]]
name = "premium falls into a drop"
when = "change_pct(perp_mid, 300s) <= -0.30 and change(premium_bps, 300s) <= -2"
action = "enter_short"

[exit]
max_hold = "60s"                   # also: take_profit_pct, stop_loss_pct; rules with action = "exit" are allowed

[order]
quantity = "0.010"                 # or notional_usdt = 1000
"#;
    let s = parse_str(src, "issue.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.name, "premium-divergence");
    assert_eq!(s.symbol, "BTCUSDT");
    assert_eq!(s.spot_symbol, "BTCUSDT");
    assert_eq!(s.rules.len(), 2);
    assert_eq!(s.rules[0].name, "premium rises into a drop");
    assert_eq!(s.rules[0].action, RuleAction::EnterLong);
    assert_eq!(s.rules[1].action, RuleAction::EnterShort);
    assert_eq!(s.rules[1].action.as_str(), "enter_short");
    assert_eq!(
        s.rules[0].when,
        "change_pct(perp_mid, 300s) <= -0.30 and change(premium_bps, 300s) >= 2"
    );
    assert_eq!(s.exit.max_hold_ns, Some(60 * S));
    assert_eq!(s.exit.take_profit_pct, None);
    assert_eq!(
        s.order.size,
        OrderSize::Quantity(Decimal::new(10, 3)),
        "quantity kept exact"
    );
    assert_eq!(s.order.order_type, OrderType::Market);
    assert_eq!(s.entry_rules().collect::<Vec<_>>(), [0, 1]);

    // And it trades as the issue says: a 0.30 % drop with +2 bps premium within 300 s fires the long rule.
    let mut sig = Signals::new(&s);
    let mk = |t: i64, perp: f64, prem: f64| {
        sample(
            T0 + t * S,
            &[(SeriesId::PerpMid, perp), (SeriesId::PremiumBps, prem)],
        )
    };
    sig.on_sample(&mk(0, 60_000.0, 5.0));
    sig.on_sample(&mk(299, 59_820.0, 7.0)); // −0.30 %, +2 bps, but still warming up (299 s < 300 s)
    assert!(!sig.eval_rule(&s, 0, T0 + 299 * S, &Context::flat()));
    sig.on_sample(&mk(300, 59_820.0, 7.0));
    assert!(sig.eval_rule(&s, 0, T0 + 300 * S, &Context::flat()));
    assert!(!sig.eval_rule(&s, 1, T0 + 300 * S, &Context::flat()));
    let mut vals = Vec::new();
    sig.rule_values(&s, 0, T0 + 300 * S, &Context::flat(), &mut vals);
    let names: Vec<&str> = vals.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["change_pct(perp_mid, 300s)", "change(premium_bps, 300s)"]
    );
    assert!((vals[0].1 - -0.30).abs() < 1e-9);
    assert!((vals[1].1 - 2.0).abs() < 1e-9);
}

#[test]
fn window_edges_are_inclusive_at_now_minus_w() {
    let s = strat(&["change(perp_mid, 10s) > -1000"]);
    let mut sig = Signals::new(&s);
    feed_perp(&mut sig, &[(0.0, 100.0), (5.0, 103.0), (10.0, 107.0)]);
    // now = 10 s: the sample at exactly now − W = 0 s is the oldest in the window.
    assert_eq!(value(&s, &sig, 0, at(10.0)), 7.0);
    // 1 ns later it is out; the oldest is the one at 5 s.
    sig.advance(at(10.0) + 1);
    assert_eq!(value(&s, &sig, 0, at(10.0) + 1), 4.0);
}

#[test]
fn warm_up_until_now_minus_first_reaches_w() {
    let s = strat(&["change(perp_mid, 10s) >= 0"]);
    let mut sig = Signals::new(&s);
    let flat = Context::flat();
    assert!(
        !sig.eval_rule(&s, 0, at(0.0), &flat),
        "no sample at all: undefined"
    );
    feed_perp(&mut sig, &[(0.0, 100.0), (9.999, 100.0)]);
    assert!(!sig.eval_rule(&s, 0, at(9.999), &flat));
    assert_eq!(sig.rule_truth(0, at(9.999), &flat), Tri::Unknown);
    sig.advance(at(10.0) - 1);
    assert!(!sig.eval_rule(&s, 0, at(10.0) - 1, &flat));
    sig.advance(at(10.0));
    assert!(
        sig.eval_rule(&s, 0, at(10.0), &flat),
        "defined at exactly W after the first sample"
    );
}

#[test]
fn change_and_change_pct_values() {
    let s = strat(&["change(perp_mid, 4s) > 0", "change_pct(perp_mid, 4s) > 0"]);
    let mut sig = Signals::new(&s);
    feed_perp(
        &mut sig,
        &[(0.0, 200.0), (1.0, 210.0), (2.0, 190.0), (4.0, 180.0)],
    );
    assert_eq!(value(&s, &sig, 0, at(4.0)), -20.0);
    assert!((value(&s, &sig, 1, at(4.0)) - -10.0).abs() < 1e-12);
    feed_perp(&mut sig, &[(5.5, 199.5)]);
    // Window [1.5 s, 5.5 s]: oldest is the sample at 2 s (190).
    assert_eq!(value(&s, &sig, 0, at(5.5)), 9.5);
    assert!((value(&s, &sig, 1, at(5.5)) - 5.0).abs() < 1e-12);
}

#[test]
fn mean_min_max_zscore_values() {
    let s = strat(&[
        "mean(perp_mid, 10s) > 0",
        "min(perp_mid, 10s) > 0",
        "max(perp_mid, 10s) > 0",
        "zscore(perp_mid, 10s) > 0",
    ]);
    let mut sig = Signals::new(&s);
    let pts = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    for (i, v) in pts.iter().enumerate() {
        feed_perp(&mut sig, &[(i as f64, *v)]);
    }
    // Not warm yet at 7 s (W = 10 s).
    assert!(value(&s, &sig, 0, at(7.0)).is_nan());
    sig.advance(at(10.0));
    // Window [0 s, 10 s] holds all eight: mean 5, population sd 2, min 2, max 9, z(9) = 2.
    assert_eq!(value(&s, &sig, 0, at(10.0)), 5.0);
    assert_eq!(value(&s, &sig, 1, at(10.0)), 2.0);
    assert_eq!(value(&s, &sig, 2, at(10.0)), 9.0);
    assert!((value(&s, &sig, 3, at(10.0)) - 2.0).abs() < 1e-12);
    // The 2.0 at 0 s leaves: {4,4,4,5,5,7,9}.
    sig.advance(at(10.5));
    assert_eq!(value(&s, &sig, 1, at(10.5)), 4.0);
    assert!((value(&s, &sig, 0, at(10.5)) - 38.0 / 7.0).abs() < 1e-12);
    // Shared state: the four functions use one (perp_mid, 10s) buffer and agree after many samples.
    for i in 0..1_000 {
        feed_perp(&mut sig, &[(11.0 + i as f64 * 0.01, 3.0)]);
    }
    let now = at(11.0 + 999.0 * 0.01);
    assert_eq!(value(&s, &sig, 0, now), 3.0);
    assert!(
        value(&s, &sig, 3, now).is_nan(),
        "zero deviation: zscore undefined"
    );
}

#[test]
fn advance_beyond_the_last_sample_empties_windows() {
    let s = strat(&["change(perp_mid, 5s) == 0", "not (mean(perp_mid, 5s) > 0)"]);
    let mut sig = Signals::new(&s);
    let flat = Context::flat();
    feed_perp(&mut sig, &[(0.0, 1.0), (5.0, 1.0)]);
    assert!(sig.eval_rule(&s, 0, at(5.0), &flat));
    // A trade/mark event later than the last sample: the window keeps the sample at 5 s until 10 s.
    sig.advance(at(10.0));
    assert!(sig.eval_rule(&s, 0, at(10.0), &flat));
    sig.advance(at(10.0) + 1);
    assert!(value(&s, &sig, 0, at(10.0) + 1).is_nan());
    assert!(!sig.eval_rule(&s, 0, at(10.0) + 1, &flat));
    assert!(
        !sig.eval_rule(&s, 1, at(10.0) + 1, &flat),
        "not undefined is undefined"
    );
    // The next sample refills it.
    feed_perp(&mut sig, &[(11.0, 2.0)]);
    assert_eq!(value(&s, &sig, 0, at(11.0)), 0.0);
}

#[test]
fn episodes_count_separate_rising_edges_and_forget_them() {
    let s = strat(&["episodes(perp_mid > 100, 10s) >= 2"]);
    let mut sig = Signals::new(&s);
    let flat = Context::flat();
    // Rising edges at 1 s and 4 s; 2 s (still true) is not a new episode.
    feed_perp(
        &mut sig,
        &[
            (0.0, 100.0),
            (1.0, 101.0),
            (2.0, 102.0),
            (3.0, 99.0),
            (4.0, 101.0),
            (5.0, 100.0),
        ],
    );
    assert!(value(&s, &sig, 0, at(5.0)).is_nan(), "warm-up of 10 s");
    sig.advance(at(10.0));
    assert_eq!(value(&s, &sig, 0, at(10.0)), 2.0);
    assert!(sig.eval_rule(&s, 0, at(10.0), &flat));
    sig.advance(at(11.0));
    assert_eq!(
        value(&s, &sig, 0, at(11.0)),
        2.0,
        "edge at 1 s is at now − W"
    );
    sig.advance(at(11.0) + 1);
    assert_eq!(value(&s, &sig, 0, at(11.0) + 1), 1.0);
    assert!(!sig.eval_rule(&s, 0, at(11.0) + 1, &flat));
    sig.advance(at(14.5));
    assert_eq!(value(&s, &sig, 0, at(14.5)), 0.0);
}

#[test]
fn episodes_first_sample_counts_and_undefined_is_not_true() {
    let s = strat(&[
        "episodes(change(perp_mid, 2s) > 0, 5s) >= 0",
        "episodes(perp_mid > 0, 5s) > 0",
    ]);
    let mut sig = Signals::new(&s);
    // Inner change() is undefined for 2 s (no edges), then true from 2 s on: one edge, at 2 s.
    feed_perp(
        &mut sig,
        &[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (5.0, 5.0)],
    );
    assert_eq!(value(&s, &sig, 0, at(5.0)), 1.0);
    // Rule 1: true at the very first sample counts as a rising edge.
    assert_eq!(value(&s, &sig, 1, at(5.0)), 1.0);
}

#[test]
fn nested_episodes_update_inner_first() {
    // Inner: perp_mid > 100 episodes within 2 s; outer: times that count reached 2, within 20 s.
    let s = strat(&["episodes(episodes(perp_mid > 100, 2s) >= 2, 20s) > 0"]);
    let mut sig = Signals::new(&s);
    let mut pts = Vec::new();
    for i in 0..40 {
        // Toggles every 0.5 s: edges at 0.5, 1.5, 2.5, …
        let v = if i % 2 == 1 { 101.0 } else { 99.0 };
        pts.push((i as f64 * 0.5, v));
    }
    feed_perp(&mut sig, &pts);
    // Inner reaches 2 at 2.0 s (edges at 0.5 and 1.5, both ≥ now − 2) and stays ≥ 2 afterwards: one outer episode.
    assert!(
        value(&s, &sig, 0, at(19.5)).is_nan(),
        "outer warm-up is 20 s"
    );
    sig.advance(at(20.0));
    assert_eq!(value(&s, &sig, 0, at(20.0)), 1.0);
}

#[test]
fn kleene_logic_with_not_and_or() {
    // mark_price is NaN (no mark event yet): every comparison with it is undefined.
    let s = strat(&[
        "mark_price > 0 or perp_mid > 0",        // undefined or true  = true
        "mark_price > 0 and perp_mid > 0",       // undefined and true = undefined → false
        "not (mark_price > 0) and perp_mid < 0", // undefined and false = false
        "not (mark_price > 0 and perp_mid < 0)", // not (undefined and false) = not false = true
        "not (mark_price > 0)",                  // not undefined = undefined → false
        "mark_price > 0 or perp_mid < 0",        // undefined or false = undefined
        "perp_mid / 0 > 1 or true",              // division by zero is undefined; or true = true
        "pnl_pct > 1 or hold_s >= 0",            // both undefined when flat
    ]);
    let mut sig = Signals::new(&s);
    feed_perp(&mut sig, &[(0.0, 5.0)]);
    let now = at(0.0);
    let flat = Context::flat();
    let t = |r| sig.rule_truth(r, now, &flat);
    assert_eq!(t(0), Tri::True);
    assert_eq!(t(1), Tri::Unknown);
    assert_eq!(t(2), Tri::False);
    assert_eq!(t(3), Tri::True);
    assert_eq!(t(4), Tri::Unknown);
    assert_eq!(t(5), Tri::Unknown);
    assert_eq!(t(6), Tri::True);
    assert_eq!(t(7), Tri::Unknown);
    assert!(sig.eval_rule(&s, 3, now, &flat));
    assert!(!sig.eval_rule(&s, 4, now, &flat));
    let open = Context {
        pnl_pct: 0.5,
        hold_s: 12.0,
    };
    assert_eq!(sig.rule_truth(7, now, &open), Tri::True);
    let mut vals = Vec::new();
    sig.rule_values(&s, 7, now, &open, &mut vals);
    assert_eq!(
        vals,
        [("pnl_pct".to_string(), 0.5), ("hold_s".to_string(), 12.0)]
    );
}

#[test]
fn operator_precedence() {
    let s = strat(&[
        "1 + 2 * 3 == 7",
        "(1 + 2) * 3 == 9",
        "-2 * -3 == 6",
        "10 - 4 - 3 == 3",
        "8 / 4 / 2 == 1",
        "true or false and false", // or < and: true or (false and false)
        "not false and false",     // (not false) and false = false
        "not 1 > 2",               // not binds looser than comparison: not (1 > 2)
        "1.5e-3 * 1000 == 1.5",
        "- perp_mid == -5",
    ]);
    let mut sig = Signals::new(&s);
    feed_perp(&mut sig, &[(0.0, 5.0)]);
    let flat = Context::flat();
    let got: Vec<bool> = (0..s.rules.len())
        .map(|r| sig.eval_rule(&s, r, at(0.0), &flat))
        .collect();
    assert_eq!(
        got,
        [true, true, true, true, true, true, false, true, true, true]
    );
}

#[test]
fn identical_calls_share_state_across_rules() {
    let s = strat(&[
        "change(perp_mid, 3s) > 0",
        "change(perp_mid, 3s) < 0 or max(perp_mid, 3s) > 1",
    ]);
    let mut a = Signals::new(&s);
    feed_perp(&mut a, &[(0.0, 1.0), (1.0, 2.0), (3.0, 4.0)]);
    let mut v0 = Vec::new();
    let mut v1 = Vec::new();
    a.rule_values(&s, 0, at(3.0), &Context::flat(), &mut v0);
    a.rule_values(&s, 1, at(3.0), &Context::flat(), &mut v1);
    assert_eq!(v0[0], v1[0]);
    assert_eq!(v1[1], ("max(perp_mid, 3s)".to_string(), 4.0));
}

fn problems(src: &str) -> Vec<String> {
    match parse_str(src, "strategies/x.toml") {
        Ok(_) => panic!("expected problems"),
        Err(e) => {
            let lines: Vec<String> = e.problems().iter().map(|p| p.to_string()).collect();
            assert_eq!(
                e.to_string(),
                lines.join("\n"),
                "Display lists every problem"
            );
            lines
        }
    }
}

#[test]
fn all_problems_reported_at_once_with_file_rule_and_column() {
    let src = r#"name = "x"
symbol = "BTCUSDT"
colour = "red"

[[rule]]
name = "premium rises"
when = "change_pct(perp_mid, 300s) <= -0.30 and change(premium_bps, 300s) >= 2"
action = "enter_long"

[[rule]]
name = "premium falls"
when = "change_pct(perp_mid, 300s) <= -0.30 and change(premum_bps, 300s) <= -2 and foo(1) > 0"
action = "enter_shrot"

[[rule]]
name = "broken"
when = "perp_mid > (1"
action = "exit"

[exits]
max_hold = "60s"

[order]
quantity = "0.010"
notional_usdt = 1000
"#;
    let err = parse_str(src, "strategies/x.toml").unwrap_err();
    let text = err.to_string();
    let ps = err.problems();
    assert!(ps.len() >= 6, "{text}");
    let find = |needle: &str| {
        ps.iter()
            .find(|p| p.to_string().contains(needle))
            .unwrap_or_else(|| panic!("no problem containing {needle:?} in:\n{text}"))
    };
    let p = find("premum_bps");
    assert_eq!(p.file, "strategies/x.toml");
    assert_eq!(p.rule.as_deref(), Some("premium falls"));
    assert_eq!(p.key, "rule[2].when");
    assert_eq!(p.column, Some(48));
    assert_eq!(p.line, Some(12));
    let shown = p.to_string();
    assert!(shown.starts_with(
        "strategies/x.toml: rule \"premium falls\" (rule[2].when) col 48: unknown series `premum_bps` (did you mean `premium_bps`?)"
    ), "{shown}");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2].find('^'), Some(4 + 47), "caret under column 48");
    assert_eq!(lines[2].trim(), "^".repeat("premum_bps".len()));
    assert_eq!(find("unknown function `foo`").column, Some(76));
    assert!(find("enter_shrot")
        .message
        .contains("did you mean `enter_short`"));
    assert!(find("enter_shrot")
        .message
        .contains("enter_long, enter_short, exit"));
    assert_eq!(find("(rule[3].when)").column, Some(14));
    let p = find("colour");
    assert_eq!(
        (p.key.as_str(), p.line, p.column),
        ("colour", Some(3), Some(1))
    );
    let p = find("exits");
    assert!(p.message.contains("did you mean `exit`"), "{}", p.message);
    assert!(find("exactly one").key == "order");
}

#[test]
fn more_file_problems() {
    let ps = problems("symbol = \"btcusdt\"\n[[rule]]\nname = \"a\"\naction = \"exit\"\nwhen = \"perp_mid > 1\"\n[exit]\ntake_profit_pc = 1\nstop_loss_pct = -2\nmax_hold = \"60\"\n[order]\nquantity = 0\ntype = \"ioc\"\nlimit_timeout = \"5s\"\n");
    let all = ps.join("\n");
    for needle in [
        "missing `name`",
        "(symbol)",
        "no entry rule",
        "(exit.take_profit_pc) line 7 col 1: unknown key `take_profit_pc` (did you mean `take_profit_pct`?)",
        "(exit.stop_loss_pct) line 8",
        "must be positive",
        "(exit.max_hold)",
        "has no unit",
        "(order.quantity)",
        "unknown order type \"ioc\"; valid: market, limit",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let all = problems("name = \"x\"\nsymbol = \"BTCUSDT\"\n[[rule]]\nname = \"a\"\n[[rule]]\nwhen = \"1 > 0\"\naction = \"enter_long\"\n[order]\nnotional_usdt = \"abc\"\n").join("\n");
    for needle in [
        "(rule[1].action)",
        "(rule[1].when)",
        "(rule[2].name)",
        "not a number",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let all = problems("name = \"x\"\nsymbol = \"BTCUSDT\"\n[order]\nquantity = 1\n").join("\n");
    assert!(all.contains("no rules"), "{all}");
    let syntax = problems("name = \"x\nsymbol = \n");
    assert!(syntax[0].contains("line 1 col"), "{syntax:?}");
    assert!(syntax[0].contains("TOML syntax error"), "{syntax:?}");
    let dup = problems("name=\"x\"\nsymbol=\"BTCUSDT\"\n[[rule]]\nname=\"a\"\nwhen=\"true\"\naction=\"enter_long\"\n[[rule]]\nname=\"a\"\nwhen=\"true\"\naction=\"exit\"\n[order]\nquantity=1\ntype=\"market\"\nlimit_offset_bps=2\n").join("\n");
    assert!(dup.contains("duplicate rule name"), "{dup}");
    assert!(dup.contains("limit orders only"), "{dup}");
}

#[test]
fn order_and_exit_options() {
    let s = parse_str(
        r#"name = "x"
symbol = "BTCUSDT"
spot_symbol = "BTCFDUSD"
description = "d"
[[rule]]
name = "a"
when = """perp_mid > 1
   and premium_bps > 0"""
action = "enter_short"
[[rule]]
name = "out"
when = "pnl_pct <= -0.5 or hold_s > 30"
action = "exit"
[exit]
max_hold = "1.5m"
take_profit_pct = "0.25"
stop_loss_pct = 1e-1
[order]
notional_usdt = 1_000
type = "limit"
limit_offset_bps = -1.5
limit_timeout = "500ms"
"#,
        "x.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.spot_symbol, "BTCFDUSD");
    assert_eq!(s.description, "d");
    assert_eq!(s.exit.max_hold_ns, Some(90 * S));
    assert_eq!(s.exit.take_profit_pct, Some(Decimal::new(25, 2)));
    assert_eq!(s.exit.stop_loss_pct, Some(Decimal::new(1, 1)));
    assert_eq!(s.order.size, OrderSize::NotionalUsdt(Decimal::from(1000)));
    assert_eq!(s.order.order_type, OrderType::Limit);
    assert_eq!(s.order.limit_offset_bps, Decimal::new(-15, 1));
    assert_eq!(s.order.limit_timeout_ns, Some(500 * MS));
    assert_eq!(s.exit_rules().collect::<Vec<_>>(), [1]);
    assert_eq!(RuleAction::EnterShort.entry_side(), Some(Side::Sell));
    // Limit price: own touch moved by the offset toward the other side (negative = behind the touch).
    let (bid, ask) = (Decimal::from(60_000), Decimal::from(60_010));
    assert_eq!(
        s.order.limit_price(Side::Buy, bid, ask),
        Decimal::from(59_991)
    );
    assert_eq!(
        s.order.limit_price(Side::Sell, bid, ask),
        Decimal::from_str("60019.0015").unwrap()
    );
}

#[test]
fn malformed_input_never_panics() {
    let exprs = [
        "",
        " ",
        "(",
        ")",
        "((",
        "and",
        "or or",
        "not",
        "1 +",
        "* 2",
        "1 2",
        "a b c",
        "change(",
        "change(,)",
        "change(perp_mid,",
        "change(perp_mid, 30s",
        "change(perp_mid 30s)",
        "change()",
        "change(1, 2, 3)",
        "episodes(",
        "episodes(,30s)",
        "episodes(perp_mid, 30s)",
        "episodes(perp_mid > 1)",
        "episodes(perp_mid > 1, perp_mid) > 0",
        "30s",
        "30s > 1",
        "1e",
        "1e+",
        "1.2.3",
        "..",
        ".",
        "5x",
        "1e999 > 0",
        "0ms",
        "-0s",
        "99999999999999999999d",
        "perp_mid >> 1",
        "perp_mid => 1",
        "perp_mid =< 1",
        "perp_mid ! 1",
        "perp_mid & 1",
        "perp_mid | 1",
        "\"x\"",
        "'x'",
        "€",
        "perp_mid > 1 €",
        "ünïcödé > 1",
        "perp_mid\t>\n1",
        "\u{0}",
        "1 < 2 < 3",
        "not not not",
        "---",
        "- - - 1 > 0",
        "true and",
        "(true))",
        "max(max(perp_mid, 1s), 1s) > 0",
        "mean(perp_mid, 1h) and 1",
        "zscore(pnl_pct, 5s) > 0",
        "hold_s",
        "pnl_pct > 0 > 1",
        "1 / 0 > 0",
        "change_pct(perp_mid, 0.0000001ms) > 0",
        "change_pct(perp_mid, 1.5ms) > 0",
        "change_pct(perp_mid, 400d) > 0",
        "min(perp_mid, -1s) > 0",
    ];
    for e in exprs {
        let src = format!(
            "name = \"x\"\nsymbol = \"BTCUSDT\"\n[[rule]]\nname = \"r\"\nwhen = {}\naction = \"enter_long\"\n[order]\nquantity = 1\n",
            toml_string(e)
        );
        // Either outcome is fine; the display must not panic either.
        if let Err(err) = parse_str(&src, "m.toml") {
            assert!(!err.to_string().is_empty());
        }
    }
    let deep = format!("{}perp_mid{} > 0", "(".repeat(5_000), ")".repeat(5_000));
    let long = format!("perp_mid{} > 0", " + 1".repeat(5_000));
    for e in [deep, long] {
        let src = format!(
            "name = \"x\"\nsymbol = \"BTCUSDT\"\n[[rule]]\nname = \"r\"\nwhen = \"{e}\"\naction = \"enter_long\"\n[order]\nquantity = 1\n"
        );
        assert!(parse_str(&src, "m.toml").is_err());
    }
    let files = [
        "",
        "=",
        "[[rule]]",
        "rule = 1",
        "rule = [1, 2]",
        "[rule]\nname = 1",
        "exit = 3",
        "order = []",
        "name = 1\nsymbol = 2\ndescription = 3\nspot_symbol = []",
        "[order]\nquantity = true",
        "[order]\nquantity = {a = 1}",
        "[order]\nquantity = 1979-05-27",
        "[order]\nquantity = \"1e3\"",
        "[order]\nquantity = 0x10",
        "[order]\nquantity = inf",
        "[order]\nquantity = nan",
        "[order]\nlimit_offset_bps = 1e30\ntype = \"limit\"\nquantity = 1",
        "[exit]\nmax_hold = 60",
        "[exit]\nmax_hold = \"\"",
        "[[rule]]\nname = \"\"\nwhen = \"\"\naction = \"\"",
        "\u{feff}name = \"x\"",
        "name = \"x\"\nname = \"y\"",
        "[[rule]]\n[[rule]]\n[[rule]]",
        "[a.b.c]\nd = 1",
        "x = \"\"\"",
    ];
    for f in files {
        match parse_str(f, "f.toml") {
            Ok(_) => panic!("{f:?} should be invalid"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Random byte soup around a valid file.
    let base = std::fs::read_to_string(strategies_dir().join("premium_divergence.toml")).unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..300 {
        let mut bytes = base.clone().into_bytes();
        for _ in 0..rng.usize(1..6) {
            let i = rng.usize(..bytes.len());
            bytes[i] = b"()[]=\"'#,.-0s ab\n<>"[rng.usize(..19)];
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = parse_str(&text, "fuzz.toml").map_err(|e| e.to_string());
        }
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn strategies_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies")
}

#[test]
fn every_shipped_strategy_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(strategies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let s = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.source, path);
        assert!(s.entry_rules().count() >= 1);
        n += 1;
    }
    assert!(n >= 2, "premium_divergence.toml and demo_window_b.toml");
    let demo = load_file(&strategies_dir().join("demo_window_b.toml")).unwrap();
    assert!(demo.rules.iter().any(|r| r.when.contains("episodes(")));
    match load_file(Path::new("strategies/does-not-exist.toml")) {
        Err(StrategyError::Io { file, .. }) => assert!(file.contains("does-not-exist")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn restart_after_a_gap_rewarms_every_window_and_episode_count() {
    let s = strat(&[
        "change(perp_mid, 10s) > -1000",
        "mean(perp_mid, 10s) > -1000",
        "episodes(perp_mid > 100, 10s) >= 0",
    ]);
    let mut sig = Signals::new(&s);
    feed_perp(&mut sig, &[(0.0, 99.0), (5.0, 101.0), (10.0, 101.0)]);
    for rule in 0..3 {
        assert!(
            !value(&s, &sig, rule, at(10.0)).is_nan(),
            "rule {rule} warm"
        );
    }
    // A gap ends at 20 s: the first sample after it restarts the warm-up.
    sig.restart(at(20.0));
    feed_perp(&mut sig, &[(20.0, 101.0), (25.0, 101.0)]);
    assert_eq!(sig.first_ts(), Some(at(20.0)));
    for rule in 0..3 {
        assert!(
            value(&s, &sig, rule, at(25.0)).is_nan(),
            "rule {rule} undefined"
        );
    }
    // Exactly W after the gap: defined again, over samples after the gap only.
    feed_perp(&mut sig, &[(30.0, 102.0)]);
    assert_eq!(value(&s, &sig, 0, at(30.0)), 1.0);
    assert!((value(&s, &sig, 1, at(30.0)) - 304.0 / 3.0).abs() < 1e-9);
    // The condition was true before the gap and at its first sample after: that sample counts as a rising edge.
    assert_eq!(value(&s, &sig, 2, at(30.0)), 1.0);
}
