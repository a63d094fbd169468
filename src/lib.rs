//! premia: a paper-trading bot for Binance USD-M futures that trades on the spot premium.
//!
//! The engine core ([`engine`]) is synchronous and free of I/O; the edges (data files, Binance, the local exchange)
//! turn the outside world into [`engine::Event`]s and carry its decisions out.

pub mod backtest;
pub mod binance;
pub mod clock;
pub mod config;
pub mod engine;
pub mod fill;
pub mod live;
pub mod local_exchange;
pub mod market;
pub mod model;
pub mod persist;
pub mod record;
pub mod report;
pub mod risk;
pub mod signal;
pub mod sim;
pub mod store;
pub mod strategy;
