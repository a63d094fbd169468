//! One integration-test binary, a module per area (keeps link time down).

mod backtest;
mod binance;
mod fills;
mod live;
mod local_exchange;
mod parsers;
mod rules;
mod store;
