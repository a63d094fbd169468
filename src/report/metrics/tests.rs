use std::str::FromStr;

use super::*;

const H: TsNs = 3_600 * NS_PER_S;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn trade(
    side: Side,
    entry_h: i64,
    exit_h: i64,
    gross: &str,
    fees: &str,
    rule: &str,
    exit: &str,
) -> Trade {
    let (gross, fees) = (d(gross), d(fees));
    Trade {
        symbol: "BTCUSDT".into(),
        side,
        qty: d("0.01"),
        entry_ts: entry_h * H,
        exit_ts: Some(exit_h * H),
        avg_entry: d("60000"),
        avg_exit: Some(d("60000")),
        exit_qty: d("0.01"),
        gross_pnl: gross,
        fees,
        net_pnl: gross - fees,
        entry_rule: rule.into(),
        exit_rule: Some(exit.into()),
        fills: 2,
        entry_client_id: format!("in{entry_h}"),
        exit_client_id: Some(format!("out{exit_h}")),
        entry_values: Vec::new(),
        exit_values: Vec::new(),
    }
}

/// Four trades over three UTC days, nets +10, −5, −5, +20; a 1000 USDT account; market span 0 h .. 71 h.
fn sample() -> Vec<Trade> {
    vec![
        trade(Side::Buy, 0, 1, "12", "2", "a", "take_profit"),
        trade(Side::Sell, 2, 3, "-4", "1", "b", "stop_loss"),
        trade(Side::Buy, 24, 26, "0", "5", "a", "stop_loss"),
        trade(Side::Buy, 48, 50, "21", "1", "a", "take_profit"),
    ]
}

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("a value");
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
}

#[test]
fn hand_computed_metrics_of_a_small_trade_list() {
    let trades = sample();
    let m = Metrics::compute(MetricsInput {
        trades: &trades,
        open: &[],
        span: Some((0, 71 * H)),
        starting_balance: Some(d("1000")),
    });
    assert_eq!((m.trades, m.wins, m.losses), (4, 2, 2));
    close(m.win_rate, 0.5);
    assert_eq!((m.gross_pnl, m.fees, m.net_pnl), (d("29"), d("9"), d("20")));
    close(m.net_pnl_pct, 2.0);
    // Wins 10 + 20 over losses 5 + 5.
    close(m.profit_factor, 3.0);
    assert_eq!(m.expectancy, Some(d("5")));
    assert_eq!((m.avg_win, m.avg_loss), (Some(d("15")), Some(d("-5"))));
    assert_eq!(
        (m.best_trade, m.worst_trade),
        (Some(d("20")), Some(d("-5")))
    );
    assert_eq!((m.longest_win_streak, m.longest_loss_streak), (1, 2));
    // Equity 10, 5, 0, 20: the peak of 10 (at 1 h) falls to 0 (at 26 h) and is regained at 50 h.
    assert_eq!(m.max_drawdown, d("10"));
    close(m.max_drawdown_pct, 10.0 / 1010.0 * 100.0);
    assert_eq!(m.max_drawdown_duration_s, 49.0 * 3600.0);
    // 1 + 1 + 2 + 2 hours in a position out of 71.
    close(m.exposure_pct, 6.0 / 71.0 * 100.0);
    close(m.trades_per_day, 4.0 / (71.0 / 24.0));
    // Daily returns 5/1000, −5/1000, 20/1000.
    let mean: f64 = 0.02 / 3.0;
    let sd = (((0.005 - mean) * (0.005 - mean)
        + (-0.005 - mean) * (-0.005 - mean)
        + (0.02 - mean) * (0.02 - mean))
        / 2.0)
        .sqrt();
    close(m.sharpe, mean / sd * 365f64.sqrt());
    close(m.sharpe, 10.122062060216642);
    let downside = (0.005f64 * 0.005 / 3.0).sqrt();
    close(m.sortino, mean / downside * 365f64.sqrt());
    // 2 % in 71/24 days is 246.76 % a year, over a 0.990 % drawdown.
    close(
        m.calmar,
        2.0 / (71.0 / 24.0) * 365.0 / (10.0 / 1010.0 * 100.0),
    );
    assert_eq!(m.buy_and_hold_pct, None);
    assert_eq!(
        (m.long.trades, m.long.wins, m.long.net_pnl),
        (3, 2, d("25"))
    );
    assert_eq!(
        (m.short.trades, m.short.wins, m.short.net_pnl),
        (1, 0, d("-5"))
    );
    let rules: Vec<_> = m
        .by_entry_rule
        .iter()
        .map(|g| (g.name.as_str(), g.trades, g.net_pnl))
        .collect();
    assert_eq!(rules, [("a", 3, d("25")), ("b", 1, d("-5"))]);
    let exits: Vec<_> = m
        .by_exit_reason
        .iter()
        .map(|g| (g.name.as_str(), g.trades, g.wins))
        .collect();
    assert_eq!(exits, [("take_profit", 2, 2), ("stop_loss", 2, 0)]);
    assert!(m.few_trades());
}

#[test]
fn json_numbers_and_nulls() {
    let trades = sample();
    let m = Metrics::compute(MetricsInput {
        trades: &trades,
        open: &[],
        span: Some((0, 71 * H)),
        starting_balance: None,
    });
    let j = m.to_json();
    assert_eq!(j["trades"], 4);
    assert_eq!(j["net_pnl"].as_f64(), Some(20.0));
    assert_eq!(j["expectancy"].as_f64(), Some(5.0));
    assert_eq!(j["profit_factor"].as_f64(), Some(3.0));
    // Without a starting balance the percentages are unknown, but Sharpe does not depend on the scale.
    assert!(j["net_pnl_pct"].is_null() && j["max_drawdown_pct"].is_null() && j["calmar"].is_null());
    assert!((j["sharpe"].as_f64().unwrap() - 10.122062060216642).abs() < 1e-9);
    assert_eq!(j["buy_and_hold_pct"], Value::Null);
    assert_eq!(j["by_entry_rule"][0]["name"], "a");
    assert_eq!(j["few_trades"], true);
}

#[test]
fn no_trades_and_open_trades_only_count_for_exposure() {
    let mut open = trade(Side::Sell, 10, 0, "0", "1", "b", "-");
    open.exit_ts = None;
    let m = Metrics::compute(MetricsInput {
        trades: &[],
        open: std::slice::from_ref(&open),
        span: Some((0, 20 * H)),
        starting_balance: Some(d("1000")),
    });
    assert_eq!((m.trades, m.win_rate, m.expectancy), (0, None, None));
    assert_eq!(m.profit_factor, None);
    assert_eq!(m.max_drawdown, Decimal::ZERO);
    close(m.max_drawdown_pct, 0.0);
    close(m.exposure_pct, 50.0);
    assert_eq!(m.sharpe, None, "one day is not enough");
}

#[test]
fn a_drawdown_never_regained_lasts_to_the_end_of_the_span() {
    let trades = vec![
        trade(Side::Buy, 0, 1, "5", "0", "a", "x"),
        trade(Side::Buy, 2, 3, "-8", "0", "a", "x"),
    ];
    let m = Metrics::compute(MetricsInput {
        trades: &trades,
        open: &[],
        span: Some((0, 10 * H)),
        starting_balance: Some(d("1000")),
    });
    assert_eq!(m.max_drawdown, d("8"));
    assert_eq!(m.max_drawdown_duration_s, 9.0 * 3600.0);
    assert_eq!(m.calmar, None, "less than a day is not annualised");
    assert_eq!(m.longest_loss_streak, 1);
}
