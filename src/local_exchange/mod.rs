//! A local exchange that speaks Binance USD-M's protocol on 127.0.0.1: REST orders and account, replayed market
//! streams and a user-data stream, fed by recordings (see `ws` for the URL layout).

pub mod account;
pub mod config;
pub mod error;
pub mod recording;
mod render;
mod replay;
mod rest;
mod server;
mod ws;

pub use config::{ApiKeyPair, LocalExchangeConfig};
pub use error::{ApiError, LocalExchangeError};
pub use server::{
    serve_standalone, AccountSnapshot, Fault, LocalExchange, ReplayPhase, ReplayStatus,
    RunningExchange,
};
