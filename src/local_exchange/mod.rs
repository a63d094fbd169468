//! A local exchange that speaks Binance USD-M's protocol on 127.0.0.1: REST orders and account, replayed market
//! streams and a user-data stream, fed by recordings.

pub mod account;
pub mod error;

pub use error::{ApiError, LocalExchangeError};
