//! Serde for journal values: an undefined value (NaN, e.g. a window still warming up) is stored as JSON `null`
//! and reads back as NaN, so a journal with undefined values — including ones written before this rule — loads.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes `(name, value)` pairs with non-finite values as `null`.
pub fn serialize<S: Serializer>(values: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        values
            .iter()
            .map(|(k, v)| (k.as_str(), v.is_finite().then_some(*v))),
    )
}

/// Reads `(name, value)` pairs; `null` is NaN (undefined).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    let raw: Vec<(String, Option<f64>)> = Vec::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

#[cfg(test)]
mod tests {
    use crate::model::{JournalEntry, JournalKind};

    fn entry(values: Vec<(String, f64)>) -> JournalEntry {
        JournalEntry {
            ts: 1,
            kind: JournalKind::Decision,
            rule: "dip_or_warm".into(),
            action: "enter_long".into(),
            values,
            risk: "approved".into(),
            client_id: None,
            note: String::new(),
        }
    }

    #[test]
    fn an_undefined_value_round_trips_as_null() {
        let e = entry(vec![("a".into(), f64::NAN), ("b".into(), -0.0535)]);
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#"["a",null]"#), "{json}");
        let back: JournalEntry = serde_json::from_str(&json).unwrap();
        assert!(back.values[0].1.is_nan());
        assert_eq!(back.values[1], ("b".to_string(), -0.0535));
    }

    #[test]
    fn an_old_journal_line_with_null_reads() {
        let old = r#"{"ts":5,"kind":"decision","rule":"r","values":[["x",null],["y",1.5]]}"#;
        let e: JournalEntry = serde_json::from_str(old).unwrap();
        assert!(e.values[0].1.is_nan());
        assert_eq!(e.values[1].1, 1.5);
        let none: JournalEntry = serde_json::from_str(r#"{"ts":5,"kind":"note"}"#).unwrap();
        assert!(none.values.is_empty());
    }
}
