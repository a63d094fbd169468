//! Errors of the local exchange: start-up failures, and the Binance API errors its REST endpoints answer with.

use std::borrow::Cow;

use crate::model::Decimal;

/// Why the local exchange could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum LocalExchangeError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open recording {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("recording {path} line {line}: {msg}")]
    Recording {
        path: String,
        line: u64,
        msg: String,
    },
    #[error("invalid local exchange config: {0}")]
    Config(String),
    #[error("local exchange server failed: {0}")]
    Serve(std::io::Error),
}

/// A Binance API error: the `{"code":…,"msg":…}` body of a rejected request, with Binance's exact message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {msg}")]
pub struct ApiError {
    pub code: i32,
    pub msg: Cow<'static, str>,
}

impl ApiError {
    pub const fn new(code: i32, msg: &'static str) -> Self {
        ApiError {
            code,
            msg: Cow::Borrowed(msg),
        }
    }

    /// The HTTP status Binance answers this error with: 401 for a rejected or malformed API key, 400 otherwise.
    pub fn status(&self) -> axum::http::StatusCode {
        match self.code {
            -2014 | -2015 => axum::http::StatusCode::UNAUTHORIZED,
            _ => axum::http::StatusCode::BAD_REQUEST,
        }
    }

    pub fn unknown() -> Self {
        Self::new(
            -1000,
            "An unknown error occured while processing the request.",
        )
    }
    pub fn timestamp_outside_window() -> Self {
        Self::new(
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        )
    }
    pub fn timestamp_ahead() -> Self {
        Self::new(
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        )
    }
    pub fn bad_signature() -> Self {
        Self::new(-1022, "Signature for this request is not valid.")
    }
    pub fn mandatory(param: &str) -> Self {
        ApiError {
            code: -1102,
            msg: Cow::Owned(format!(
                "Mandatory parameter '{param}' was not sent, was empty/null, or malformed."
            )),
        }
    }
    pub fn invalid_param(param: &str) -> Self {
        ApiError {
            code: -1130,
            msg: Cow::Owned(format!("Data sent for parameter '{param}' is not valid.")),
        }
    }
    pub fn precision() -> Self {
        Self::new(
            -1111,
            "Precision is over the maximum defined for this asset.",
        )
    }
    pub fn no_depth() -> Self {
        Self::new(-1112, "No orders on book for symbol.")
    }
    pub fn invalid_tif() -> Self {
        Self::new(-1115, "Invalid timeInForce.")
    }
    pub fn invalid_order_type() -> Self {
        Self::new(-1116, "Invalid orderType.")
    }
    pub fn invalid_side() -> Self {
        Self::new(-1117, "Invalid side.")
    }
    pub fn bad_symbol() -> Self {
        Self::new(-1121, "Invalid symbol.")
    }
    pub fn no_listen_key() -> Self {
        Self::new(
            -1125,
            "This listenKey does not exist. Please use `POST /fapi/v1/listenKey` to recreate `listenKey`",
        )
    }
    pub fn no_such_order() -> Self {
        Self::new(-2013, "Order does not exist.")
    }
    pub fn cancel_rejected() -> Self {
        Self::new(-2011, "Unknown order sent.")
    }
    pub fn bad_api_key_format() -> Self {
        Self::new(-2014, "API-key format invalid.")
    }
    pub fn rejected_key() -> Self {
        Self::new(-2015, "Invalid API-key, IP, or permissions for action.")
    }
    pub fn margin_insufficient() -> Self {
        Self::new(-2019, "Margin is insufficient.")
    }
    pub fn reduce_only_rejected() -> Self {
        Self::new(-2022, "ReduceOnly Order is rejected.")
    }
    pub fn qty_not_positive() -> Self {
        Self::new(-4003, "Quantity less than zero.")
    }
    pub fn qty_below_min() -> Self {
        Self::new(-4004, "Quantity less than min quantity.")
    }
    pub fn qty_above_max() -> Self {
        Self::new(-4005, "Quantity greater than max quantity.")
    }
    pub fn price_below_min() -> Self {
        Self::new(-4013, "Price less than min price.")
    }
    pub fn price_above_max() -> Self {
        Self::new(-4002, "Price greater than max price.")
    }
    pub fn price_tick() -> Self {
        Self::new(-4014, "Price not increased by tick size.")
    }
    pub fn qty_step() -> Self {
        Self::new(-4023, "Qty not increased by step size.")
    }
    pub fn client_id_len() -> Self {
        Self::new(
            -4015,
            "Client order id length should not be more than 36 chars",
        )
    }
    pub fn invalid_leverage() -> Self {
        Self::new(-4028, "Invalid leverage")
    }
    pub fn duplicate_client_id() -> Self {
        Self::new(-4116, "clientOrderId is duplicated")
    }
    pub fn min_notional(min: Decimal) -> Self {
        ApiError {
            code: -4164,
            msg: Cow::Owned(format!(
                "Order's notional must be no smaller than {} (unless you choose reduce only)",
                min.normalize()
            )),
        }
    }
    pub fn illegal_chars(param: &str) -> Self {
        ApiError {
            code: -1100,
            msg: Cow::Owned(format!(
                "Illegal characters found in parameter '{param}'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{{1,36}}$'."
            )),
        }
    }
    pub fn not_required(param: &str) -> Self {
        ApiError {
            code: -1106,
            msg: Cow::Owned(format!("Parameter '{param}' sent when not required.")),
        }
    }
    pub fn bad_interval() -> Self {
        Self::new(-1120, "Invalid interval.")
    }
    pub fn start_after_end() -> Self {
        Self::new(-1127, "Lookup interval is too big.")
    }
    pub fn margin_type_unchanged() -> Self {
        Self::new(-4046, "No need to change margin type.")
    }
    pub fn position_side_unchanged() -> Self {
        Self::new(-4059, "No need to change position side.")
    }
    pub fn post_only_rejected() -> Self {
        Self::new(
            -5022,
            "Due to the order could not be executed as maker, the Post Only order will be rejected.",
        )
    }
}
