//! A local exchange that speaks Binance USD-M's protocol on 127.0.0.1, fed by recordings of raw websocket frames.
//!
//! URL layout (one port serves everything):
//! - REST: `http://HOST:PORT/fapi/...` — the Binance paths, parameters, JSON (the `binance::rest_wire` types) and
//!   error codes;
//! - futures market streams, routed as Binance USD-M since 2026: `ws://HOST:PORT/public/…` (book data),
//!   `ws://HOST:PORT/market/…` (other market data), each as `/ws/<stream>` or `/stream?streams=a/b`; the unrouted
//!   `ws://HOST:PORT/ws/<stream>` carries public streams only (everything with `legacy_routing`);
//! - spot market streams: the same under `/spot` (`ws://HOST:PORT/spot/stream?streams=…`), so the spot base URL
//!   is `ws://HOST:PORT/spot`;
//! - user-data stream: `ws://HOST:PORT/private/ws/<listenKey>` (`/ws/<listenKey>` with `legacy_routing`).
//!
//! Clocks: fills, order and event times use the replay's virtual clock (the receive time of the last replayed
//! frame); `/fapi/v1/time` and the `timestamp`/`recvWindow` check use the wall clock; replay pacing and listen-key
//! expiry (60 min after the last POST/PUT) use the tokio clock, so paused-time tests run instantly.
//!
//! Pieces: [`account`] (positions, margin, matching; pure), [`history`] (fills and income), [`market`] (trades,
//! candles, touch and mark kept for REST), [`recording`] (raw frame reader), `replay` (scheduler and book), `rest`
//! (order entry, parameters, signatures), `rest_market` and `rest_account` (the other REST endpoints) and `ws`
//! (handlers), `render` (domain → wire types), `server` (state, start, handle).

pub mod account;
pub mod config;
pub mod error;
pub mod faults;
pub mod history;
pub mod market;
pub mod recording;
mod render;
mod replay;
mod rest;
mod rest_account;
mod rest_market;
mod server;
mod streams;
mod ws;

pub use config::{ApiKeyPair, LocalExchangeConfig};
pub use error::{ApiError, LocalExchangeError};
pub use faults::{FaultCounts, FaultKind, FaultLedger, FaultPlan, LedgerTrade, Outage};
pub use server::{
    ccxt_snippet, serve_standalone, AccountSnapshot, Fault, LocalExchange, ReplayPhase,
    ReplayStatus, RunningExchange,
};
