//! `premia report --trades-csv FILE`: every trade, closed then open, one row each, with the values that fired it.

use std::io::Write;

use super::decisions::values_cell;
use super::text::format_ts;
use super::trades::{Trade, TradeStats};
use crate::model::Decimal;

/// The header line of the trades CSV.
pub const HEADER: &str = "n,status,symbol,side,qty,entry_ts_ns,exit_ts_ns,entry_time_utc,exit_time_utc,\
entry_price,exit_price,gross_pnl,fees,net_pnl,entry_rule,exit_reason,entry_premium_bps,exit_premium_bps,\
entry_values,exit_values";

/// Writes every trade (closed in the order they closed, then open ones) as CSV.
pub fn write_trades(stats: &TradeStats, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{HEADER}")?;
    let closed = stats.trades.iter().map(|t| ("closed", t));
    let open = stats.open.iter().map(|t| ("open", t));
    for (i, (status, t)) in closed.chain(open).enumerate() {
        writeln!(out, "{}", row(i + 1, status, t))?;
    }
    out.flush()
}

fn row(n: usize, status: &str, t: &Trade) -> String {
    let opt_dec = |d: Option<Decimal>| d.map(|d| d.normalize().to_string()).unwrap_or_default();
    let opt_f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let side = match t.side {
        crate::model::Side::Buy => "LONG",
        crate::model::Side::Sell => "SHORT",
    };
    let cells = [
        n.to_string(),
        status.to_string(),
        field(&t.symbol),
        side.to_string(),
        t.qty.normalize().to_string(),
        t.entry_ts.to_string(),
        t.exit_ts.map(|x| x.to_string()).unwrap_or_default(),
        format_ts(t.entry_ts),
        t.exit_ts.map(format_ts).unwrap_or_default(),
        t.avg_entry.normalize().to_string(),
        opt_dec(t.avg_exit),
        t.gross_pnl.normalize().to_string(),
        t.fees.normalize().to_string(),
        t.net_pnl.normalize().to_string(),
        field(&t.entry_rule),
        field(t.exit_rule.as_deref().unwrap_or_default()),
        opt_f(t.entry_premium_bps()),
        opt_f(t.exit_premium_bps()),
        field(&values_cell(&t.entry_values)),
        field(&values_cell(&t.exit_values)),
    ];
    cells.join(",")
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(field("max_hold"), "max_hold");
        assert_eq!(
            field("change_pct(perp_mid, 30s)=-0.05"),
            "\"change_pct(perp_mid, 30s)=-0.05\""
        );
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
