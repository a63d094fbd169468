//! The values that fired each trade: the decision journal's entries of its entry and exit orders (matched by client
//! order id), the premium at those decisions, and their compact text and CSV forms.
//!
//! A decision journals the leaves of its rule's expression, then the market context at that moment (`spot_mid`,
//! `perp_mid`, `premium_bps`), and for an exit `pnl_pct` and `hold_s`. The *last* value of a context name is the
//! context; an earlier one of the same name is a leaf of the rule (e.g. `perp_mid > 0`).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::trades::{Trade, TradeStats};
use crate::model::{JournalEntry, JournalKind};

/// Names of the market context a decision journals after its rule's leaves.
const CONTEXT: [&str; 3] = ["spot_mid", "perp_mid", "premium_bps"];
/// The spot premium's name in the journal.
const PREMIUM: &str = "premium_bps";

impl TradeStats {
    /// Gives every trade (closed and open) the values journaled with the decisions of its entry and exit orders.
    /// A trade whose order has no decision in the journal (e.g. one placed by hand) keeps empty values.
    pub fn attach_decisions(&mut self, journal: &[JournalEntry]) {
        let by_client: HashMap<&str, &JournalEntry> = journal
            .iter()
            .filter(|e| e.kind == JournalKind::Decision)
            .filter_map(|e| e.client_id.as_deref().map(|id| (id, e)))
            .collect();
        let values_of = |id: Option<&str>| {
            id.and_then(|id| by_client.get(id))
                .map(|e| e.values.clone())
                .unwrap_or_default()
        };
        for t in self.trades.iter_mut().chain(self.open.iter_mut()) {
            t.entry_values = values_of(Some(&t.entry_client_id));
            t.exit_values = values_of(t.exit_client_id.as_deref());
        }
    }
}

impl Trade {
    /// The spot premium (bps) at the entry decision, when the journal has it and it was defined.
    pub fn entry_premium_bps(&self) -> Option<f64> {
        premium(&self.entry_values)
    }

    /// The spot premium (bps) at the exit decision, when the journal has it and it was defined.
    pub fn exit_premium_bps(&self) -> Option<f64> {
        premium(&self.exit_values)
    }
}

fn premium(values: &[(String, f64)]) -> Option<f64> {
    values
        .iter()
        .rev()
        .find(|(k, _)| k == PREMIUM)
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
}

/// A JSON number, or `null` for an undefined (non-finite) value.
pub fn value_json(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Values as one JSON object, name → number or `null` (undefined). A name journaled twice (a leaf that is also a
/// context name) keeps its first value: the two were read at the same instant.
pub fn values_json(values: &[(String, f64)]) -> Value {
    let mut m = Map::new();
    for (k, v) in values {
        m.entry(k.clone()).or_insert_with(|| value_json(*v));
    }
    Value::Object(m)
}

/// The rule's own values: everything but the trailing market context (whose premium is shown on its own).
pub fn rule_values(values: &[(String, f64)]) -> impl Iterator<Item = &(String, f64)> {
    let context_at: Vec<usize> = CONTEXT
        .iter()
        .filter_map(|name| values.iter().rposition(|(k, _)| k == name))
        .collect();
    values
        .iter()
        .enumerate()
        .filter(move |(i, _)| !context_at.contains(i))
        .map(|(_, kv)| kv)
}

/// A value for a person: `undefined`, or at most 4 decimals without trailing zeros (2 from 1000 up).
pub fn value_text(v: f64) -> String {
    if !v.is_finite() {
        return "undefined".into();
    }
    let dp = if v.abs() >= 1000.0 { 2 } else { 4 };
    let s = format!("{v:.dp$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// `name = value, …` of the rule's values, then `premium X bps` when known; empty when there is nothing to show.
pub fn values_text(values: &[(String, f64)]) -> String {
    let mut parts: Vec<String> = rule_values(values)
        .map(|(k, v)| format!("{k} = {}", value_text(*v)))
        .collect();
    if let Some(p) = premium(values) {
        parts.push(format!("premium {} bps", value_text(p)));
    }
    parts.join(", ")
}

/// Every value as `name=value;…` (full precision, `null` when undefined) for one CSV cell. A name may contain `=`
/// (`episodes(x <= 1, 60s)`): the value follows the last `=` of its part.
pub fn values_cell(values: &[(String, f64)]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|(k, v)| {
            if v.is_finite() {
                format!("{k}={v}")
            } else {
                format!("{k}=null")
            }
        })
        .collect();
    parts.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decimal, Fill, Side};

    fn v(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn decision(client_id: &str, values: Vec<(String, f64)>) -> JournalEntry {
        JournalEntry {
            ts: 1,
            kind: JournalKind::Decision,
            rule: "r".into(),
            action: "enter_long".into(),
            values,
            risk: "approved".into(),
            client_id: Some(client_id.into()),
            note: String::new(),
        }
    }

    fn fill(ts: i64, id: &str, side: Side) -> Fill {
        Fill {
            ts,
            client_id: id.into(),
            symbol: "BTCUSDT".into(),
            side,
            qty: Decimal::ONE,
            price: Decimal::ONE_HUNDRED,
            fee: Decimal::ZERO,
            trade_id: None,
            rule: "r".into(),
        }
    }

    #[test]
    fn values_are_matched_by_client_id_and_missing_decisions_leave_them_empty() {
        let fills = [
            fill(1, "a", Side::Buy),
            fill(2, "b", Side::Sell),
            fill(3, "c", Side::Buy),
        ];
        let mut s = TradeStats::from_fills(&fills);
        let journal = [
            decision("b", v(&[("pnl_pct", 0.2), ("premium_bps", 1.5)])),
            JournalEntry {
                kind: JournalKind::RiskDenied,
                ..decision("c", v(&[("x", 9.0)]))
            },
            decision("a", v(&[("x", -0.05), ("premium_bps", f64::NAN)])),
        ];
        s.attach_decisions(&journal);
        let t = &s.trades[0];
        assert_eq!(t.entry_values[0], ("x".to_string(), -0.05));
        assert_eq!(t.entry_premium_bps(), None, "undefined premium");
        assert_eq!(t.exit_premium_bps(), Some(1.5));
        assert!(s.open[0].entry_values.is_empty(), "a denial is no decision");
    }

    #[test]
    fn a_leaf_named_like_the_context_is_kept_in_the_text() {
        let values = v(&[
            ("perp_mid", 61_700.25),
            ("change(premium_bps, 30s)", f64::NAN),
            ("spot_mid", 61_710.0),
            ("perp_mid", 61_700.25),
            ("premium_bps", 1.620_004),
        ]);
        assert_eq!(
            values_text(&values),
            "perp_mid = 61700.25, change(premium_bps, 30s) = undefined, premium 1.62 bps"
        );
        assert_eq!(
            values_json(&values).to_string(),
            r#"{"change(premium_bps, 30s)":null,"perp_mid":61700.25,"premium_bps":1.620004,"spot_mid":61710.0}"#
        );
        assert_eq!(
            values_cell(&values[1..3]),
            "change(premium_bps, 30s)=null;spot_mid=61710"
        );
    }

    #[test]
    fn value_text_is_compact() {
        assert_eq!(value_text(-0.053_512), "-0.0535");
        assert_eq!(value_text(30.0), "30");
        assert_eq!(value_text(-0.000_01), "0");
        assert_eq!(value_text(f64::INFINITY), "undefined");
    }
}
