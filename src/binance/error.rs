//! Typed Binance errors: every exchange error code and HTTP status premia cares about, each printed as one clear
//! operator line (code, Binance's message, what to do). Never carries secrets or signed URLs.

use std::time::Duration;

use super::rest_wire::ErrorBody;
use super::wire::WireError;

/// What went wrong talking to Binance (or a Binance-compatible server).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BinanceError {
    #[error("Binance {code} (timestamp rejected): {msg} — check the system clock (NTP); premia resyncs server time and retries once")]
    Timestamp { code: i64, msg: String },
    #[error("Binance -1022 (signature rejected): {msg} — check that the API secret belongs to the API key and has no stray spaces")]
    Signature { msg: String },
    #[error("Binance -2019 (insufficient margin): {msg} — reduce the order quantity or leverage, or add margin")]
    InsufficientMargin { msg: String },
    #[error("Binance -4164 (notional too small): {msg} — raise the order quantity above the symbol's minimum notional")]
    Notional { msg: String },
    #[error("Binance {code} (order rejected by symbol filters): {msg} — refresh exchangeInfo; premia rounds to tick and step size")]
    Filter { code: i64, msg: String },
    #[error("Binance -4116 (duplicate client order id): {msg} — the order already exists; query it by client id")]
    DuplicateClientId { msg: String },
    #[error("Binance {code} (API key or permission): {msg} — check the API key, its IP whitelist and that futures trading is enabled for it")]
    KeyOrPermission { code: i64, msg: String },
    #[error("Binance -2013 (order does not exist): {msg}")]
    UnknownOrder { msg: String },
    #[error("Binance -2022 (reduce-only order rejected): {msg} — the position is already flat or smaller than the exit")]
    ReduceOnlyRejected { msg: String },
    #[error("Binance -1125 (listen key does not exist): {msg} — premia creates a new listen key")]
    InvalidListenKey { msg: String },
    #[error("Binance rate limit hit (HTTP 429 / -1003): {} — premia sends nothing until then; lower the order rate", retry_text(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("Binance BANNED this IP (HTTP 418): {} — premia sends nothing until then; the rate limit was ignored, find out why", retry_text(.retry_after))]
    IpBanned { retry_after: Option<Duration> },
    #[error("outcome UNKNOWN ({reason}) — the request may or may not have been executed; premia resolves orders by client id before sending anything else")]
    Unknown { reason: String },
    /// A request that changes no order (time, exchange info, account, queries) got no usable answer: a timeout,
    /// a 5xx or `-1007`. Nothing to resolve; it is sent again after a back-off.
    #[error(
        "no usable answer from the exchange ({reason}) — premia sends it again after a back-off"
    )]
    NoAnswer { reason: String },
    #[error("Binance {code}: {msg}")]
    Exchange { code: i64, msg: String },
    #[error("HTTP {status} from the exchange: {body}")]
    Http { status: u16, body: String },
    #[error("request not sent: {reason}")]
    Invalid { reason: String },
    #[error("could not reach the exchange: {reason} — check the network and the configured rest_url/ws_url")]
    Transport { reason: String },
    #[error("unexpected response: cannot decode {message}: field `{field}`: {reason} — is the URL a Binance USD-M endpoint?")]
    Decode {
        message: &'static str,
        field: String,
        reason: String,
    },
}

fn retry_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("retry after {} s", d.as_secs_f64().ceil() as u64),
        None => "no Retry-After given".to_string(),
    }
}

impl From<WireError> for BinanceError {
    fn from(e: WireError) -> Self {
        BinanceError::Decode {
            message: e.message,
            field: e.field,
            reason: e.reason,
        }
    }
}

impl BinanceError {
    /// Maps a Binance error code and message to a typed error.
    pub fn from_code(code: i64, msg: impl Into<String>) -> Self {
        let msg = msg.into();
        match code {
            -1021 => BinanceError::Timestamp { code, msg },
            -1022 => BinanceError::Signature { msg },
            -2019 => BinanceError::InsufficientMargin { msg },
            -4164 => BinanceError::Notional { msg },
            // Precision, filter failure, tick / step / min / max quantity and price checks.
            -1111 | -1013 | -4003 | -4004 | -4005 | -4013 | -4014 | -4023 | -4024 | -4131 => {
                BinanceError::Filter { code, msg }
            }
            -4116 => BinanceError::DuplicateClientId { msg },
            -2014 | -2015 | -1002 => BinanceError::KeyOrPermission { code, msg },
            -2013 => BinanceError::UnknownOrder { msg },
            -2022 => BinanceError::ReduceOnlyRejected { msg },
            -1125 => BinanceError::InvalidListenKey { msg },
            -1003 | -1015 => BinanceError::RateLimited { retry_after: None },
            // "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
            -1007 | -1000 | -1001 | -1006 => BinanceError::Unknown {
                reason: format!("Binance {code}: {msg}"),
            },
            _ => BinanceError::Exchange { code, msg },
        }
    }

