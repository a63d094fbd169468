//! Decoding Binance JSON into wire types: the one error type every wire module returns, naming the message and field.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::model::{Decimal, TsNs, NS_PER_MS};

/// A Binance message that could not be decoded: which message, which field (a path such as `o.X` or
/// `symbols[0].filters[1].tickSize`), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {message}: field `{field}`: {reason}")]
pub struct WireError {
    /// The message kind: `"ORDER_TRADE_UPDATE"`, `"exchangeInfo"`, `"order"`, …
    pub message: &'static str,
    /// Path of the offending field; `.` when the message as a whole is bad (e.g. not JSON).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl WireError {
    pub fn new(message: &'static str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        WireError {
            message,
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn from_path(
        message: &'static str,
        err: serde_path_to_error::Error<serde_json::Error>,
    ) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let reason = strip_position(&inner.to_string());
        // serde reports a missing field at its parent: append the field's name so the path names it.
        let field = match missing_field_name(&reason) {
            Some(name) if path == "." => name.to_string(),
            Some(name) => format!("{path}.{name}"),
            None => path,
        };
        WireError {
            message,
            field,
            reason,
        }
    }
}

/// Decodes `json` as `T`; errors name `message` and the path of the bad field.
pub fn decode<T: DeserializeOwned>(message: &'static str, json: &str) -> Result<T, WireError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| WireError::from_path(message, e))?;
    de.end()
        .map_err(|e| WireError::new(message, ".", strip_position(&e.to_string())))?;
    Ok(value)
}

/// Decodes an already parsed JSON value as `T`.
pub fn decode_value<T: DeserializeOwned>(
    message: &'static str,
    value: serde_json::Value,
) -> Result<T, WireError> {
    serde_path_to_error::deserialize(value).map_err(|e| WireError::from_path(message, e))
}

/// Serializes a wire type to JSON (wire types always serialize; a failure would be a bug, reported as an error).
pub fn encode<T: serde::Serialize>(message: &'static str, value: &T) -> Result<String, WireError> {
    serde_json::to_string(value).map_err(|e| WireError::new(message, ".", e.to_string()))
}

fn strip_position(s: &str) -> String {
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn missing_field_name(reason: &str) -> Option<&str> {
    let rest = reason.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Milliseconds since the epoch (Binance's unit) → nanoseconds (premia's).
#[inline]
pub fn ms_to_ns(ms: i64) -> TsNs {
    ms.saturating_mul(NS_PER_MS)
}

/// Nanoseconds → Binance milliseconds.
#[inline]
pub fn ns_to_ms(ns: TsNs) -> i64 {
    ns / NS_PER_MS
}

/// `Some(x)` unless `x` is zero (Binance sends `"0"` / `"0.00000"` for "no average price yet").
#[inline]
pub fn non_zero(x: Decimal) -> Option<Decimal> {
    if x.is_zero() {
        None
    } else {
        Some(x)
    }
}

/// serde helper: a millisecond timestamp that Binance sends as a number or, in some events (`listenKeyExpired`), as
/// a string.
pub mod ms_num_or_str {
    use super::*;
    use serde::Deserializer;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(i64),
        Str(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(n),
            NumOrStr::Str(s) => s.trim().parse::<i64>().map_err(|_| {
                serde::de::Error::custom(format!("not a millisecond timestamp: {s:?}"))
            }),
        }
    }

    pub fn serialize<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*v)
    }
}

/// Formats a decimal for a request parameter: plain digits, no exponent, no trailing zeros (`0.0100` → `0.01`).
pub fn fmt_decimal(d: Decimal) -> String {
    d.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        x: i64,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        a: Vec<Inner>,
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = decode::<Outer>("test", r#"{"a":[{"x":1},{"y":2}]}"#).unwrap_err();
        assert_eq!(e.message, "test");
        assert_eq!(e.field, "a[1].x");
        assert!(e.reason.contains("missing field"), "{e}");
        let e = decode::<Outer>("test", r#"{"a":[{"x":"no"}]}"#).unwrap_err();
        assert_eq!(e.field, "a[0].x");
        let e = decode::<Outer>("test", r#"{}"#).unwrap_err();
        assert_eq!(e.field, "a");
        let e = decode::<Outer>("test", "not json").unwrap_err();
        assert_eq!(e.field, ".");
        let e = decode::<Outer>("test", r#"{"a":[]} trailing"#).unwrap_err();
        assert_eq!(e.field, ".");
    }

    #[test]
    fn decimals_format_plainly() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(fmt_decimal(d("0.0100")), "0.01");
        assert_eq!(fmt_decimal(d("100")), "100");
        assert_eq!(fmt_decimal(d("61234.50")), "61234.5");
        assert_eq!(fmt_decimal(d("0.00000001")), "0.00000001");
        assert_eq!(fmt_decimal(d("1000000.000")), "1000000");
    }
}
