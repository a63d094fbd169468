//! One integration-test binary, a module per area (keeps link time down).

mod backtest;
mod binance;
mod ccxt;
mod engine_semantics;
mod faults;
mod fills;
mod fuzz;
mod live;
mod local_exchange;
mod parsers;
mod report;
mod routing;
mod rules;
mod secrets;
mod soak;
mod store;
mod support;