    /// Maps an HTTP error response (status, `Retry-After`, body) to a typed error.
    pub fn from_response(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let parsed = serde_json::from_str::<ErrorBody>(body).ok();
        match status {
            429 => BinanceError::RateLimited { retry_after },
            418 => BinanceError::IpBanned { retry_after },
            _ => match parsed {
                Some(b) if status >= 500 => BinanceError::Unknown {
                    reason: format!("HTTP {status}, Binance {}: {}", b.code, b.msg),
                },
                Some(b) => match BinanceError::from_code(b.code, b.msg) {
                    BinanceError::RateLimited { .. } => BinanceError::RateLimited { retry_after },
                    e => e,
                },
                None if status >= 500 => BinanceError::Unknown {
                    reason: format!("HTTP {status}: {}", excerpt(body)),
                },
                None => BinanceError::Http {
                    status,
                    body: excerpt(body),
                },
            },
        }
    }

    /// True when the request may have been executed: an order must be resolved by client id, never assumed failed.
    pub fn is_unknown_outcome(&self) -> bool {
        matches!(self, BinanceError::Unknown { .. })
    }

    /// True when waiting and sending again can fix it: rate limits and bans (after their window), server errors,
    /// `-1007`-style unknown outcomes, timeouts, refused connections, DNS failures and a skewed clock (resynced).
    /// Everything else — bad keys, permissions, a wrong URL, a rejected order — needs a person or a new decision.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BinanceError::RateLimited { .. }
                | BinanceError::IpBanned { .. }
                | BinanceError::Unknown { .. }
                | BinanceError::NoAnswer { .. }
                | BinanceError::Transport { .. }
                | BinanceError::Timestamp { .. }
        ) || matches!(self, BinanceError::Http { status, .. } if *status >= 500 || *status == 408)
    }

    /// A short name of the kind of failure, for "state changed" log lines (one per change, not per attempt).
    pub fn kind(&self) -> &'static str {
        match self {
            BinanceError::RateLimited { .. } => "rate limited (429)",
            BinanceError::IpBanned { .. } => "IP banned (418)",
            BinanceError::Unknown { .. } | BinanceError::NoAnswer { .. } => {
                "no usable answer (timeout or server error)"
            }
            BinanceError::Transport { .. } => "exchange unreachable",
            BinanceError::Timestamp { .. } => "clock skew",
            BinanceError::Signature { .. } | BinanceError::KeyOrPermission { .. } => {
                "API key rejected"
            }
            _ => "request failed",
        }
    }

    /// How long to wait before sending again, when the exchange said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BinanceError::RateLimited { retry_after } | BinanceError::IpBanned { retry_after } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The Binance error code, when the error came from one.
    pub fn code(&self) -> Option<i64> {
        match self {
            BinanceError::Timestamp { code, .. }
            | BinanceError::Filter { code, .. }
            | BinanceError::KeyOrPermission { code, .. }
            | BinanceError::Exchange { code, .. } => Some(*code),
            BinanceError::Signature { .. } => Some(-1022),
            BinanceError::InsufficientMargin { .. } => Some(-2019),
            BinanceError::Notional { .. } => Some(-4164),
            BinanceError::DuplicateClientId { .. } => Some(-4116),
            BinanceError::UnknownOrder { .. } => Some(-2013),
            BinanceError::ReduceOnlyRejected { .. } => Some(-2022),
            BinanceError::InvalidListenKey { .. } => Some(-1125),
            _ => None,
        }
    }
}

/// At most 200 characters of a response body, on one line.
fn excerpt(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map() {
        let e = BinanceError::from_response(429, Some(Duration::from_secs(7)), "");
        assert_eq!(
            e,
            BinanceError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(e.to_string().contains("retry after 7 s"));
        let e = BinanceError::from_response(418, Some(Duration::from_secs(120)), "{}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
        assert!(
            BinanceError::from_response(502, None, "<html>bad gateway</html>").is_unknown_outcome()
        );
        assert!(BinanceError::from_response(
            503,
            None,
            r#"{"code":-1000,"msg":"Unknown error, please check your request or try again later."}"#
        )
        .is_unknown_outcome());
        assert!(BinanceError::from_response(
            408,
            None,
            r#"{"code":-1007,"msg":"Timeout waiting for response from backend server. Send status unknown; execution status unknown."}"#
        )
        .is_unknown_outcome());
        assert_eq!(
            BinanceError::from_response(404, None, "Not Found"),
            BinanceError::Http {
                status: 404,
                body: "Not Found".into()
            }
        );
        assert_eq!(
            BinanceError::from_response(
                400,
                Some(Duration::from_secs(3)),
                r#"{"code":-1003,"msg":"Too many requests"}"#
            ),
            BinanceError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }
}
